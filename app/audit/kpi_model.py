"""The KPI read model: each measure's units counted per jurisdiction node, period and key (kpi_count).

The dashboard sums a few of these rows instead of scanning work items and audit events, and its figures stay
equal to counting the units now (what app.audit.kpi does with ``live=True``):

- **Counts.** kpi_case holds what every case contributes: its units per measure, month and key, counted with
  app.audit.kpi's own unit queries as of the last refresh, and the node it was in. kpi_count holds their sums per
  node (the case's current node itself; a node's figure sums its subtree), month, quarter and year (snapshot
  measures: grain ``now``); per-case measures count a case once per period with its worst key. Every refresh
  changes both in one transaction, kpi_count by the difference between a case's old and new contribution, so
  kpi_count is always the sum of kpi_case.
- **Changes.** A transaction that writes cases, work items or audit events of cases inserts, as it commits, one
  kpi_dirty row per case it touched (plain appends, so writers never wait for each other); INSERT, UPDATE and
  DELETE statements on those tables sent through the session count too (one touching unknown cases marks a row
  with no case: everything is counted again).
- **Time.** Some units change with the clock alone (app.audit.kpi.changed_with_time: checks falling due or
  overdue, unreported cases turning late).
- **Reading.** A case is *stale* if a kpi_dirty row names it or time changed it since the refresh. A figure is
  the kpi_count rows, minus the stale cases' stored contributions, plus a live count of the stale cases: exact
  whatever the refresh missed. A reader reads the generation first and checks it again after its last row (a
  refresh that committed in between makes it read again). With no read model yet, or more stale cases than
  STALE_LIMIT, figures are counted live.

A refresh (``refresh()``: every pass of ``flask worker``; ``flask kpi refresh`` counts every case again) counts
the stale cases again and removes the kpi_dirty rows it read before counting; one runs at a time (it locks the
kpi_state row; other workers skip their turn).
"""

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from itertools import chain

from flask import current_app
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Table,
    cast,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    literal_column,
    null,
    select,
    text,
    type_coerce,
    union,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, aliased, mapped_column

from app.audit import kpi
from app.audit.chain import held_rows, insert_at_commit
from app.audit.marks import mark_cases, marked_cases
from app.auth.models import JurisdictionNode
from app.cases.models import Case
from app.core.clock import now
from app.core.db import UTCDateTime, transaction
from app.engine.models import WorkItem
from app.extensions import db

GRAINS = ("month", "quarter", "year")
#: The read model holds periods from FIRST_DAY to LAST_DAY; others are counted live. Snapshot rows use FIRST_DAY.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2200, 1, 1)
#: More stale cases than this (the worker is far behind) and figures are counted live.
STALE_LIMIT = 2000
#: Cases counted per round of a refresh.
CHUNK = 1000
#: SQLite keeps UTC text: local time is a fixed offset there (Asia/Shanghai has had no DST since 1991).
_SQLITE_OFFSET = f"'{kpi.LOCAL_TZ.utcoffset(datetime(2020, 1, 1)).total_seconds() / 3600:+.0f} hours'"


class KpiCount(db.Model):
    """Units of one measure in one period, for the cases whose current node is ``node_id``, by key."""

    __tablename__ = "kpi_count"
    __table_args__ = (Index("ix_kpi_count_node", "node_id"),)

    #: A key of app.audit.kpi.DEFINITIONS.
    measure: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: month, quarter or year; ``now`` for snapshot measures (tiers).
    grain: Mapped[str] = mapped_column(String(8), primary_key=True)
    #: First local day of the period (FIRST_DAY for ``now``).
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    #: The node itself, not its ancestors: a node's figure sums its subtree (path prefix).
    node_id: Mapped[int] = mapped_column(ForeignKey("jurisdiction_node.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(20), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class KpiCase(db.Model):
    """What one case contributes to kpi_count, as of the last refresh (no row: nothing)."""

    __tablename__ = "kpi_case"

    case_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: The case's node when counted.
    node_id: Mapped[int] = mapped_column(Integer)
    #: ``[[measure, first day of the month ("YYYY-MM-DD"; null for snapshots), key, units], ...]``; per-case
    #: measures: one entry per month, with the month's worst key and 1.
    counts: Mapped[list] = mapped_column(JSON)


class KpiDirty(db.Model):
    """A change the read model has not counted yet: a case written, or (``case_id`` null) unknown cases."""

    __tablename__ = "kpi_dirty"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[int | None] = mapped_column(Integer)


class KpiState(db.Model):
    """The one row (id 1) saying when the read model was counted; a refresh locks it."""

    __tablename__ = "kpi_state"
    __table_args__ = (CheckConstraint("id = 1", name="ck_kpi_state_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: The time the read model is counted as of; None: never built (figures are counted live).
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Moves on with every refresh that changed the read model: readers check it did not move under them.
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


# --- marking changes ------------------------------------------------------------------------------------------------

#: Tables whose rows belong to a case, and the column naming it.
_CASE_COLUMN = {"rehab_case": "id", "work_item": "case_id", "audit_event": "case_id"}
#: A kpi_dirty case_id meaning "unknown cases": count everything again.
_UNKNOWN = None


@event.listens_for(WorkItem.case_id, "set", active_history=True)
def _keep_old_case(target, value, old, initiator):
    """Load the case a work item leaves (if not loaded), for _mark_flushed."""
    return value


@event.listens_for(Session, "after_flush")
def _mark_flushed(session: Session, flush_context) -> None:
    """Mark the cases of the cases and work items this flush wrote."""
    case_ids: set[int] = set()
    dirty = (
        obj
        for obj in session.dirty
        if isinstance(obj, Case | WorkItem) and session.is_modified(obj, include_collections=False)
    )
    for obj in chain(session.new, dirty, session.deleted):
        if isinstance(obj, Case):
            case_ids.add(obj.id)
        elif isinstance(obj, WorkItem):
            case_ids.update(chain(inspect(obj).attrs.case_id.history.sum(), [obj.case_id]))
    case_ids.discard(None)
    if case_ids:
        mark_cases(session, case_ids)


@event.listens_for(Session, "do_orm_execute")
def _mark_statements(state: ORMExecuteState) -> None:
    """Mark the cases an INSERT, UPDATE or DELETE statement on their tables touches (bulk writes skip flushes)."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    column = _CASE_COLUMN.get(getattr(table, "name", ""))
    if column is None:
        return
    session = state.session
    if state.is_insert:
        rows = state.parameters if isinstance(state.parameters, list) else [state.parameters or {}]
        if any(column not in row or column == "id" and row[column] is None for row in rows):
            mark_cases(session, [_UNKNOWN])  # rows from a SELECT, or new cases' ids from the database
        else:
            mark_cases(session, [row[column] for row in rows if row[column] is not None])
        return
    where = state.statement.whereclause
    if where is None:
        mark_cases(session, [_UNKNOWN])
        return
    case_ids = session.connection().execute(select(table.c[column]).where(where).distinct()).scalars()
    mark_cases(session, [case_id for case_id in case_ids if case_id is not None])


@insert_at_commit
def _marks_to_insert(session: Session) -> tuple[Table, list[dict]]:
    """The transaction's marks, with the cases of its audit events: inserted as it commits."""
    case_ids = marked_cases(session)
    case_ids.update(row["case_id"] for row in held_rows(session) if row["case_id"] is not None)
    return KpiDirty.__table__, [{"case_id": case_id} for case_id in case_ids]


def stale_cases(since: datetime, until: datetime) -> Select:
    """Ids of the cases whose contribution, counted at ``since``, may differ from counting them at ``until``."""
    by_time = kpi.changed_with_time(since, until).subquery()
    return union(select(KpiDirty.case_id).where(KpiDirty.case_id.is_not(None)), select(by_time.c.case_id))


def _unknown_changes():
    """SQL: a change to unknown cases is waiting (everything is counted again)."""
    return exists().where(KpiDirty.case_id.is_(None))


# --- contributions ------------------------------------------------------------------------------------------------

#: One entry of KpiCase.counts: (measure, month or None, key, units).
Entry = tuple[str, date | None, str, int]


def contributions(case_ids: Sequence[int], asof: datetime, first: date = FIRST_DAY) -> dict[int, list[Entry]]:
    """What each case contributes now (months from ``first`` on): app.audit.kpi's units, one query per measure."""
    out: dict[int, list[Entry]] = {}
    for definition in kpi.DEFINITIONS.values():
        if not definition.available:
            continue
        scope = kpi._Scope("/", first, LAST_DAY, asof, everything=True, cases=tuple(case_ids))
        units = definition.units(scope).subquery()
        if definition.snapshot:
            query = select(units.c.case_id, null(), units.c.key, func.count()).group_by(units.c.case_id, units.c.key)
        else:
            month = type_coerce(_month_start(units.c.at, isinstance(units.c.at.type, UTCDateTime)), Date)
            if definition.per_case:  # the month's worst key, once
                query = select(units.c.case_id, month, func.max(units.c.key), literal_column("1"))
                query = query.group_by(units.c.case_id, month)
            else:
                query = select(units.c.case_id, month, units.c.key, func.count())
                query = query.group_by(units.c.case_id, month, units.c.key)
        for case_id, month, key, n in db.session.execute(query):
            out.setdefault(case_id, []).append((definition.id, month, key, n))
    return out


@cache
def _period_of(grain: str, month: date) -> date:
    return kpi.Period.of(grain, month).start


def cells(entries: Iterable[Entry]) -> Counter:
    """A case's kpi_count rows: {(measure, grain, period_start, key): n}."""
    out: Counter = Counter()
    worst: dict[tuple, str] = {}
    for measure, month, key, n in entries:
        if month is None:
            out[(measure, "now", FIRST_DAY, key)] += n
            continue
        per_case = kpi.DEFINITIONS[measure].per_case
        for grain in GRAINS:
            cell = (measure, grain, _period_of(grain, month))
            if per_case:
                worst[cell] = max(worst.get(cell, key), key)
            else:
                out[(*cell, key)] += n
    for cell, key in worst.items():
        out[(*cell, key)] += 1
    return out


def _figure(entries: Iterable[Entry], definition: kpi.Definition, period: kpi.Period) -> Counter:
    """A case's counts for one measure and period (the ``cells`` of that period)."""
    mine = [e for e in entries if e[0] == definition.id]
    if definition.snapshot:
        return Counter({key: n for _, _, key, n in mine})
    mine = [e for e in mine if period.start <= e[1] < period.end]
    if definition.per_case:
        return Counter({max(key for _, _, key, _ in mine): 1}) if mine else Counter()
    out: Counter = Counter()
    for _, _, key, n in mine:
        out[key] += n
    return out


def _to_json(entries: list[Entry]) -> list:
    return [[m, d.isoformat() if d else None, k, n] for m, d, k, n in entries]


def _from_json(counts: list) -> list[Entry]:
    return [(m, date.fromisoformat(d) if d else None, k, n) for m, d, k, n in counts]


# --- reading ----------------------------------------------------------------------------------------------------


@dataclass
class Stale:
    """A case changed since the refresh: where it was counted, what it contributed, where it is now."""

    stored_path: str | None
    entries: list[Entry]
    path: str | None


@dataclass
class ReadModel:
    """The read model as one reader sees it: the generation it started from and the stale cases."""

    generation: int
    refreshed_at: datetime
    stale: dict[int, Stale]

    @classmethod
    def open(cls, asof: datetime) -> "ReadModel | None":
        """The read model for figures as of ``asof``; None if never built or too far behind (count live)."""
        state = db.session.execute(
            select(KpiState.generation, KpiState.refreshed_at, _unknown_changes().label("unknown"))
        ).first()
        if state is None or state.refreshed_at is None or state.unknown:
            return None
        ids = db.session.scalars(stale_cases(state.refreshed_at, asof).limit(STALE_LIMIT + 1)).all()
        if len(ids) > STALE_LIMIT:
            return None
        stale = {case_id: Stale(None, [], None) for case_id in ids}
        if ids:
            stored_node = aliased(JurisdictionNode)
            for case_id, path, counts in db.session.execute(
                select(KpiCase.case_id, stored_node.path, KpiCase.counts)
                .join(stored_node, stored_node.id == KpiCase.node_id)
                .where(KpiCase.case_id.in_(ids))
            ):
                stale[case_id].stored_path, stale[case_id].entries = path, _from_json(counts)
            for case_id, path in db.session.execute(
                select(Case.id, JurisdictionNode.path)
                .join(JurisdictionNode, JurisdictionNode.id == Case.jurisdiction_id)
                .where(Case.id.in_(ids))
            ):
                stale[case_id].path = path
        return cls(state.generation, state.refreshed_at, stale)

    def unchanged(self) -> bool:
        """No refresh committed since ``open``: everything read in between belongs to one generation."""
        return db.session.scalar(select(KpiState.generation)) == self.generation

    def counts(self, results: Sequence[kpi.Result], trend: int) -> list[list[dict[str, int]] | None]:
        """For each result (all of one node and time): counts per key for each of its periods: kpi_count (one
        query per grain), minus what the stale cases contributed, plus a live count of them; None outside
        FIRST_DAY..LAST_DAY."""
        answers: list[list[dict[str, int]] | None] = [None] * len(results)
        by_rows: dict[tuple, list[int]] = {}  # (grain, period starts) -> results
        for i, result in enumerate(results):
            periods = result.periods(trend)
            if periods[0].start >= FIRST_DAY and periods[-1].end <= LAST_DAY:
                rows = ("now", (FIRST_DAY,)) if result.definition.snapshot else (periods[0].kind, _starts(periods))
                by_rows.setdefault(rows, []).append(i)
                answers[i] = [{} for _ in rows[1]]
        scope = results[0]._scope
        for (grain, starts), members in by_rows.items():
            position = {start: i for i, start in enumerate(starts)}
            index = {results[i].definition.id: i for i in members}
            query = select(KpiCount.measure, KpiCount.period_start, KpiCount.key, func.sum(KpiCount.n)).where(
                KpiCount.measure.in_(list(index)), KpiCount.grain == grain, KpiCount.period_start.in_(starts)
            )
            if not scope.everything:
                query = query.where(scope.here(KpiCount.node_id))
            query = query.group_by(KpiCount.measure, KpiCount.period_start, KpiCount.key)
            for measure, start, key, n in db.session.execute(query):
                answers[index[measure]][position[start]][key] = int(n)

        def here(path: str | None) -> bool:
            return path is not None and (scope.everything or path.startswith(scope.path))

        counted = [s.entries for s in self.stale.values() if here(s.stored_path)]
        now_here = tuple(sorted(case_id for case_id, s in self.stale.items() if here(s.path)))
        for result, counts in zip(results, answers, strict=True):
            if counts is None:
                continue
            periods = result.periods(trend)
            for total, period in zip(counts, periods, strict=True):
                for entries in counted:
                    for key, n in _figure(entries, result.definition, period).items():
                        total[key] -= n
            if now_here:
                live = kpi._Scope(
                    scope.path, periods[0].start, periods[-1].end, scope.asof, scope.everything, cases=now_here
                )
                for total, more in zip(counts, kpi.count_units(result.definition, live, periods), strict=True):
                    for key, n in more.items():
                        total[key] = total.get(key, 0) + n
        return answers


def _starts(periods: list[kpi.Period]) -> tuple[date, ...]:
    return tuple(p.start for p in periods)


def fill(results: Sequence[kpi.Result], trend: int, attempts: int = 3) -> None:
    """Set the trend of each result that the read model can answer (all share one scope and time)."""
    for _ in range(attempts):
        model = ReadModel.open(results[0]._scope.asof)
        if model is None:
            return
        answers = model.counts(results, trend)
        if model.unchanged():
            for result, counts in zip(results, answers, strict=True):
                if counts is not None:
                    result.set_counts(result.periods(trend), counts)
            return


# --- refreshing ---------------------------------------------------------------------------------------------------


@dataclass
class Refreshed:
    full: bool
    #: Cases counted again.
    cases: int
    #: kpi_count rows after a full or ``since`` refresh (not counted for the worker's).
    rows: int | None
    seconds: float


def refresh(*, full: bool = False, since: date | None = None, wait: bool = False) -> Refreshed | None:
    """Bring the read model up to now: count the stale cases again; or every case (``full``, the first time, or
    after a change to unknown cases); ``since``: also count every case's months from the one holding that date on.

    The read model exists once ``full`` or ``since`` made it (or migration 0007 asked for it): until then a plain
    refresh (the worker's) does nothing. Flushes; the caller commits. Returns None if there is nothing to refresh
    or another process is refreshing (``wait``: wait for it instead).
    """
    started = time.perf_counter()
    state = _lock_state(wait, create=full or since is not None)
    if state is None:
        return None
    asof = now()
    marks = db.session.execute(select(KpiDirty.id, KpiDirty.case_id)).all()  # before counting: later ones stay
    full = full or state.refreshed_at is None or any(case_id is None for _, case_id in marks)
    if full:
        db.session.execute(delete(KpiCount))
        db.session.execute(delete(KpiCase))
        cases = _all_cases()
        for chunk in _chunks(cases, CHUNK):
            _count_again(chunk, asof, stored=False)
    else:
        cases = sorted(db.session.scalars(stale_cases(state.refreshed_at, asof)))
        for chunk in _chunks(cases, CHUNK):
            _count_again(chunk, asof)
        if since is not None:  # the others: from the month holding ``since`` on (the stale ones are done)
            stale = set(cases)
            others = [case_id for case_id in _all_cases() if case_id not in stale]
            for chunk in _chunks(others, CHUNK):
                _count_again(chunk, asof, first=kpi.Period.of("month", since).start)
            cases += others
    for chunk in _chunks([mark_id for mark_id, _ in marks], 5000):
        db.session.execute(delete(KpiDirty).where(KpiDirty.id.in_(chunk)))
    if full or cases or marks:
        state.generation += 1
    state.refreshed_at = asof
    db.session.flush()
    rows = None
    if full or since is not None:
        if not kpi._sqlite():
            db.session.execute(text("ANALYZE kpi_count"))  # the planner sees the new rows at once
        rows = db.session.scalar(select(func.count()).select_from(KpiCount))
    return Refreshed(full, len(cases), rows, time.perf_counter() - started)


def worker_refresh() -> Refreshed | None:
    """The worker's turn: refresh in a transaction of its own. A failure is logged, not raised: the worker must go
    on firing timers, and figures stay exact meanwhile (the cases changed since are counted live)."""
    try:
        with transaction():
            return refresh()
    except Exception:
        current_app.logger.exception("the KPI read model could not be refreshed")
        return None


def _lock_state(wait: bool, create: bool) -> KpiState | None:
    """The kpi_state row, locked; None if missing (``create``: create it) or if another transaction holds it and
    not ``wait``."""
    if db.session.scalar(select(KpiState.id)) is None:
        if not create:
            return None
        dialect_insert = sqlite_insert if kpi._sqlite() else pg_insert
        db.session.execute(dialect_insert(KpiState).values(id=1, generation=0).on_conflict_do_nothing())
    query = select(KpiState).where(KpiState.id == 1).with_for_update(skip_locked=not wait)
    return db.session.scalars(query.execution_options(populate_existing=True)).first()


def _all_cases() -> list[int]:
    """Every case (and every case counted before), a node's cases together: each round touches few nodes' rows."""
    current = db.session.execute(select(Case.id, Case.jurisdiction_id)).all()
    gone = db.session.execute(
        select(KpiCase.case_id, KpiCase.node_id).where(~exists().where(Case.id == KpiCase.case_id))
    ).all()
    return [case_id for case_id, _ in sorted(chain(current, gone), key=lambda row: (row[1], row[0]))]


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


def _count_again(case_ids: Sequence[int], asof: datetime, first: date | None = None, stored: bool = True) -> None:
    """Count these cases again (months from ``first`` on, keeping their earlier months) and move kpi_count by the
    difference from what they contributed before (``stored=False``: nothing, the read model is being rebuilt)."""
    old: dict[int, tuple[int, list[Entry]]] = {}
    if stored:
        query = select(KpiCase.case_id, KpiCase.node_id, KpiCase.counts).where(KpiCase.case_id.in_(case_ids))
        old = {case_id: (node_id, _from_json(counts)) for case_id, node_id, counts in db.session.execute(query)}
    nodes = dict(db.session.execute(select(Case.id, Case.jurisdiction_id).where(Case.id.in_(case_ids))).all())
    fresh = contributions([c for c in case_ids if c in nodes], asof, first or FIRST_DAY)
    change: Counter = Counter()
    blobs = []
    for case_id in case_ids:
        old_node, before = old.get(case_id, (None, []))
        after = fresh.get(case_id, [])
        if first is not None:
            after = [e for e in before if e[1] is not None and e[1] < first] + after
        for cell, n in cells(before).items():
            change[(old_node, *cell)] -= n
        if case_id in nodes and after:
            for cell, n in cells(after).items():
                change[(nodes[case_id], *cell)] += n
            blobs.append({"case_id": case_id, "node_id": nodes[case_id], "counts": _to_json(after)})
    if stored:
        db.session.execute(delete(KpiCase).where(KpiCase.case_id.in_(case_ids)))
    if blobs:
        db.session.execute(insert(KpiCase.__table__), blobs)
    _add(change)


def _add(change: Counter) -> None:
    """kpi_count += change ({(node, measure, grain, period_start, key): n}); rows that reach 0 go."""
    rows = [
        {"node_id": node, "measure": m, "grain": g, "period_start": start, "key": key, "n": n}
        for (node, m, g, start, key), n in change.items()
        if n
    ]
    if not rows:
        return
    upsert = (sqlite_insert if kpi._sqlite() else pg_insert)(KpiCount.__table__)
    upsert = upsert.on_conflict_do_update(
        index_elements=["measure", "grain", "period_start", "node_id", "key"],
        set_={"n": KpiCount.__table__.c.n + upsert.excluded.n},
    )
    db.session.execute(upsert, rows)
    nodes = sorted({row["node_id"] for row in rows})
    db.session.execute(delete(KpiCount).where(KpiCount.n == 0, KpiCount.node_id.in_(nodes)))


def _month_start(column, timestamp: bool):
    """SQL: the first local day of the month a timestamp (or date) falls in."""
    if kpi._sqlite():
        local = (column, literal_column(_SQLITE_OFFSET)) if timestamp else (column,)
        return func.date(*local, literal_column("'start of month'"))
    zone = literal_column(f"'{kpi.LOCAL_TZ.key}'")  # literal SQL, not a parameter: it is repeated in GROUP BY
    local = func.timezone(zone, column) if timestamp else cast(column, DateTime())
    return cast(func.date_trunc(literal_column("'month'"), local), Date)
