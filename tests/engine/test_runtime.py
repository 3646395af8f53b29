"""Instances: start, complete, optimistic concurrency, projection, audit, versions."""

import pytest
from sqlalchemy import func, select, text

from app import engine
from app.audit.models import AuditEvent
from app.core.db import transaction
from app.engine.models import InstanceStatus, ProcessInstance, WorkItem, WorkItemStatus
from app.extensions import db
from tests.conftest import PG_URL


def open_items(case_id=None):
    query = select(WorkItem).where(WorkItem.status == WorkItemStatus.OPEN).order_by(WorkItem.id)
    if case_id is not None:
        query = query.where(WorkItem.case_id == case_id)
    return db.session.scalars(query).all()


def start(key, case, data=None):
    with transaction():
        return engine.start_process(key, case_id=case.id, jurisdiction_id=case.jurisdiction_id, data=data)


def complete(item_id, data=None, **kw):
    with transaction():
        return engine.complete_work_item(item_id, data or {}, **kw)


def test_start_projects_first_user_task_with_lane_role_due_date_and_form(deploy_fixtures, case_factory, clock):
    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    info = start("three_tasks", case)

    assert info.status == "running" and info.definition_version == 1
    [item] = open_items()
    assert item.id in info.opened_work_item_ids
    assert (item.element_id, item.name, item.candidate_role) == ("a", "Intake interview", "caseworker")
    assert item.lane == "禁毒社工 caseworker"
    assert item.jurisdiction_id == case.jurisdiction_id and item.case_id == case.id
    assert item.due_at == clock.now().replace(microsecond=0) + __import__("datetime").timedelta(days=15)
    assert item.legal_basis == "条例14"
    fields = {f["id"]: f for f in item.form}
    assert fields["address"]["required"] is True and fields["pregnant"]["required"] is False
    assert [o["id"] for o in fields["tier"]["options"]] == ["red", "yellow", "blue"]


def test_complete_runs_to_next_task_then_finishes(deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    start("three_tasks", case)
    [a] = open_items()
    result = complete(a.id, {"address": "拱北 1 号", "pregnant": "false", "visits": "2", "tier": "red"})
    [b] = open_items()
    assert b.element_id == "b" and result.instance.opened_work_item_ids == [b.id]
    complete(b.id)
    [c] = open_items()
    assert c.candidate_role == "police"
    result = complete(c.id)
    assert result.instance.status == "completed"
    assert open_items() == []
    types = db.session.scalars(select(AuditEvent.type).order_by(AuditEvent.id)).all()
    assert types.count("task_completed") == 3 and types[-1] == "instance_completed"
    first = db.session.scalars(select(AuditEvent).where(AuditEvent.type == "task_completed")).first()
    assert first.payload["data"] == {"address": "拱北 1 号", "pregnant": False, "visits": 2, "tier": "red"}


def test_invalid_submission_changes_nothing(deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    start("three_tasks", case)
    [a] = open_items()
    with pytest.raises(engine.InvalidSubmission) as err:
        complete(a.id, {"address": "", "visits": "-1", "tier": "purple"})
    assert set(err.value.errors) == {"address", "visits", "tier"}
    [still] = open_items()
    assert still.id == a.id and still.status == WorkItemStatus.OPEN


def test_completing_twice_is_a_conflict(deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    start("three_tasks", case)
    [a] = open_items()
    complete(a.id, {"address": "x"})
    with pytest.raises(engine.Conflict, match="already completed"):
        complete(a.id, {"address": "y"})


def test_stale_expected_version_is_a_conflict(deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    info = start("three_tasks", case)
    [a] = open_items()
    with pytest.raises(engine.Conflict):
        complete(a.id, {"address": "x"}, expected_version=info.lock_version + 5)
    complete(a.id, {"address": "x"}, expected_version=info.lock_version)


def test_state_is_stored_without_the_spec(deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    info = start("three_tasks", case)
    instance = db.session.get(ProcessInstance, info.id)
    assert '"spec"' not in instance.state and "Intake interview" not in instance.state
    assert len(instance.state) < 8000


def test_running_instance_keeps_its_version_after_redeploy(deploy_fixtures, case_factory, tmp_path):
    from tests.conftest import FIXTURES

    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    old = start("three_tasks", case)
    changed = (FIXTURES / "three_tasks.bpmn").read_text().replace('name="Sign agreement"', 'name="Sign agreement v2"')
    with transaction():
        result = engine.deploy([engine.SourceFile("three_tasks.bpmn", changed)])
    assert [d.version for d in result.deployed] == [2]
    new = start("three_tasks", case_factory())
    assert (old.definition_version, new.definition_version) == (1, 2)
    items = open_items()
    complete(items[0].id, {"address": "x"})
    complete(items[1].id, {"address": "y"})
    names = {i.instance_id: i.name for i in open_items()}
    assert names == {old.id: "Sign agreement", new.id: "Sign agreement v2"}


def test_call_activity_and_business_rule_task(deploy_fixtures, case_factory):
    deploy_fixtures("tier_rule.dmn", "child.bpmn", "parent.bpmn")
    case = case_factory()
    start("parent", case, {"positives": 2})
    [assess] = open_items()
    assert (assess.element_id, assess.candidate_role) == ("assess", "medical")
    complete(assess.id)
    [after] = open_items()
    assert after.element_id == "after"
    instance = db.session.get(ProcessInstance, after.instance_id)
    assert '"tier": "red"' in instance.state or '"tier":"red"' in instance.state


def test_unknown_process_is_not_found(app, case_factory):
    case = case_factory()
    with pytest.raises(engine.NotFound):
        start("nope", case)


def test_audit_event_in_same_transaction_as_change(deploy_fixtures, case_factory):
    """A rolled-back change leaves no audit event behind."""
    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(RuntimeError):
        with transaction():
            engine.start_process("three_tasks", case_id=case.id, jurisdiction_id=case.jurisdiction_id)
            raise RuntimeError("boom")
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before
    assert db.session.scalar(select(func.count()).select_from(ProcessInstance)) == 0
    assert InstanceStatus.RUNNING.value == "running"


def test_due_date_in_months_counts_calendar_months(deploy_fixtures, case_factory, clock):
    from datetime import UTC, datetime

    from tests.conftest import FIXTURES

    text = (FIXTURES / "three_tasks.bpmn").read_text().replace('camunda:dueDate="P15D"', 'camunda:dueDate="P1M"')
    with transaction():
        engine.deploy([engine.SourceFile("three_tasks.bpmn", text)])
    clock.set(datetime(2026, 1, 31, 9, 0, tzinfo=UTC))
    start("three_tasks", case_factory())
    [item] = open_items()
    assert item.due_at == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)  # January has 31 days, like the timers count


def test_event_based_gateway_is_refused_at_deploy(app):
    from tests.conftest import FIXTURES

    text = (
        (FIXTURES / "child.bpmn")
        .read_text()
        .replace('<bpmn:endEvent id="end"/>', '<bpmn:endEvent id="end"/><bpmn:eventBasedGateway id="choose"/>')
    )
    with pytest.raises(engine.InvalidDefinition, match="eventBasedGateway is not supported"):
        with transaction():
            engine.deploy([engine.SourceFile("child.bpmn", text)])


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL draws the instance id from its sequence")
def test_a_start_writes_its_instance_row_once(deploy_fixtures, case_factory):
    """The row goes in with the state the first steps leave: one INSERT, no UPDATE of the fresh row."""
    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    info = engine.start_process("three_tasks", case_id=case.id, jurisdiction_id=case.jurisdiction_id)
    written = db.session.execute(
        text("SELECT n_tup_ins, n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'process_instance'")
    ).one()
    assert tuple(written) == (1, 0)
    instance = db.session.get(ProcessInstance, info.id)
    assert (instance.status, instance.lock_version) == (InstanceStatus.RUNNING, 2)  # as after an update
    assert [i.element_id for i in open_items(case.id)] == ["a"]
    db.session.commit()
