"""Engine history functions: suspend/resume (audited, timers paused) and an instance's path through its diagram."""

import pytest
from sqlalchemy import select

from app import engine
from app.audit.models import AuditEvent
from app.core.db import transaction
from app.engine.models import Incident, InstanceStatus, ProcessInstance, Timer, TimerStatus
from app.extensions import db
from tests.engine.test_runtime import complete, open_items, start


def suspend(instance_id, reason="子女病重, 暂停处理", actor_id=None):
    with transaction():
        return engine.suspend_instance(instance_id, reason, actor_id)


def resume(instance_id, reason="已恢复", actor_id=None):
    with transaction():
        return engine.resume_instance(instance_id, reason, actor_id)


def fire():
    with transaction():
        return engine.fire_due_timers(100)


def events(type_):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.type == type_).order_by(AuditEvent.id)).all()


def test_suspend_and_resume_are_audited_with_reason_and_actor(deploy_fixtures, case_factory, users):
    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    info = start("three_tasks", case)
    supervisor = users["supervisor"].id

    suspended = suspend(info.id, "  awaiting court ruling  ", supervisor)
    assert suspended.status == "suspended" and suspended.lock_version > info.lock_version
    [event] = events("instance_suspended")
    assert (event.actor_id, event.case_id, event.instance_id) == (supervisor, case.id, info.id)
    assert event.payload == {"reason": "awaiting court ruling", "previous_status": "running"}

    resumed = resume(info.id, "ruling received", supervisor)
    assert resumed.status == "running"
    [event] = events("instance_resumed")
    assert event.actor_id == supervisor and event.payload["reason"] == "ruling received"


def test_work_of_a_suspended_instance_cannot_be_completed(deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    info = start("three_tasks", case_factory())
    [item] = open_items()
    suspend(info.id)
    with pytest.raises(engine.NotRunnable):
        complete(item.id, {"address": "x"})
    resume(info.id)
    assert complete(item.id, {"address": "x"}).instance.status == "running"


def test_timers_of_a_suspended_instance_wait_and_fire_after_resume(deploy_fixtures, case_factory, clock):
    deploy_fixtures("timers.bpmn")
    info = start("timers", case_factory(), {"decided_at": clock.now().isoformat()})
    suspend(info.id)
    clock.advance(days=10, seconds=1)
    assert fire() == 0
    reminder = db.session.scalars(select(Timer).where(Timer.element_id == "report_reminder")).one()
    assert reminder.status == TimerStatus.WAITING and reminder.due_at < clock.now()  # overdue, not fired

    resume(info.id)
    assert fire() == 1
    db.session.refresh(reminder)
    assert reminder.status == TimerStatus.FIRED
    assert sorted(i.element_id for i in open_items()) == ["reminder_task", "report"]


def test_a_reason_is_required_and_states_are_checked(deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    info = start("three_tasks", case_factory())
    with pytest.raises(engine.InvalidSubmission):
        suspend(info.id, "   ")
    with pytest.raises(engine.Conflict):
        resume(info.id)  # not suspended
    suspend(info.id)
    with pytest.raises(engine.Conflict):
        suspend(info.id)
    with pytest.raises(engine.NotFound):
        suspend(424242)
    assert db.session.get(ProcessInstance, info.id).status == InstanceStatus.SUSPENDED
    assert len(events("instance_suspended")) == 1


def test_an_instance_suspended_at_an_incident_goes_back_to_it(deploy_fixtures, case_factory):
    deploy_fixtures("failing.bpmn")
    info = start("failing", case_factory(), {"divisor": 0})
    complete(open_items()[0].id)
    assert db.session.scalars(select(Incident)).one()
    suspend(info.id)
    assert resume(info.id).status == "incident"
    assert events("instance_resumed")[0].payload["status"] == "incident"


def test_instance_path_marks_completed_and_current_elements(deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    info = start("three_tasks", case_factory())
    path = engine.instance_path(info.id)
    assert path.completed == {"start": 1} and path.current == ["a"]

    complete(open_items()[0].id, {"address": "x"})
    complete(open_items()[0].id)
    path = engine.instance_path(info.id)
    assert list(path.completed) == ["start", "a", "b"] and path.active == ["c"] and path.waiting == []

    complete(open_items()[0].id)
    path = engine.instance_path(info.id)
    assert list(path.completed) == ["start", "a", "b", "c", "end"] and path.current == []


def test_instance_path_shows_waiting_timers_and_leaves_out_called_processes(deploy_fixtures, case_factory, clock):
    deploy_fixtures("timers.bpmn", "parent.bpmn", "child.bpmn", "tier_rule.dmn")
    case = case_factory()
    timers = engine.instance_path(start("timers", case, {"decided_at": clock.now().isoformat()}).id)
    assert timers.active == ["report"] and sorted(timers.waiting) == ["report_late", "report_reminder"]
    assert set(timers.completed) == {"start", "set_deadline"}

    parent = engine.instance_path(start("parent", case, {"positives": 2}).id)
    assert parent.completed == {"start": 1, "classify": 1} and parent.active == ["call_child"]


def test_instance_path_of_unknown_instance_is_not_found(app):
    with pytest.raises(engine.NotFound):
        engine.instance_path(424242)
