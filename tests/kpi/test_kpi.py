"""KPIs (domain.md §4): every figure equals an independent count over the same tables, done here in Python,
whether counted live or read from the read model (app.audit.kpi_model), fresh or with changes since its refresh.

The data comes from a short simulation of the real workflows (app.simulation), plus a few hand-made rows for
what a short simulation never reaches (closed terms, young people, period boundaries).
"""

import csv
import io
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app import engine
from app.audit import kpi, kpi_model
from app.audit.log import record
from app.audit.models import AuditEvent
from app.auth.models import JurisdictionNode, NodeLevel
from app.auth.operations import create_node, create_user
from app.cases.models import Case, CaseStatus
from app.cases.operations import create_case
from app.core.clock import aware
from app.core.db import transaction
from app.engine.models import ProcessInstance, WorkItem, WorkItemStatus
from app.extensions import db
from tests.conftest import PASSWORD

CHINA = ZoneInfo("Asia/Shanghai")
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
RANK = {"blue": 1, "yellow": 2, "red": 3}
AVAILABLE = [d for d in kpi.DEFINITIONS.values() if d.available]


# --- the independent counts -----------------------------------------------------------------------------------------


def _day(value: datetime) -> date:
    return aware(value).astimezone(CHINA).date()


def _in(day: date | None, period: kpi.Period) -> bool:
    return day is not None and period.start <= day < period.end


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def load_tables() -> tuple[list, list, list]:
    """Every case, work item and audit event, as ORM objects."""
    return (
        list(db.session.scalars(select(Case))),
        list(db.session.scalars(select(WorkItem))),
        list(db.session.scalars(select(AuditEvent))),
    )


def direct_counts(node: JurisdictionNode, period: kpi.Period, asof: datetime, tables=None) -> dict[str, Counter]:
    """Each measure's counts per key, from plain ORM rows and Python (no SQL from app.audit.kpi)."""
    all_cases, all_items, all_events = tables or load_tables()
    cases = {c.id: c for c in all_cases if c.jurisdiction.path.startswith(node.path)}
    items = [i for i in all_items if i.case_id in cases]
    events = [e for e in all_events if e.case_id in cases]
    today = asof.astimezone(CHINA).date()
    out: dict[str, Counter] = {}

    out["report_on_time"] = Counter(
        "yes" if c.term_started_on and (c.term_started_on - c.decision_date).days <= 15 else "no"
        for c in cases.values()
        if _in(c.decision_date, period) and (c.term_started_on or c.decision_date < today - timedelta(days=15))
    )
    checks = [i for i in items if i.element_id == "drug_test_check" and i.due_at and _in(_day(i.due_at), period)]
    checks = [i for i in checks if aware(i.due_at) < asof]

    def missed(i: WorkItem) -> bool:
        if i.status == WorkItemStatus.CANCELLED:
            return True
        if i.status == WorkItemStatus.OPEN:
            return aware(i.due_at) < asof - timedelta(days=7)
        return aware(i.completed_at) - aware(i.due_at) > timedelta(days=7)

    per_case: dict[int, bool] = {}
    for i in checks:
        per_case[i.case_id] = per_case.get(i.case_id, False) or missed(i)
    out["out_of_contact"] = Counter("yes" if v else "no" for v in per_case.values())
    out["test_on_time"] = Counter(
        "yes" if i.status == WorkItemStatus.COMPLETED and aware(i.completed_at) <= aware(i.due_at) else "no"
        for i in checks
    )
    in_period = [e for e in events if _in(_day(e.occurred_at), period)]
    out["test_positive"] = Counter(
        tested=sum(
            1
            for i in items
            if i.element_id == "drug_test_check"
            and i.status == WorkItemStatus.COMPLETED
            and _in(_day(i.completed_at), period)
        ),
        positive=sum(1 for e in in_period if e.type == "violation_recorded" and e.payload.get("kind") == "drug_use"),
    )
    out["tiers"] = Counter(c.tier or "none" for c in cases.values() if c.status != CaseStatus.CLOSED)

    def movement(e: AuditEvent) -> str:
        old, new = e.payload.get("old"), e.payload.get("new")
        return "first" if old is None else "up" if RANK[new] > RANK[old] else "down"

    out["tier_movements"] = Counter(movement(e) for e in in_period if e.type == "tier_changed")
    out["violations"] = Counter(e.payload["kind"] for e in in_period if e.type == "violation_recorded")
    out["serious_violations"] = Counter(
        serious=sum(1 for i in items if i.element_id == "report_to_police" and _in(_day(i.created_at), period))
    )
    out["isolation_referrals"] = Counter(
        isolated=sum(1 for e in in_period if e.type == "stage_changed" and e.payload.get("new") == "isolation")
    )
    placements = [i for i in items if i.element_id == "record_placement" and i.status == WorkItemStatus.COMPLETED]
    placed: dict[int, bool] = {}
    for i in items:
        if i.element_id == "assess_needs" and _in(_day(i.created_at), period):
            hit = any(p.case_id == i.case_id and aware(p.created_at) >= aware(i.created_at) for p in placements)
            placed[i.case_id] = placed.get(i.case_id, False) or hit
    out["placement"] = Counter("yes" if v else "no" for v in placed.values())
    relapsed = {e.case_id for e in events if e.type == "violation_recorded" and e.payload.get("kind") == "drug_use"}
    out["abstinence"] = Counter(
        "yes" if e.payload.get("reason") == "expired" and e.case_id not in relapsed else "no"
        for e in in_period
        if e.type == "case_closed"
    )

    def age_key(c: Case) -> str:
        if c.birth_date is None:
            return "unknown"
        age = _age(c.birth_date, c.decision_date)
        return "under18" if age < 18 else "under25" if age < 25 else "adult"

    out["young_new"] = Counter(age_key(c) for c in cases.values() if _in(c.decision_date, period))
    return {k: +v for k, v in out.items()}  # drop zero counts


def assert_figures_agree(nodes, periods, asof: datetime, *, live: bool = False, lists: bool = False) -> Counter:
    """Every available measure for every node and period equals direct_counts (``lists``: and the drill-down lists
    exactly its units, per-key lists adding up); returns the units seen per measure."""
    tables = load_tables()
    seen = Counter()
    for node in nodes:
        for period in periods:
            expected = direct_counts(node, period, asof, tables)
            for result in kpi.compute_many(AVAILABLE, node, period, live=live):
                measure, where = result.definition.id, (result.definition.id, node.name, period.code, live)
                counts = Counter(result.figure.counts)
                assert counts == expected.get(measure, Counter()), where
                if lists:
                    rows = db.session.execute(result.cases()).all()
                    assert Counter(r.key for r in rows) == counts, where
                    keys = result.definition.numerator_keys
                    assert sum(len(db.session.execute(result.cases(k)).all()) for k in keys) == result.figure.numerator
                seen[measure] += sum(counts.values())
    return seen


def refresh(**options) -> kpi_model.Refreshed:
    with transaction():
        return kpi_model.refresh(**options)


def stale_cases(asof: datetime) -> set[int]:
    """The cases the read model counts live now (they changed since the refresh)."""
    model = kpi_model.ReadModel.open(asof)
    assert model is not None
    return set(model.stale)


def count_table() -> list[tuple]:
    return sorted(tuple(r) for r in db.session.execute(select(kpi_model.KpiCount.__table__)).all())


def case_table() -> dict[int, tuple]:
    rows = db.session.execute(select(kpi_model.KpiCase.__table__)).all()
    return {case_id: (node_id, sorted(map(tuple, counts))) for case_id, node_id, counts in rows}


@pytest.fixture
def live_counts(monkeypatch):
    """The scope of every live count (kpi.count_units) made during the test."""
    scopes = []
    real = kpi.count_units

    def spy(definition, scope, periods):
        scopes.append(scope)
        return real(definition, scope, periods)

    monkeypatch.setattr(kpi, "count_units", spy)
    return scopes


# --- data -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def other_district(tree):
    """A second district (B) with one community, and a supervisor there."""
    with transaction():
        district = create_node("金湾区", NodeLevel.DISTRICT, tree["city"])
        street = create_node("三灶镇", NodeLevel.STREET, district)
        community = create_node("海澄社区", NodeLevel.COMMUNITY, street)
        user = create_user("supervisor_b", PASSWORD, ["supervisor"], district, "禁毒办 B")
    return {"district": district, "community": community, "supervisor": user}


def _closed_case(node, name: str, decided: date, reason: str, relapse: bool = False, born: date | None = None):
    case = create_case(name, f"4404{abs(hash(name)) % 10**14:014d}", node, decision_date=decided)
    case.birth_date = born
    case.term_started_on = decided + timedelta(days=3)
    if relapse:
        record("violation_recorded", case_id=case.id, jurisdiction_id=node.id, payload={"kind": "drug_use"})
    case.status = CaseStatus.CLOSED
    case.close_reason = reason
    record("case_closed", case_id=case.id, jurisdiction_id=node.id, payload={"reason": reason, "old": "open"})
    return case


def _hand_made_tasks(at: datetime) -> None:
    """A serious-violation report and a placement, whatever the random seed did (on an existing instance)."""
    instance = db.session.scalars(select(ProcessInstance).order_by(ProcessInstance.id)).first()
    for element, days_ago, done in [
        ("report_to_police", 5, True),
        ("assess_needs", 40, True),
        ("record_placement", 9, True),
    ]:
        db.session.add(
            WorkItem(
                instance_id=instance.id,
                case_id=instance.case_id,
                task_id=str(uuid4()),
                element_id=element,
                name=element,
                process_key="hand_made",
                jurisdiction_id=instance.jurisdiction_id,
                status=WorkItemStatus.COMPLETED if done else WorkItemStatus.OPEN,
                form=[],
                created_at=at - timedelta(days=days_ago),
                completed_at=at - timedelta(days=days_ago - 1),
            )
        )


@pytest.fixture
def simulated(app, tree, other_district, clock):
    """12 cases run through the real workflows for 5 months (two districts), then hand-made closures."""
    from app.simulation import simulate

    with transaction():
        engine.deploy(engine.workflow_files(WORKFLOWS))
    simulate(12, 5 / 12, seed=1, step_days=2)
    clock.advance(days=20)  # leave the last checks undone: some people are now out of contact
    with transaction():
        _hand_made_tasks(clock.now())
        _closed_case(tree["a"], "期满甲", date(2023, 5, 1), "expired", born=date(2008, 1, 1))
        _closed_case(tree["a"], "复吸乙", date(2023, 5, 2), "expired", relapse=True, born=date(2003, 6, 1))
        _closed_case(other_district["community"], "终止丙", date(2023, 5, 3), "terminated")
    return tree


# --- tests ------------------------------------------------------------------------------------------------------------


def test_figures_agree_with_direct_counts(simulated, other_district, clock, live_counts):
    """Every measure, by month/quarter/year and by node, counted live and from the read model (fresh, then with
    changes since its refresh, then refreshed again): the figure equals the count done here; the drill-down lists
    exactly its units; per-key lists add up."""
    asof = clock.now()
    nodes = [simulated["city"], simulated["a"], other_district["district"]]
    months = kpi.Period.of("month", asof.astimezone(CHINA).date()).series(6)
    periods = [*months, kpi.Period.parse("2026-Q2"), kpi.Period.parse("2026"), kpi.Period.parse("2023")]
    assert kpi_model.ReadModel.open(asof) is None  # not built: the worker of the simulation left it alone
    seen = assert_figures_agree(nodes, periods, asof, live=True, lists=True)
    # The data exercised every measure (a measure that is always zero proves nothing).
    assert all(seen[d.id] > 0 for d in AVAILABLE), seen

    # The read model, just built: every figure comes from kpi_count alone.
    built = refresh(full=True)
    assert built.full and built.rows > 0
    live_counts.clear()
    assert stale_cases(asof) == set()
    assert assert_figures_agree(nodes, periods, asof) == seen
    assert live_counts == []

    # The 12-period trend gives the same figures as asking period by period, from the read model and live.
    period = kpi.Period.of("month", asof.astimezone(CHINA).date())
    for definition in AVAILABLE:
        if definition.snapshot:
            continue
        trend = kpi.compute(definition, simulated["city"], period, trend=12).trend
        assert [f.period for f in trend] == period.series(12)
        assert trend == kpi.compute(definition, simulated["city"], period, trend=12, live=True).trend
        for figure in trend:
            assert figure.counts == kpi.compute(definition, simulated["city"], figure.period).figure.counts

    # Changes after the refresh: a check done late, a violation, a transfer, days passing. Only the cases they
    # touch are counted live, and the figures still agree.
    with transaction():
        check = db.session.scalars(
            select(WorkItem).where(WorkItem.element_id == kpi.CHECK_TASK, WorkItem.status == WorkItemStatus.OPEN)
        ).first()
        check.status, check.completed_at = WorkItemStatus.COMPLETED, clock.now()
        moved = db.session.scalars(select(Case).where(Case.jurisdiction_id == simulated["b"].id)).first()
        moved.jurisdiction_id = other_district["community"].id
        record("case_transferred", case_id=moved.id, jurisdiction_id=moved.jurisdiction_id)
        record("violation_recorded", case_id=check.case_id, payload={"kind": "absence"})
    clock.advance(days=3)
    asof = clock.now()
    stale = stale_cases(asof)
    assert {check.case_id, moved.id} <= stale and len(stale) < db.session.scalar(select(func.count(Case.id)))
    live_counts.clear()
    assert_figures_agree(nodes, periods, asof)
    assert live_counts and all(scope.cases and set(scope.cases) <= stale for scope in live_counts)

    # Refreshed (the stale cases only): kpi_count alone again, the same rows a full rebuild writes.
    done = refresh()
    assert not done.full and done.cases == len(stale)
    assert stale_cases(asof) == set()
    live_counts.clear()
    assert_figures_agree(nodes, periods, asof)
    assert live_counts == []
    rows = count_table(), case_table()
    refresh(full=True)
    assert (count_table(), case_table()) == rows

    # Positives are counted from drug-use violations: every one the simulation made is a positive test result
    # (plus the hand-made relapse of the closed case).
    results = [
        e.payload["data"].get("result")
        for e in db.session.scalars(select(AuditEvent).where(AuditEvent.type == "task_completed"))
        if e.payload.get("element_id") == "drug_test_check"
    ]
    figure = kpi.test_positive(simulated["city"], kpi.Period.parse("2026")).figure
    assert figure.counts.get("positive", 0) == results.count("positive") + 1
    assert figure.counts["tested"] == len(results) + 1  # and the check done late above

    # 条例7: closed 'expired' with no drug use recorded counts; a relapse or a termination does not.
    figure = kpi.abstinence(simulated["city"], kpi.Period.parse("2026")).figure
    assert figure.counts == {"yes": 1, "no": 2}
    assert figure.rate == pytest.approx(1 / 3)


def test_period_boundaries_use_china_dates(app, tree, clock):
    """A case decided on the last day of a month counts in that month; an event at 23:30 on 31 March in China
    (15:30 UTC) counts in March, one at 00:30 on 1 April (16:30 UTC on 31 March) in April."""
    with transaction():
        last = create_case("月末", "440400199001010001", tree["a"], decision_date=date(2026, 3, 31))
        last.birth_date = date(2010, 4, 1)  # 15 at the decision
        create_case("月初", "440400199001010002", tree["a"], decision_date=date(2026, 4, 1))
    for when, kind in [
        (datetime(2026, 3, 31, 15, 30, tzinfo=UTC), "refusal"),
        (datetime(2026, 3, 31, 16, 30, tzinfo=UTC), "absence"),
    ]:
        clock.set(when)
        with transaction():
            record("violation_recorded", case_id=last.id, jurisdiction_id=tree["a"].id, payload={"kind": kind})
    march, april = kpi.Period.parse("2026-03"), kpi.Period.parse("2026-04")
    assert kpi.young_new(tree["city"], march).figure.counts == {"under18": 1}
    assert kpi.young_new(tree["city"], april).figure.counts == {"unknown": 1}
    assert kpi.violations(tree["city"], march).figure.counts == {"refusal": 1}
    assert kpi.violations(tree["city"], april).figure.counts == {"absence": 1}
    trend = kpi.violations(tree["city"], april, trend=2).trend
    assert [f.counts for f in trend] == [{"refusal": 1}, {"absence": 1}]


def test_report_on_time_leaves_out_cases_still_within_15_days(app, tree, clock):
    """条例14: reported on day 15 is on time, day 16 late; not reported and still within 15 days is not counted."""
    clock.set(datetime(2026, 3, 20, 4, tzinfo=UTC))
    with transaction():
        for n, (decided, reported) in enumerate(
            [
                (date(2026, 3, 1), date(2026, 3, 16)),
                (date(2026, 3, 1), date(2026, 3, 17)),
                (date(2026, 3, 2), None),
                (date(2026, 3, 10), None),
            ]
        ):
            case = create_case(f"报到{n}", f"44040019900101{n:04d}", tree["a"], decision_date=decided)
            case.term_started_on = reported
    figure = kpi.report_on_time(tree["district"], kpi.Period.parse("2026-03")).figure
    assert figure.counts == {"yes": 1, "no": 2}
    assert (figure.numerator, figure.denominator) == (1, 3)


def test_period_parsing():
    assert kpi.Period.parse("2026-02").end == date(2026, 3, 1)
    assert kpi.Period.parse("2026-Q4") == kpi.Period(date(2026, 10, 1), date(2027, 1, 1), "quarter")
    assert kpi.Period.parse("2025").code == "2025"
    assert kpi.Period.parse("2026-Q1").previous().code == "2025-Q4"
    assert kpi.Period.parse("nonsense", today=date(2026, 5, 9)).code == "2026-05"
    assert [p.code for p in kpi.Period.parse("2026-02").series(3)] == ["2025-12", "2026-01", "2026-02"]


# --- pages ------------------------------------------------------------------------------------------------------------


def _violations(tree, other_district, clock):
    clock.set(datetime(2026, 3, 10, 2, tzinfo=UTC))
    with transaction():
        for n, node in enumerate([tree["a"], tree["a"], tree["b"], other_district["community"]]):
            case = create_case(f"违规{n}", f"44040019900101{n:04d}", node, decision_date=date(2026, 1, 5))
            record("violation_recorded", case_id=case.id, jurisdiction_id=node.id, payload={"kind": "refusal"})


@pytest.mark.parametrize("read_model", [False, True])
def test_supervisor_opens_dashboard_drills_down_and_exports(
    client, login, users, tree, other_district, clock, live_counts, read_model
):
    _violations(tree, other_district, clock)
    if read_model:
        refresh(full=True)
    login("supervisor")
    page = client.get(f"/kpi/?node={tree['district'].id}&period=2026-03")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count("kpi-not-available") == 3 and "kpi.js" in html and "<script>" not in html
    assert f"/kpi/violations/trend.json?node={tree['district'].id}" in html
    chart = client.get(f"/kpi/violations/trend.json?node={tree['district'].id}&period=2026-03").get_json()
    assert len(chart["labels"]) == 12 and chart["labels"][-1] == "2026-03"
    assert [s["data"][-1] for s in chart["series"]] == [3]
    listing = client.get(f"/kpi/violations/cases?node={tree['district'].id}&period=2026-03&key=refusal")
    text = listing.get_data(as_text=True)
    assert listing.status_code == 200 and 'data-total="3"' in text
    assert "440400199001010000" not in text and "**************0000" in text  # masked
    export = client.get(f"/kpi/violations/cases.csv?node={tree['district'].id}&period=2026-03&key=refusal")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    body = export.get_data().decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert len(rows) - 1 == 3
    assert all("440400199001010" not in cell for row in rows for cell in row)
    logged = db.session.scalars(select(AuditEvent).where(AuditEvent.type == "export_downloaded")).all()
    assert len(logged) == 1
    assert logged[0].actor_id == users["supervisor"].id and logged[0].jurisdiction_id == tree["district"].id
    assert logged[0].payload["measure"] == "violations" and logged[0].payload["rows"] == 3
    assert bool(live_counts) != read_model  # the figures came from kpi_count alone, or were all counted live


def test_supervisor_of_another_district_sees_nothing_of_it(client, login, tree, other_district, clock):
    _violations(tree, other_district, clock)
    login("supervisor_b")
    assert client.get(f"/kpi/?node={tree['district'].id}").status_code == 404
    assert client.get(f"/kpi/violations/cases?node={tree['a'].id}&period=2026-03").status_code == 404
    assert client.get(f"/kpi/violations/cases.csv?node={tree['city'].id}&period=2026-03").status_code == 404
    assert client.get(f"/kpi/violations/trend.json?node={tree['district'].id}").status_code == 404
    own = client.get("/kpi/violations/cases?period=2026-03")
    text = own.get_data(as_text=True)
    assert own.status_code == 200 and 'data-total="1"' in text and "违规3" in text and "违规0" not in text
    page = client.get("/kpi/?period=2026-03").get_data(as_text=True)
    assert tree["a"].name not in page and tree["district"].name not in page
    assert db.session.scalar(select(AuditEvent.id).where(AuditEvent.type == "export_downloaded")) is None


@pytest.mark.parametrize("username", ["caseworker", "police", "designer", "admin"])
def test_only_supervisors_see_kpis(client, login, username):
    login(username)
    assert client.get("/kpi/").status_code == 404
    assert client.get("/kpi/violations/cases").status_code == 404
    assert client.get("/kpi/violations/cases.csv").status_code == 404


def test_unknown_or_unavailable_measure_and_bad_key_are_404(client, login):
    login("supervisor")
    assert client.get("/kpi/nonsense/cases").status_code == 404
    assert client.get("/kpi/satisfaction/cases.csv").status_code == 404
    assert client.get("/kpi/violations/cases?key=nonsense").status_code == 404
    assert client.get("/kpi/?node=abc").status_code == 404
