"""KPIs of domain.md §4, computed from indexed tables (never by loading a workflow).

Every measure is one function ``measure(node, period, trend=1) -> Result``: ``result.figure`` is the figure for
``period`` (counts per key, numerator, denominator, rate), ``result.trend`` the figures of the ``trend`` periods
ending with it, and ``result.cases(key)`` a SELECT of ``(case_id, at, key)`` rows behind the figure (the
drill-down list and the CSV export).

Common rules:

- **Where.** A case counts for a node when its *current* community lies in the node or below it
  (``JurisdictionNode.path`` prefix): a transferred case's history moves with it (条例22).
- **When.** A period is ``[start, end)`` in local dates (Asia/Shanghai); timestamps are compared with the local
  midnights converted to UTC, so an event at 23:30 on the 31st in China counts in that month.
- **Units.** Each measure yields units (a case, a task or an event) with a ``key``; the figure counts them per
  key. Rates are ``numerator keys / denominator keys``. Measures marked *per case* count a person once per period
  (the "worst" key: ``yes`` over ``no``).
- **Time.** "Now" enters a few measures (a check counts once due; out of contact 7 days after; late report after
  15 days): changed_with_time lists the cases it changes between two moments.
- **One case at a time.** A unit and its key depend only on rows of its own case (and the clock): the read model
  counts a changed case again on its own. A new measure must keep to this, and to changed_with_time.

Figures are read from the read model (app.audit.kpi_model: these units counted per node and period by a refresh,
the cases changed since counted live), equal to counting the units now (``compute(..., live=True)``). The
drill-down lists always query the units themselves.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Date,
    Select,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import aliased, joinedload

from app.audit.models import AuditEvent
from app.auth.models import JurisdictionNode
from app.cases.models import Case, CaseStatus
from app.core.clock import now
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
#: 条例14: the person reports within 15 days of the decision.
REPORT_DAYS = 15
#: A check not done this many days after its due date makes the person "out of contact".
OUT_OF_CONTACT_DAYS = 7
#: The user task of a supervision cycle: drug test + face-to-face check (supervision.bpmn).
CHECK_TASK = "drug_test_check"
TIER_RANK = {"blue": 1, "yellow": 2, "red": 3}


# --- periods ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Period:
    """A month, quarter or year: ``[start, end)`` in local dates; its ``code`` is "2026-03", "2026-Q1" or "2026"."""

    start: date
    end: date
    kind: str

    @classmethod
    def of(cls, kind: str, day: date) -> "Period":
        if kind == "year":
            return cls(date(day.year, 1, 1), date(day.year + 1, 1, 1), kind)
        if kind == "quarter":
            first = 3 * ((day.month - 1) // 3) + 1
            return cls(date(day.year, first, 1), _add_months(date(day.year, first, 1), 3), kind)
        if kind == "month":
            return cls(date(day.year, day.month, 1), _add_months(date(day.year, day.month, 1), 1), kind)
        raise ValueError(f"unknown period kind {kind!r}")

    @classmethod
    def parse(cls, code: str | None, today: date | None = None) -> "Period":
        """ "2026-03" / "2026-Q1" / "2026"; anything else (or nothing) is the current month."""
        code = (code or "").strip()
        try:
            if len(code) == 4 and code.isdigit():
                return cls.of("year", date(int(code), 1, 1))
            if len(code) == 7 and code[4:6] == "-Q" and code[6] in "1234":
                return cls.of("quarter", date(int(code[:4]), 3 * int(code[6]) - 2, 1))
            if len(code) == 7 and code[4] == "-" and code[:4].isdigit() and code[5:].isdigit():
                return cls.of("month", date(int(code[:4]), int(code[5:]), 1))
        except ValueError:
            pass
        return cls.of("month", today or local_today())

    @property
    def code(self) -> str:
        if self.kind == "year":
            return f"{self.start.year}"
        if self.kind == "quarter":
            return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
        return f"{self.start.year}-{self.start.month:02d}"

    def previous(self, n: int = 1) -> "Period":
        day = self.start
        for _ in range(n):
            day = Period.of(self.kind, day - timedelta(days=1)).start
        return Period.of(self.kind, day)

    def series(self, n: int) -> list["Period"]:
        """The ``n`` periods of this kind ending with this one, oldest first."""
        return [self.previous(i) for i in range(n - 1, -1, -1)]


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def local_today() -> date:
    return now().astimezone(LOCAL_TZ).date()


def local_midnight(day: date) -> datetime:
    """00:00 in China on ``day``, as an aware UTC datetime (what the database stores)."""
    return datetime.combine(day, time.min, tzinfo=LOCAL_TZ).astimezone(UTC)


# --- results ------------------------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measure for one period: units counted per key; numerator / denominator over chosen keys."""

    period: Period | None
    counts: dict[str, int]
    numerator_keys: tuple[str, ...]
    denominator_keys: tuple[str, ...]

    @property
    def numerator(self) -> int:
        return sum(self.counts.get(k, 0) for k in self.numerator_keys)

    @property
    def denominator(self) -> int:
        return sum(self.counts.get(k, 0) for k in self.denominator_keys)

    @property
    def rate(self) -> float | None:
        """Numerator / denominator (0..1); None for counts and for an empty denominator."""
        if self.numerator_keys == self.denominator_keys or not self.denominator:
            return None
        return self.numerator / self.denominator


@dataclass(frozen=True)
class Definition:
    """What a measure is: its labels and help text (shown on the page), keys, and how its units are selected."""

    id: str
    label: object
    help: object
    kind: str  # "rate" | "count" | "breakdown"
    keys: tuple[tuple[str, object], ...]
    numerator_keys: tuple[str, ...]
    denominator_keys: tuple[str, ...]
    units: Callable | None = None
    per_case: bool = False
    snapshot: bool = False
    #: For measures the data cannot support: what is missing.
    needs: object | None = None

    @property
    def available(self) -> bool:
        return self.units is not None

    def key_label(self, key: str) -> str:
        return str(dict(self.keys).get(key, key))


@dataclass
class Result:
    definition: Definition
    node: JurisdictionNode
    period: Period
    trend: list[Figure] = field(default_factory=list)
    _scope: "_Scope | None" = None

    @property
    def figure(self) -> Figure:
        return self.trend[-1]

    def periods(self, trend: int) -> list[Period]:
        """The ``trend`` periods ending with ``period`` (snapshots: just ``period``)."""
        return [self.period] if self.definition.snapshot else self.period.series(trend)

    def set_counts(self, periods: list[Period], counts: list[dict[str, int]]) -> None:
        d = self.definition
        self.trend = [
            Figure(None if d.snapshot else p, {k: n for k, n in c.items() if n}, d.numerator_keys, d.denominator_keys)
            for p, c in zip(periods, counts, strict=True)
        ]

    def cases(self, key: str | None = None) -> Select:
        """``(case_id, at, key)`` behind the figure of ``period`` (one key, or all), newest first.

        Per-case measures give one row per case (its worst key); the others one row per unit (task or event).
        """
        d, scope = self.definition, self._scope
        units = d.units(scope).subquery()
        if d.per_case:
            rows = (
                select(units.c.case_id, func.max(units.c.at).label("at"), func.max(units.c.key).label("key"))
                .group_by(units.c.case_id)
                .subquery()
            )
        else:
            rows = units
        query = select(rows.c.case_id, rows.c.at, rows.c.key)
        if key:
            query = query.where(rows.c.key == key)
        return query.order_by(rows.c.at.desc(), rows.c.case_id.desc())


@dataclass
class _Scope:
    """What a measure's units are restricted to: the node's communities, a date span, the time of asking."""

    #: The node's materialised path: "the node and below" is a prefix match (a subquery the planner can hash;
    #: a literal list of a city's ~1,500 node ids is slower to send and to plan).
    path: str
    start: date
    end: date
    asof: datetime

    @property
    def start_at(self) -> datetime:
        return local_midnight(self.start)

    @property
    def end_at(self) -> datetime:
        return local_midnight(self.end)

    @property
    def today(self) -> date:
        """The local date at ``asof``."""
        return self.asof.astimezone(LOCAL_TZ).date()

    #: The node is the only root: every case is in it, no filter needed.
    everything: bool = False
    #: Only these cases (all in the node): the read model counts a few cases live (app.audit.kpi_model).
    #: A literal list, so that the planner starts from the cases' own index rows.
    cases: tuple[int, ...] | None = None

    def cases_here(self, case_id_column):
        """WHERE: the case's current community is in the node or below it."""
        if self.cases is not None:
            return case_id_column.in_(bindparam("cases", self.cases, expanding=True, literal_execute=True, unique=True))
        if self.everything:
            return true()
        return case_id_column.in_(select(Case.id).where(self.here(Case.jurisdiction_id)))

    def case_here(self):
        """WHERE on rehab_case rows: the case is in the node or below it."""
        return self.cases_here(Case.id) if self.cases is not None else self.here(Case.jurisdiction_id)

    def here(self, jurisdiction_column):
        """WHERE: a jurisdiction id lies in the node or below it (a path-prefix subquery)."""
        if self.everything:
            return true()
        return jurisdiction_column.in_(select(JurisdictionNode.id).where(JurisdictionNode.path.startswith(self.path)))


def _is_whole_tree(node: JurisdictionNode) -> bool:
    """The node is the only root (a city supervisor's usual view): its scope is every case."""
    if node.parent_id is not None:
        return False
    return db.session.scalar(select(func.count()).where(JurisdictionNode.parent_id.is_(None))) == 1


def compute(
    definition: Definition,
    node: JurisdictionNode,
    period: Period,
    trend: int = 1,
    whole_tree: bool | None = None,
    *,
    live: bool = False,
) -> Result:
    """The figures of ``trend`` periods ending with ``period`` (see compute_many)."""
    return compute_many([definition], node, period, trend, whole_tree, live=live)[0]


def compute_many(
    definitions: Sequence[Definition],
    node: JurisdictionNode,
    period: Period,
    trend: int = 1,
    whole_tree: bool | None = None,
    *,
    live: bool = False,
) -> list[Result]:
    """The figures of ``trend`` periods ending with ``period`` for each definition (snapshots: one, now).

    They come from the read model (app.audit.kpi_model: counts per node and period as of its last refresh, the
    cases changed since counted live), equal to counting the units now; ``live`` (or a read model that is not
    built or too far behind) counts the units directly, one grouped query per measure (bucketed with CASE).
    """
    everything = _is_whole_tree(node) if whole_tree is None else whole_tree
    asof = now()
    results = [
        Result(d, node, period, _scope=_Scope(node.path, period.start, period.end, asof, everything))
        for d in definitions
    ]
    todo = [r for r in results if r.definition.available]
    if not live and todo:
        from app.audit import kpi_model  # the read model is built from this module's measures

        kpi_model.fill(todo, trend)
    for result in todo:
        if not result.trend:
            periods = result.periods(trend)
            scope = _Scope(node.path, periods[0].start, periods[-1].end, asof, everything)
            result.set_counts(periods, count_units(result.definition, scope, periods))
    return results


def count_units(definition: Definition, scope: _Scope, periods: list[Period]) -> list[dict[str, int]]:
    """Units per key in each of ``periods`` (consecutive, spanning ``scope``): one grouped query, bucketed with
    CASE; per-case measures count each case once per period (its worst key). Snapshots: one dict, now."""
    units = definition.units(scope).subquery()
    if definition.snapshot:
        return [dict(db.session.execute(select(units.c.key, func.count()).group_by(units.c.key)).all())]
    bounds = [p.end for p in periods[:-1]]
    if isinstance(units.c.at.type, type(AuditEvent.occurred_at.type)):
        bounds = [local_midnight(b) for b in bounds]
    bucket = case(*[(units.c.at < b, i) for i, b in enumerate(bounds)], else_=len(bounds)) if bounds else literal(0)
    bucketed = select(bucket.label("b"), units.c.case_id, units.c.key).subquery()
    if definition.per_case:
        bucketed = (
            select(bucketed.c.b, bucketed.c.case_id, func.max(bucketed.c.key).label("key"))
            .group_by(bucketed.c.b, bucketed.c.case_id)
            .subquery()
        )
    counts: list[dict[str, int]] = [{} for _ in periods]
    rows = db.session.execute(
        select(bucketed.c.b, bucketed.c.key, func.count()).group_by(bucketed.c.b, bucketed.c.key)
    ).all()
    for b, key, n in rows:
        counts[int(b)][key] = n
    return counts


# --- SQL helpers (SQLite for development, PostgreSQL in production) -----------------------------------------------


def _sqlite() -> bool:
    return db.session.get_bind().dialect.name == "sqlite"


def _date_plus(column, days: int = 0, years: int = 0):
    """``column`` (a DATE) moved by whole days or years, comparable with other DATE columns."""
    if _sqlite():
        return func.date(column, f"{days:+d} days" if days else f"{years:+d} years")
    unit = f"{days} days" if days else f"{years} years"
    return cast(column + literal_column(f"interval '{unit}'"), Date)


def _later_than(later, earlier, days: int):
    """``later`` (a timestamp) is more than ``days`` days after ``earlier``."""
    if _sqlite():
        return func.julianday(later) - func.julianday(earlier) > days
    return later > earlier + literal_column(f"interval '{int(days)} days'")


def _events(scope: _Scope, type_: str) -> tuple:
    """WHERE parts for audit events of one type in the span, for cases in the node (ix_audit_event_type_time)."""
    return (
        AuditEvent.type == type_,
        AuditEvent.occurred_at >= scope.start_at,
        AuditEvent.occurred_at < scope.end_at,
        scope.cases_here(AuditEvent.case_id),
    )


def _yes(condition):
    return case((condition, "yes"), else_="no")


def _checks_due(scope: _Scope) -> tuple:
    """WHERE parts: check tasks due in the span and already due now (a check due tomorrow is not late yet)."""
    return (
        WorkItem.element_id == CHECK_TASK,
        WorkItem.due_at >= scope.start_at,
        WorkItem.due_at < min(scope.end_at, scope.asof),
        scope.cases_here(WorkItem.case_id),
    )


# --- the measures ---------------------------------------------------------------------------------------------------


def _report_units(scope: _Scope) -> Select:
    """报到率: cases decided in the period (decision_date); ``yes`` if term_started_on <= decision_date + 15 days
    (条例14). Cases not reported whose 15 days are still running are left out."""
    reported_in_time = and_(
        Case.term_started_on.is_not(None), Case.term_started_on <= _date_plus(Case.decision_date, days=REPORT_DAYS)
    )
    cutoff = scope.today - timedelta(days=REPORT_DAYS)
    return select(Case.id.label("case_id"), Case.decision_date.label("at"), _yes(reported_in_time).label("key")).where(
        scope.case_here(),
        Case.decision_date >= scope.start,
        Case.decision_date < scope.end,
        or_(Case.term_started_on.is_not(None), Case.decision_date < cutoff),
    )


def _out_of_contact_units(scope: _Scope) -> Select:
    """脱管率 (per case): drug_test_check tasks due in the period and before now; ``yes`` if not done within
    OUT_OF_CONTACT_DAYS (7) days of the due time: cancelled (missed by the grace timer), still open 7 days after
    it, or completed more than 7 days after it."""
    days = OUT_OF_CONTACT_DAYS
    missed = or_(
        WorkItem.status == WorkItemStatus.CANCELLED,
        and_(WorkItem.status == WorkItemStatus.OPEN, WorkItem.due_at < scope.asof - timedelta(days=days)),
        and_(WorkItem.status == WorkItemStatus.COMPLETED, _later_than(WorkItem.completed_at, WorkItem.due_at, days)),
    )
    return select(WorkItem.case_id, WorkItem.due_at.label("at"), _yes(missed).label("key")).where(*_checks_due(scope))


def _test_on_time_units(scope: _Scope) -> Select:
    """尿检按时率: drug_test_check tasks due in the period and before now; ``yes`` if completed by the due time."""
    on_time = and_(WorkItem.status == WorkItemStatus.COMPLETED, WorkItem.completed_at <= WorkItem.due_at)
    return select(WorkItem.case_id, WorkItem.due_at.label("at"), _yes(on_time).label("key")).where(*_checks_due(scope))


def _test_positive_units(scope: _Scope) -> Select:
    """尿检阳性率: ``tested`` = drug_test_check tasks completed in the period; ``positive`` = violation_recorded
    events of kind drug_use in the period (supervision.bpmn reports each positive result so, 条例21)."""
    tested = select(WorkItem.case_id, WorkItem.completed_at.label("at"), literal("tested").label("key")).where(
        WorkItem.element_id == CHECK_TASK,
        WorkItem.status == WorkItemStatus.COMPLETED,
        WorkItem.completed_at >= scope.start_at,
        WorkItem.completed_at < scope.end_at,
        scope.cases_here(WorkItem.case_id),
    )
    positive = select(AuditEvent.case_id, AuditEvent.occurred_at.label("at"), literal("positive").label("key")).where(
        *_events(scope, "violation_recorded"), AuditEvent.payload["kind"].as_string() == "drug_use"
    )
    return union_all(tested, positive)


def _tier_units(scope: _Scope) -> Select:
    """三色分级 (now, not period-bound): open and suspended cases keyed by their current tier (``none``: untiered)."""
    return select(
        Case.id.label("case_id"), Case.created_at.label("at"), func.coalesce(Case.tier, "none").label("key")
    ).where(scope.case_here(), Case.status != CaseStatus.CLOSED)


def _tier_movement_units(scope: _Scope) -> Select:
    """Tier movements: tier_changed events in the period, ``up`` (riskier), ``down`` or ``first`` (no tier before)."""
    old, new = AuditEvent.payload["old"].as_string(), AuditEvent.payload["new"].as_string()
    up = or_(*[and_(old == a, new == b) for a in TIER_RANK for b in TIER_RANK if TIER_RANK[b] > TIER_RANK[a]])
    key = case((old.is_(None), "first"), (up, "up"), else_="down")
    return select(AuditEvent.case_id, AuditEvent.occurred_at.label("at"), key.label("key")).where(
        *_events(scope, "tier_changed")
    )


def _violation_units(scope: _Scope) -> Select:
    """Violations: violation_recorded events in the period keyed by kind (refusal, absence, drug_use, other; 条例20;
    an event without a kind counts as other)."""
    kind = func.coalesce(AuditEvent.payload["kind"].as_string(), "other")
    return select(AuditEvent.case_id, AuditEvent.occurred_at.label("at"), kind.label("key")).where(
        *_events(scope, "violation_recorded")
    )


def _serious_violation_units(scope: _Scope) -> Select:
    """Serious violations: report_to_police tasks (violation.bpmn, opened only when serious_violation.dmn
    says serious, 条例20/21) created in the period."""
    return select(WorkItem.case_id, WorkItem.created_at.label("at"), literal("serious").label("key")).where(
        WorkItem.element_id == "report_to_police",
        WorkItem.created_at >= scope.start_at,
        WorkItem.created_at < scope.end_at,
        scope.cases_here(WorkItem.case_id),
    )


def _isolation_units(scope: _Scope) -> Select:
    """Referrals to isolation: stage_changed events to ``isolation`` in the period (the police decision, 法38/40)."""
    return select(AuditEvent.case_id, AuditEvent.occurred_at.label("at"), literal("isolated").label("key")).where(
        *_events(scope, "stage_changed"), AuditEvent.payload["new"].as_string() == "isolation"
    )


def _placement_units(scope: _Scope) -> Select:
    """就业安置率 (per case): assess_needs tasks created in the period (placement requested); ``yes`` if the case
    has a completed record_placement task created after it (employment.bpmn)."""
    placement = aliased(WorkItem)
    placed = exists().where(
        placement.case_id == WorkItem.case_id,
        placement.element_id == "record_placement",
        placement.status == WorkItemStatus.COMPLETED,
        placement.created_at >= WorkItem.created_at,
    )
    return select(WorkItem.case_id, WorkItem.created_at.label("at"), _yes(placed).label("key")).where(
        WorkItem.element_id == "assess_needs",
        WorkItem.created_at >= scope.start_at,
        WorkItem.created_at < scope.end_at,
        scope.cases_here(WorkItem.case_id),
    )


def _abstinence_units(scope: _Scope) -> Select:
    """戒断巩固率: case_closed events in the period; ``yes`` if the reason is ``expired`` and no drug use was ever
    recorded for the case (条例7: three years without relapse)."""
    relapse = aliased(AuditEvent)
    relapsed = exists().where(
        relapse.case_id == AuditEvent.case_id,
        relapse.type == "violation_recorded",
        relapse.payload["kind"].as_string() == "drug_use",
    )
    kept = and_(AuditEvent.payload["reason"].as_string() == "expired", not_(relapsed))
    return select(AuditEvent.case_id, AuditEvent.occurred_at.label("at"), _yes(kept).label("key")).where(
        *_events(scope, "case_closed")
    )


def _young_units(scope: _Scope) -> Select:
    """青少年新增率: cases decided in the period keyed by age at the decision: under18, under25 (18-24), adult,
    unknown (no birth date)."""
    key = case(
        (Case.birth_date.is_(None), "unknown"),
        (Case.birth_date > _date_plus(Case.decision_date, years=-18), "under18"),
        (Case.birth_date > _date_plus(Case.decision_date, years=-25), "under25"),
        else_="adult",
    )
    return select(Case.id.label("case_id"), Case.decision_date.label("at"), key.label("key")).where(
        scope.case_here(), Case.decision_date >= scope.start, Case.decision_date < scope.end
    )


YES_NO = (("yes", _l("yes")), ("no", _l("no")))

DEFINITIONS: dict[str, Definition] = {
    d.id: d
    for d in [
        Definition(
            "report_on_time",
            _l("On-time report rate 报到率"),
            _l(
                "Cases decided in the period that reported within 15 days of the decision (条例14: the term starts "
                "on the report day) / cases decided in the period, leaving out those whose 15 days are still "
                "running. A case whose term restarted in rehabilitation counts from its new report day."
            ),
            "rate",
            (("yes", _l("Reported within 15 days")), ("no", _l("Late or not reported"))),
            ("yes",),
            ("yes", "no"),
            _report_units,
        ),
        Definition(
            "out_of_contact",
            _l("Out of contact 脱管率"),
            _l(
                "People with a drug test / check-in task due in the period that was not done within %(days)d days "
                "of its due date (still open after that, done later, or closed as missed by the grace timer) / "
                "people with a check due in the period (checks due later than now are not counted yet).",
                days=OUT_OF_CONTACT_DAYS,
            ),
            "rate",
            (("yes", _l("Out of contact")), ("no", _l("In contact"))),
            ("yes",),
            ("yes", "no"),
            _out_of_contact_units,
            per_case=True,
        ),
        Definition(
            "test_on_time",
            _l("Drug tests on time 尿检按时率"),
            _l(
                "Drug test / check-in tasks due in the period that were done by their due time / tasks due in the "
                "period (up to now)."
            ),
            "rate",
            (("yes", _l("On time")), ("no", _l("Late or missed"))),
            ("yes",),
            ("yes", "no"),
            _test_on_time_units,
        ),
        Definition(
            "test_positive",
            _l("Positive tests 尿检阳性率"),
            _l(
                "Drug use recorded as a violation in the period (supervision reports every positive test this way, "
                "条例21; drug use reported directly by the police counts too) / drug test tasks done in the period."
            ),
            "rate",
            (("positive", _l("Positive")), ("tested", _l("Tests done"))),
            ("positive",),
            ("tested",),
            _test_positive_units,
        ),
        Definition(
            "tiers",
            _l("Tiers now 三色分级"),
            _l("Open and suspended cases by their current tier (red / yellow / blue, tier.dmn); not period-bound."),
            "breakdown",
            (("red", _l("Red")), ("yellow", _l("Yellow")), ("blue", _l("Blue")), ("none", _l("Not tiered"))),
            ("red",),
            ("red", "yellow", "blue", "none"),
            _tier_units,
            snapshot=True,
        ),
        Definition(
            "tier_movements",
            _l("Tier movements 分级变动"),
            _l("Tier changes recorded in the period: up (to a riskier tier), down, or a first tier."),
            "count",
            (("up", _l("Up")), ("down", _l("Down")), ("first", _l("First tier"))),
            ("up", "down", "first"),
            ("up", "down", "first"),
            _tier_movement_units,
        ),
        Definition(
            "violations",
            _l("Violations 违规"),
            _l(
                "Violations counted in the period (条例20): refused or missed tests, unauthorised absences, drug use, "
                "other."
            ),
            "count",
            (
                ("refusal", _l("Refusal")),
                ("absence", _l("Absence")),
                ("drug_use", _l("Drug use")),
                ("other", _l("Other")),
            ),
            ("refusal", "absence", "drug_use", "other"),
            ("refusal", "absence", "drug_use", "other"),
            _violation_units,
        ),
        Definition(
            "serious_violations",
            _l("Serious violations 严重违反协议"),
            _l(
                "Violations classed serious in the period (条例20 thresholds or drug use, 条例21): a report to "
                "the police was opened."
            ),
            "count",
            (("serious", _l("Serious")),),
            ("serious",),
            ("serious",),
            _serious_violation_units,
        ),
        Definition(
            "isolation_referrals",
            _l("Referred to isolation 强制隔离"),
            _l("Compulsory isolation decided in the period (法38/40): the case moved to the isolation stage."),
            "count",
            (("isolated", _l("Isolated")),),
            ("isolated",),
            ("isolated",),
            _isolation_units,
        ),
        Definition(
            "placement",
            _l("Employment placement 就业安置率"),
            _l(
                "People whose employment needs were assessed in the period (placement requested) who have since "
                "been placed in a job (placement recorded) / people assessed in the period."
            ),
            "rate",
            (("yes", _l("Placed")), ("no", _l("Not placed (yet)"))),
            ("yes",),
            ("yes", "no"),
            _placement_units,
            per_case=True,
        ),
        Definition(
            "abstinence",
            _l("3-year abstinence 戒断巩固率"),
            _l(
                "Cases closed in the period whose term expired with no drug use ever recorded (条例7) / cases "
                "closed in the period (expired, terminated or other)."
            ),
            "rate",
            (("yes", _l("Expired without relapse")), ("no", _l("Other closure"))),
            ("yes",),
            ("yes", "no"),
            _abstinence_units,
        ),
        Definition(
            "young_new",
            _l("New young cases 青少年新增率"),
            _l(
                "Cases decided in the period whose person was under 25 at the decision (of whom under 18) / cases "
                "decided in the period. Age from the recorded birth date."
            ),
            "rate",
            (
                ("under18", _l("Under 18")),
                ("under25", _l("18 to 24")),
                ("adult", _l("25 or older")),
                ("unknown", _l("Birth date unknown")),
            ),
            ("under18", "under25"),
            ("under18", "under25", "adult", "unknown"),
            _young_units,
        ),
        Definition(
            "control_rate",
            _l("Under control 收戒管控率"),
            _l("Share of known drug users under some form of control."),
            "rate",
            (),
            (),
            (),
            needs=_l("the number of all known drug users (the police register), which this system does not hold"),
        ),
        Definition(
            "retention",
            _l("Job retention 就业巩固"),
            _l("Placed people still in work at the 1/3/6-month follow-ups."),
            "rate",
            (),
            (),
            (),
            needs=_l("follow-up outcomes in a table or event (they are only in the completed task's form data)"),
        ),
        Definition(
            "satisfaction",
            _l("Satisfaction 满意度"),
            _l("Survey score of people in treatment and their families."),
            "rate",
            (),
            (),
            (),
            needs=_l("a satisfaction survey, which the system does not run"),
        ),
    ]
}


def _measure(measure_id: str):
    definition = DEFINITIONS[measure_id]

    def run(node: JurisdictionNode, period: Period, trend: int = 1) -> Result:
        return compute(definition, node, period, trend)

    run.__name__ = run.__qualname__ = measure_id
    run.__doc__ = f"{definition.label}: the figure and the cases behind it.\n\n{definition.units.__doc__}"
    return run


report_on_time = _measure("report_on_time")
out_of_contact = _measure("out_of_contact")
test_on_time = _measure("test_on_time")
test_positive = _measure("test_positive")
tiers = _measure("tiers")
tier_movements = _measure("tier_movements")
violations = _measure("violations")
serious_violations = _measure("serious_violations")
isolation_referrals = _measure("isolation_referrals")
placement = _measure("placement")
abstinence = _measure("abstinence")
young_new = _measure("young_new")


def dashboard(node: JurisdictionNode, period: Period, trend: int = 12) -> list[Result]:
    """Every measure for the node: the figure of ``period`` and the trend of ``trend`` periods ending with it."""
    return compute_many(list(DEFINITIONS.values()), node, period, trend)


def changed_with_time(since: datetime, until: datetime) -> Select:
    """Ids of the cases whose units or keys differ between asking at ``since`` and at ``until`` with no row written.

    Time enters the measures only here (keep in step with them): a check counts once due (_checks_due), an open
    one becomes "out of contact" OUT_OF_CONTACT_DAYS after its due time, and a decided case that has not reported
    counts as late REPORT_DAYS after the decision (_report_units). Either order of the two times.
    """
    lo, hi = min(since, until), max(since, until)
    grace = timedelta(days=OUT_OF_CONTACT_DAYS)
    falling_due = select(WorkItem.case_id).where(
        WorkItem.element_id == CHECK_TASK, WorkItem.due_at >= lo, WorkItem.due_at < hi
    )
    falling_overdue = select(WorkItem.case_id).where(
        WorkItem.element_id == CHECK_TASK,
        WorkItem.status == WorkItemStatus.OPEN,
        WorkItem.due_at >= lo - grace,
        WorkItem.due_at < hi - grace,
    )
    cutoff = [t.astimezone(LOCAL_TZ).date() - timedelta(days=REPORT_DAYS) for t in (lo, hi)]
    turning_late = select(Case.id).where(
        Case.term_started_on.is_(None), Case.decision_date >= cutoff[0], Case.decision_date < cutoff[1]
    )
    return union_all(falling_due, falling_overdue, turning_late)


def case_rows(result: Result, key: str | None, page: int = 1, per_page: int = 50) -> tuple[int, list[tuple]]:
    """(total, [(case, at, key), ...]) for one page of the drill-down list; the total is the figure's (one row
    per unit, or per case for per-case measures: the same number, not counted again)."""
    counts = result.figure.counts
    total = counts.get(key, 0) if key else sum(counts.values())
    rows = result.cases(key).subquery()
    page_rows = db.session.execute(
        select(Case, rows.c.at, rows.c.key)
        .join(rows, rows.c.case_id == Case.id)
        .options(joinedload(Case.jurisdiction))
        .order_by(rows.c.at.desc(), Case.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return total, [tuple(r) for r in page_rows]


def all_case_rows(result: Result, key: str | None) -> Sequence[tuple]:
    """Every (case, at, key) row behind the figure (CSV export), newest first."""
    rows = result.cases(key).subquery()
    return db.session.execute(
        select(Case, rows.c.at, rows.c.key)
        .join(rows, rows.c.case_id == Case.id)
        .options(joinedload(Case.jurisdiction))
        .order_by(rows.c.at.desc(), Case.id.desc())
    ).all()
