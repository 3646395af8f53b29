"""The KPI read model (app.audit.kpi_model): figures stay equal to direct counts while the clock moves and cases
change after a refresh, only the cases that changed are counted live, and the worker and `flask kpi refresh`
keep it current."""

import dataclasses
from datetime import date, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import delete, literal, select, update

from app import engine
from app.audit import kpi, kpi_model
from app.audit.log import record
from app.cases.models import Case
from app.cases.operations import create_case
from app.core.db import transaction
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db
from app.worker import run_once
from tests.kpi.test_kpi import (
    AVAILABLE,
    CHINA,
    assert_figures_agree,
    case_table,
    count_table,
    live_counts,
    refresh,
    stale_cases,
)

__all__ = ["live_counts"]  # a fixture


def _marks() -> set[int | None]:
    return set(db.session.scalars(select(kpi_model.KpiDirty.case_id)))


def _stale(clock) -> set[str]:
    """Names of the people whose cases the read model counts live now."""
    return {db.session.get(Case, case_id).person_name for case_id in stale_cases(clock.now())}


def _clear_marks() -> None:
    with transaction():
        db.session.execute(delete(kpi_model.KpiDirty))


def _check(case: Case, due, status=WorkItemStatus.OPEN, done=None) -> None:
    """A drug test / check-in task of ``case`` due at ``due`` (on an instance of three_tasks.bpmn)."""
    instance = engine.start_process("three_tasks", case_id=case.id, jurisdiction_id=case.jurisdiction_id)
    db.session.add(
        WorkItem(
            instance_id=instance.id,
            case_id=case.id,
            task_id=str(uuid4()),
            element_id=kpi.CHECK_TASK,
            name="check",
            process_key="hand_made",
            jurisdiction_id=case.jurisdiction_id,
            status=status,
            form=[],
            due_at=due,
            created_at=due - timedelta(days=30),
            completed_at=done,
        )
    )


@pytest.fixture
def checks(app, tree, clock, deploy_fixtures):
    """Community a: one case with a check falling due in an hour and one open for 7 days less an hour; b: a case
    decided 15 days ago that has not reported, one with a check done in time; the tree's street also holds a
    community (c) where nothing happens. The read model is built."""
    from app.auth.models import NodeLevel
    from app.auth.operations import create_node

    deploy_fixtures("three_tasks.bpmn")
    t0 = clock.now()
    today = t0.astimezone(CHINA).date()
    with transaction():
        tree["c"] = create_node("前山社区", NodeLevel.COMMUNITY, tree["street"])
        cases = {}
        for name, node, decided, started in [
            ("due", "a", today - timedelta(days=40), today - timedelta(days=38)),
            ("unreported", "b", today - timedelta(days=15), None),
            ("done", "b", today - timedelta(days=60), today - timedelta(days=59)),
            ("quiet", "c", today - timedelta(days=90), today - timedelta(days=88)),
        ]:
            case = create_case(name, f"44040019900101{len(cases):04d}", tree[node], decision_date=decided)
            case.term_started_on, case.tier = started, "yellow"
            cases[name] = case
        db.session.flush()
        _check(cases["due"], t0 + timedelta(hours=1))
        _check(cases["due"], t0 - timedelta(days=7) + timedelta(hours=1))
        _check(cases["done"], t0 - timedelta(days=2), WorkItemStatus.COMPLETED, t0)
        _check(cases["quiet"], t0 - timedelta(days=20), WorkItemStatus.CANCELLED)
    refresh(full=True)
    return cases


def _agree(tree, clock, **options) -> None:
    today = clock.now().astimezone(CHINA).date()
    month = kpi.Period.of("month", today)
    periods = [month, month.previous(), kpi.Period.of("quarter", today), kpi.Period.of("year", today)]
    nodes = [tree["city"], tree["district"], tree["a"], tree["b"], tree["c"]]
    assert_figures_agree(nodes, periods, clock.now(), **options)


def test_figures_follow_the_clock_without_a_refresh(tree, clock, checks, live_counts):
    """A check falling due, an open check turning 7 days overdue, an unreported case turning late: each changes a
    figure with no row written; the read model counts those cases' nodes live until the next refresh."""
    _agree(tree, clock)
    assert live_counts == []
    month = kpi.Period.of("month", clock.now().astimezone(CHINA).date())
    before = kpi.compute(kpi.DEFINITIONS["out_of_contact"], tree["city"], month).figure.counts

    clock.advance(hours=2)  # the check falls due; the other is now more than 7 days overdue
    assert _stale(clock) == {"due"}
    _agree(tree, clock)
    assert kpi.compute(kpi.DEFINITIONS["out_of_contact"], tree["city"], month).figure.counts != before
    assert {scope.cases for scope in live_counts} == {(checks["due"].id,)}

    clock.advance(days=1)  # the unreported case's 15 days are over
    assert _stale(clock) == {"due", "unreported"}
    _agree(tree, clock)
    assert refresh().cases == 2
    assert _stale(clock) == set()
    live_counts.clear()
    _agree(tree, clock)
    assert live_counts == []


def test_moving_the_clock_back_is_a_change_too(tree, clock, checks):
    """Tests and simulations set the clock back and forth: the window between refresh and now works both ways."""
    clock.advance(days=2)
    refresh()
    clock.advance(days=-2)
    assert _stale(clock) == {"due", "unreported"}
    _agree(tree, clock)


def test_transfers_tier_changes_and_bulk_updates(tree, clock, checks, live_counts):
    """A transfer (the case's history moves with it to the new node) and a tier change, by the ORM or by an UPDATE
    statement: the case is counted live until the refresh moves its counts."""
    with transaction():
        checks["due"].jurisdiction_id = tree["b"].id
        checks["quiet"].tier = "red"
    assert _stale(clock) == {"due", "quiet"}
    _agree(tree, clock)
    refresh()
    with transaction():
        db.session.execute(update(Case).where(Case.id == checks["done"].id).values(jurisdiction_id=tree["c"].id))
    assert _stale(clock) == {"done"}
    _agree(tree, clock)
    refresh()
    assert db.session.get(kpi_model.KpiCase, checks["done"].id).node_id == tree["c"].id
    rows = count_table(), case_table()
    refresh(full=True)
    assert (count_table(), case_table()) == rows


def test_writes_mark_their_cases_in_the_same_transaction(app, tree, case_factory):
    case = case_factory(node=tree["a"])
    assert _marks() == {case.id}
    _clear_marks()
    with transaction():
        case.jurisdiction_id = tree["b"].id
    assert _marks() == {case.id}
    _clear_marks()
    with pytest.raises(RuntimeError), transaction():
        case.tier = "red"
        record("tier_changed", case_id=case.id, payload={"old": None, "new": "red"})
        db.session.flush()
        raise RuntimeError("rolled back")
    assert _marks() == set()
    with transaction():
        db.session.execute(update(WorkItem).where(WorkItem.case_id == case.id).values(assignee_id=None))
        db.session.execute(update(Case).where(Case.id == case.id).values(tier="blue"))
    assert _marks() == {case.id}
    with transaction():
        db.session.execute(update(Case).values(measure=Case.measure))  # no WHERE: unknown cases
    assert None in _marks()


def test_a_change_to_every_case_makes_the_next_refresh_full(tree, clock, checks, live_counts):
    with transaction():
        db.session.execute(update(Case).values(tier="red"))
    assert kpi_model.ReadModel.open(clock.now()) is None  # counted live meanwhile
    _agree(tree, clock)
    assert all(scope.cases is None for scope in live_counts)
    assert refresh().full
    assert _stale(clock) == set()


def test_readers_read_again_when_a_refresh_commits_under_them(tree, clock, checks, monkeypatch, live_counts):
    answers = iter([False, True])
    monkeypatch.setattr(kpi_model.ReadModel, "unchanged", lambda self: next(answers))
    opened = []
    real_open = kpi_model.ReadModel.open
    monkeypatch.setattr(kpi_model.ReadModel, "open", lambda asof: opened.append(asof) or real_open(asof))
    month = kpi.Period.of("month", clock.now().astimezone(CHINA).date())
    kpi.compute_many(AVAILABLE, tree["city"], month)
    assert len(opened) == 2 and live_counts == []

    monkeypatch.setattr(kpi_model.ReadModel, "unchanged", lambda self: False)
    results = kpi.compute_many(AVAILABLE, tree["city"], month)
    assert len(live_counts) == len(AVAILABLE)  # given up after three tries: counted live
    assert [r.figure.counts for r in results] == [
        r.figure.counts for r in kpi.compute_many(AVAILABLE, tree["city"], month, live=True)
    ]


def test_periods_outside_the_read_model_are_counted_live(tree, clock, checks, live_counts):
    with transaction():
        create_case("很久以前", "440400189901010000", tree["a"], decision_date=date(1899, 12, 31))
    refresh()
    old = kpi.compute(kpi.DEFINITIONS["young_new"], tree["city"], kpi.Period.parse("1899"))
    assert old.figure.counts == {"unknown": 1} and live_counts


def test_worker_keeps_the_read_model_current_once_built(app, tree, clock, case_factory):
    case_factory(node=tree["a"])
    run_once(10)
    assert db.session.get(kpi_model.KpiState, 1) is None  # not built: the worker leaves it alone
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["kpi", "refresh"])
    assert result.exit_code == 0 and "every month of 1 cases" in result.output, result.output
    assert _stale(clock) == set()
    case_factory("新来的", node=tree["b"])
    assert _stale(clock) == {"新来的"}
    run_once(10)
    assert _stale(clock) == set()
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["kpi", "refresh", "--from", "2026-02-15"])
    assert result.exit_code == 0 and "from 2026-02 on" in result.output, result.output
    db.session.commit()
    assert app.test_cli_runner().invoke(args=["kpi", "refresh", "--from", "15.2.2026"]).exit_code == 2


def test_refresh_from_a_date_counts_later_months_again(tree, clock, checks, monkeypatch):
    """After a measure changed, --from counts every case's months from that date on again and keeps the earlier
    ones (quarters and years sum both); a full refresh counts everything the new way."""

    def everyone_adult(scope):
        return select(Case.id.label("case_id"), Case.decision_date.label("at"), literal("adult").label("key")).where(
            scope.case_here(), Case.decision_date >= scope.start, Case.decision_date < scope.end
        )

    young = kpi.DEFINITIONS["young_new"]
    monkeypatch.setitem(kpi.DEFINITIONS, "young_new", dataclasses.replace(young, units=everyone_adult))

    def figures(kind: str, day: date) -> dict:
        period = kpi.Period.of(kind, day)
        return kpi.compute(kpi.DEFINITIONS["young_new"], tree["city"], period).figure.counts

    before = {d: figures("month", d) for d in (date(2026, 1, 1), date(2026, 2, 1))}
    assert all(before.values()) and all("adult" not in c for c in before.values())  # no birth dates: unknown
    refresh(since=date(2026, 2, 10))
    assert figures("month", date(2026, 1, 1)) == before[date(2026, 1, 1)]
    assert figures("month", date(2026, 2, 1)) == {"adult": sum(before[date(2026, 2, 1)].values())}
    assert figures("quarter", date(2026, 1, 1)) == {**before[date(2026, 1, 1)], "adult": 1}
    refresh(full=True)
    assert figures("quarter", date(2026, 1, 1)) == {"adult": 3}


def test_a_failing_refresh_does_not_stop_the_worker(app, tree, clock, checks, monkeypatch, caplog):
    def broken(**options):
        raise RuntimeError("boom")

    monkeypatch.setattr(kpi_model, "refresh", broken)
    assert run_once(10) == (0, 0)
    assert "could not be refreshed" in caplog.text
    _agree(tree, clock)  # still exact
