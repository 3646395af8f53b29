"""Timers: projected with due_at, fired by the worker by the app clock, each exactly once."""

from datetime import timedelta

from sqlalchemy import select

from app import engine
from app.audit.models import AuditEvent
from app.core.db import transaction
from app.engine.models import Timer, TimerStatus, WorkItem, WorkItemStatus
from app.extensions import db
from tests.engine.test_runtime import complete, open_items, start


def fire():
    with transaction():
        return engine.fire_due_timers(100)


def timers(status=None):
    query = select(Timer).order_by(Timer.id)
    if status:
        query = query.where(Timer.status == status)
    return db.session.scalars(query).all()


def test_boundary_timers_are_projected_with_due_times(deploy_fixtures, case_factory, clock):
    deploy_fixtures("timers.bpmn")
    start("timers", case_factory(), {"decided_at": clock.now().isoformat()})
    rows = {t.element_id: t for t in timers(TimerStatus.WAITING)}
    assert set(rows) == {"report_late", "report_reminder"}
    assert rows["report_late"].due_at == clock.now() + timedelta(days=15)
    assert rows["report_late"].interrupting and not rows["report_reminder"].interrupting
    assert rows["report_late"].kind == "boundary"


def test_nothing_fires_before_due(deploy_fixtures, case_factory, clock):
    deploy_fixtures("timers.bpmn")
    start("timers", case_factory(), {"decided_at": clock.now().isoformat()})
    clock.advance(days=9, hours=23)
    assert fire() == 0
    assert len(timers(TimerStatus.WAITING)) == 2


def test_tiaoli14_non_interrupting_reminder_then_interrupting_escalation(deploy_fixtures, case_factory, clock):
    """条例14: 15 days to report; a reminder at day 10 keeps the task; day 15 escalates to police (法38 refusal)."""
    deploy_fixtures("timers.bpmn")
    start("timers", case_factory(), {"decided_at": clock.now().isoformat()})
    clock.advance(days=10, seconds=1)
    assert fire() == 1
    names = sorted(i.element_id for i in open_items())
    assert names == ["reminder_task", "report"]
    clock.advance(days=5)
    assert fire() == 1
    items = {i.element_id: i for i in open_items()}
    assert "report" not in items and items["refusal"].candidate_role == "police"
    cancelled = db.session.scalars(select(WorkItem).where(WorkItem.status == WorkItemStatus.CANCELLED)).all()
    assert [c.element_id for c in cancelled] == ["report"]
    assert fire() == 0
    fired = db.session.scalars(select(AuditEvent).where(AuditEvent.type == "timer_fired")).all()
    assert sorted(e.payload["element_id"] for e in fired) == ["report_late", "report_reminder"]


def test_completing_the_task_cancels_its_boundary_timers_and_starts_a_date_timer(deploy_fixtures, case_factory, clock):
    deploy_fixtures("timers.bpmn")
    start("timers", case_factory(), {"decided_at": clock.now().isoformat()})
    report = next(i for i in open_items() if i.element_id == "report")
    complete(report.id)
    assert {t.element_id: t.status for t in timers()} == {
        "report_late": TimerStatus.CANCELLED,
        "report_reminder": TimerStatus.CANCELLED,
        "wait_date": TimerStatus.WAITING,
    }
    [wait] = timers(TimerStatus.WAITING)
    assert wait.kind == "intermediate" and wait.due_at == clock.now() + timedelta(days=20)
    clock.advance(days=20, seconds=1)
    assert fire() == 1
    assert timers(TimerStatus.WAITING) == []
    from app.engine.models import ProcessInstance

    assert db.session.scalars(select(ProcessInstance.status)).one().value == "completed"


def test_each_due_timer_fires_once_across_many_cases(deploy_fixtures, case_factory, clock):
    deploy_fixtures("timers.bpmn")
    for _ in range(12):
        start("timers", case_factory(), {"decided_at": clock.now().isoformat()})
    clock.advance(days=16)
    total = 0
    while (n := engine.fire_due_timers(5)) > 0:
        db.session.commit()
        total += n
    db.session.commit()
    assert total == 24  # reminder + escalation per case
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.type == "timer_fired")).all()
    assert len({e.payload["timer_id"] for e in events}) == len(events) == 24
