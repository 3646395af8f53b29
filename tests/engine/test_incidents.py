"""Incidents: a failing step leaves the last good state, is recorded, and can be retried."""

import pytest
from sqlalchemy import select

from app import engine
from app.core.db import transaction
from app.engine.models import Incident, IncidentStatus, InstanceStatus, ProcessInstance
from app.extensions import db
from tests.engine.test_runtime import complete, open_items, start


def test_failing_script_keeps_last_good_state_and_retry_with_data_continues(deploy_fixtures, case_factory):
    deploy_fixtures("failing.bpmn")
    case = case_factory()
    start("failing", case, {"divisor": 0})
    [first] = open_items()
    result = complete(first.id)
    assert result.instance.status == "incident" and result.instance.incident_id
    [incident] = db.session.scalars(select(Incident)).all()
    assert incident.element_id == "divide" and "division by zero" in incident.error
    instance = db.session.get(ProcessInstance, incident.instance_id)
    assert instance.status == InstanceStatus.INCIDENT
    assert '"partial"' not in instance.state  # nothing the failing script did was kept
    assert open_items() == []

    with transaction():
        info = engine.retry_incident(incident.id, data={"divisor": 5})
    assert info.status == "running" and info.incident_id is None
    db.session.refresh(incident)
    assert incident.status == IncidentStatus.RESOLVED
    assert [i.element_id for i in open_items()] == ["second"]


def test_failing_service_task_retried_after_it_recovers(deploy_fixtures, case_factory):
    deploy_fixtures("failing.bpmn")
    case = case_factory()
    start("failing", case, {"divisor": 2, "service_down": True})
    complete(open_items()[0].id)
    [incident] = db.session.scalars(select(Incident)).all()
    assert incident.element_id == "call_service" and "unavailable" in incident.error
    with transaction():
        again = engine.retry_incident(incident.id)
    assert again.incident_id == incident.id
    db.session.refresh(incident)
    assert incident.attempts == 2 and incident.status == IncidentStatus.OPEN
    with transaction():
        engine.retry_incident(incident.id, data={"service_down": False})
    assert [i.element_id for i in open_items()] == ["second"]


def test_unknown_work_item_is_not_found(app):
    with pytest.raises(engine.NotFound):
        complete(424242)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("data = open('/etc/passwd').read()", "open"),
        ("x = getattr(divisor, '__class__')", "__class__"),
        ("n = 0\nwhile True:\n    n += 1", "timed out"),
    ],
)
def test_sandbox_blocks_escape_at_run_time_as_incident(deploy_fixtures, case_factory, script, reason):
    """Escapes that only show when the script runs fail the step: incident, state untouched, nothing leaked."""
    from tests.conftest import FIXTURES

    text = (FIXTURES / "failing.bpmn").read_text().replace("partial = 1\nratio = 10 / divisor", script)
    with transaction():
        engine.deploy([engine.SourceFile("failing.bpmn", text)])
    start("failing", case_factory(), {"divisor": 1})
    complete(open_items()[0].id)
    [incident] = db.session.scalars(select(Incident)).all()
    assert incident.element_id == "divide" and reason in incident.error
    assert "root:" not in incident.error  # /etc/passwd was not read


def test_unstorable_data_left_by_a_script_is_an_incident_and_writes_nothing(deploy_fixtures, case_factory):
    from tests.conftest import FIXTURES

    text = (FIXTURES / "failing.bpmn").read_text().replace("partial = 1\nratio = 10 / divisor", "tags = {1, 2}")
    with transaction():
        engine.deploy([engine.SourceFile("failing.bpmn", text)])
    start("failing", case_factory(), {"divisor": 1})
    complete(open_items()[0].id)
    [incident] = db.session.scalars(select(Incident)).all()
    assert "not JSON serializable" in incident.error
    assert open_items() == []  # the next user task was not opened for a state that was never saved
    from app.audit.models import AuditEvent

    created = db.session.scalars(select(AuditEvent.payload).where(AuditEvent.type == "task_created")).all()
    assert [p["element_id"] for p in created] == ["first"]


SERVICE = '<bpmn:serviceTask id="call_service" name="Notify" camunda:topic="fail_if_flag"/>'
NO_SERVICE = '<bpmn:scriptTask id="call_service"><bpmn:script>noted = True</bpmn:script></bpmn:scriptTask>'


@pytest.mark.parametrize("service", [True, False], ids=["row first (service task)", "row with the save"])
def test_failing_step_right_after_start_keeps_the_started_state(deploy_fixtures, case_factory, service):
    """A start whose first steps fail is kept as started, with an incident; a retry with data continues it. (On
    PostgreSQL a start without service tasks inserts its row only with the steps' save: here, as it was before.)"""
    from tests.conftest import FIXTURES

    text = (FIXTURES / "failing.bpmn").read_text()
    text = text.replace('sourceRef="start" targetRef="first"', 'sourceRef="start" targetRef="divide"')
    text = text.replace('sourceRef="first" targetRef="divide"', 'sourceRef="first" targetRef="end"')
    if not service:
        text = text.replace(SERVICE, NO_SERVICE)
        assert NO_SERVICE in text
    with transaction():
        engine.deploy([engine.SourceFile("failing.bpmn", text)])
    info = start("failing", case_factory(), {"divisor": 0})
    assert info.status == "incident" and info.incident_id and info.opened_work_item_ids == []
    instance = db.session.get(ProcessInstance, info.id)
    assert '"partial"' not in instance.state and '"divisor":0' in instance.state
    with transaction():
        again = engine.retry_incident(info.incident_id, data={"divisor": 5})
    assert again.status == "running" and [i.element_id for i in open_items()] == ["second"]
