"""Messages between instances of the same case, correlated by case id."""

from sqlalchemy import select

from app import engine
from app.core.db import transaction
from app.engine.models import Message, MessageStatus, ProcessInstance
from app.extensions import db
from tests.engine.test_runtime import complete, open_items, start


def test_message_reaches_waiting_instance_of_same_case_only(deploy_fixtures, case_factory):
    deploy_fixtures("violation.bpmn", "watch.bpmn")
    case, other = case_factory(), case_factory()
    start("watch", case)
    start("watch", other)
    start("violation", case, {"kind": "refused_test"})
    record = next(i for i in open_items() if i.element_id == "record")
    complete(record.id)
    talks = [i for i in open_items() if i.element_id == "talk"]
    assert [t.case_id for t in talks] == [case.id]
    watch = db.session.get(ProcessInstance, talks[0].instance_id)
    assert '"violation":{"kind":"refused_test"}' in watch.state.replace(" ", "")
    [message] = db.session.scalars(select(Message)).all()
    assert message.status == MessageStatus.DELIVERED and message.target_instance_id == watch.id


def test_message_without_receiver_waits_in_outbox_until_one_waits(deploy_fixtures, case_factory):
    deploy_fixtures("violation.bpmn", "watch.bpmn")
    case = case_factory()
    start("violation", case, {"kind": "absent"})
    complete(open_items()[0].id)
    [message] = db.session.scalars(select(Message)).all()
    assert message.status == MessageStatus.PENDING
    start("watch", case)
    with transaction():
        assert engine.deliver_pending_messages() == 1
    assert [i.element_id for i in open_items()] == ["talk"]


def test_message_start_event_chains_cycles(deploy_fixtures, case_factory):
    deploy_fixtures("cycle.bpmn")
    case = case_factory()
    with transaction():
        assert engine.send_message(case.id, case.jurisdiction_id, "next_cycle", {"cycle": 1, "cycles": 3})
    for expected in (1, 2, 3):
        [item] = open_items()
        instance = db.session.get(ProcessInstance, item.instance_id)
        assert f'"cycle":{expected}' in instance.state
        complete(item.id, {"result": "negative"})
    assert open_items() == []
    statuses = db.session.scalars(select(ProcessInstance.status)).all()
    assert [s.value for s in statuses] == ["completed"] * 3


def test_undeliverable_message_expires_after_ttl(deploy_fixtures, case_factory, clock):
    deploy_fixtures("violation.bpmn")
    case = case_factory()
    with transaction():
        assert engine.send_message(case.id, case.jurisdiction_id, "nobody_listens", {}) is False
    clock.advance(days=29)
    with transaction():
        engine.deliver_pending_messages()
    assert db.session.scalars(select(Message.status)).one() == MessageStatus.PENDING
    clock.advance(days=2)
    with transaction():
        engine.deliver_pending_messages()
    assert db.session.scalars(select(Message.status)).one() == MessageStatus.EXPIRED


def test_queued_outside_message_later_starts_a_process_in_the_case_jurisdiction(deploy_fixtures, case_factory):
    """A message sent from outside any process (a UI button) that no deployed process takes yet waits; once a
    process that starts with it is deployed, the worker starts it where the case is."""
    case = case_factory()
    with transaction():
        assert engine.send_message(case.id, case.jurisdiction_id, "next_cycle", {"cycle": 1, "cycles": 1}) is False
    deploy_fixtures("cycle.bpmn")
    with transaction():
        assert engine.deliver_pending_messages() == 1
    [item] = open_items()
    assert item.element_id == "checkin" and item.jurisdiction_id == case.jurisdiction_id
