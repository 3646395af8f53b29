"""Monitoring pages: overview, heat map, incidents with retry, long waits and timers, instance history, access."""

import json
import re

import pytest
from sqlalchemy import func, select

from app import engine
from app.audit.models import AuditEvent
from app.core.db import transaction
from app.engine import services
from app.engine.models import (
    Incident,
    IncidentStatus,
    InstanceStatus,
    ProcessDefinition,
    ProcessInstance,
    Timer,
    TimerStatus,
    WorkItem,
    WorkItemStatus,
)
from app.extensions import db
from tests.conftest import PASSWORD
from tests.engine.test_runtime import complete, open_items, start


@pytest.fixture
def outsider(users, tree):
    """A supervisor of community b only (the district supervisor sees both communities)."""
    from app.auth.operations import create_user

    with transaction():
        return create_user("supervisor_b", PASSWORD, ["supervisor"], tree["b"], "supervisor b")


@pytest.fixture
def three(deploy_fixtures, case_factory, tree):
    """three_tasks v1 with instances at different steps: two in community a, one in b."""
    deploy_fixtures("three_tasks.bpmn")
    cases = [case_factory(node=tree["a"]), case_factory(node=tree["a"]), case_factory(node=tree["b"])]
    infos = [start("three_tasks", case) for case in cases]
    complete(open_items(cases[0].id)[0].id, {"address": "x"})  # a done, b open
    complete(open_items(cases[0].id)[0].id)  # b done, c open
    complete(open_items(cases[2].id)[0].id, {"address": "y"})  # a done, b open
    definition = db.session.scalars(select(ProcessDefinition).where(ProcessDefinition.key == "three_tasks")).one()
    return {"cases": cases, "instances": [i.id for i in infos], "definition": definition}


def page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:800]
    return response.get_data(as_text=True)


def diagram_data(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="diagram-data">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def heat_table(html: str) -> dict[str, dict[str, int]]:
    rows = {}
    for element_id, body in re.findall(r'<tr data-element="([^"]+)">(.*?)</tr>', html, re.S):
        rows[element_id] = {k: int(v) for k, v in re.findall(r'data-kind="(\w+)">(\d+)<', body)}
    return rows


# --- access -------------------------------------------------------------------------------------------------------


def test_only_supervisors_and_designers_see_monitoring(client, login, three):
    definition, instance_id = three["definition"], three["instances"][0]
    urls = [
        "/monitor/",
        f"/monitor/definitions/three_tasks/{definition.version}",
        f"/monitor/definitions/{definition.id}/diagram.bpmn",
        f"/monitor/instances/{instance_id}",
    ]
    assert client.get(urls[0]).status_code == 302  # to the sign-in page
    for username in ("caseworker", "caseworker2", "police", "admin"):
        login(username)
        for url in urls:
            assert client.get(url).status_code == 404, (username, url)
        assert client.post(f"/monitor/instances/{instance_id}/suspend", data={"reason": "x"}).status_code == 404


def test_every_monitor_route_answers_404_to_a_caseworker(app, client, login, deploy_fixtures, case_factory):
    deploy_fixtures("failing.bpmn")
    info = start("failing", case_factory(), {"divisor": 0})
    complete(open_items()[0].id)
    incident = db.session.scalars(select(Incident)).one()
    ids = {
        "key": "failing",
        "version": 1,
        "definition_id": db.session.get(ProcessInstance, info.id).definition_id,
        "instance_id": info.id,
    }
    ids["incident_id"] = incident.id
    login("caseworker")
    tried = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("monitor."):
            url = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(ids[m.group(1)]), rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert client.open(url, method=method, data={"reason": "x"}).status_code == 404, (method, url)
                tried += 1
    assert tried == 7
    assert db.session.get(Incident, incident.id).attempts == 1


def test_designer_sees_definitions_diagrams_and_counts_but_no_instance_or_case(client, login, three):
    definition, instance_id = three["definition"], three["instances"][0]
    login("designer")
    page(client, "/monitor/")
    html = page(client, f"/monitor/definitions/three_tasks/{definition.version}")
    assert heat_table(html)["a"]["completed"] == 2
    assert "incident-list" not in html and "waiting-table" not in html
    assert three["cases"][0].reference not in html and three["cases"][0].person_name not in html
    xml = client.get(f"/monitor/definitions/{definition.id}/diagram.bpmn")
    assert xml.status_code == 200 and xml.mimetype == "application/xml" and b'id="three_tasks"' in xml.data
    assert client.get(f"/monitor/instances/{instance_id}").status_code == 404
    assert client.post(f"/monitor/instances/{instance_id}/suspend", data={"reason": "x"}).status_code == 404
    assert db.session.get(ProcessInstance, instance_id).status == InstanceStatus.RUNNING


def test_supervisor_outside_the_jurisdiction_gets_404(client, login, three, outsider):
    a_instance, b_instance = three["instances"][0], three["instances"][2]
    login("supervisor_b")
    assert client.get(f"/monitor/instances/{a_instance}").status_code == 404
    assert client.post(f"/monitor/instances/{a_instance}/suspend", data={"reason": "x"}).status_code == 404
    page(client, f"/monitor/instances/{b_instance}")
    html = page(client, "/monitor/definitions/three_tasks/1")
    assert heat_table(html)["a"] == {"active": 0, "completed": 1, "incidents": 0}  # only b's case counts
    assert three["cases"][0].reference not in html and three["cases"][2].reference in html
    assert client.get("/monitor/definitions/424242/diagram.bpmn").status_code == 404
    assert client.get("/monitor/definitions/three_tasks/9").status_code == 404
    assert client.get(f"/monitor/instances/{2**31 + 5}").status_code == 404


def test_diagram_is_served_to_a_supervisor_only_with_an_instance_in_scope(
    client, login, deploy_fixtures, outsider, case_factory, tree
):
    deploy_fixtures("three_tasks.bpmn")
    start("three_tasks", case_factory(node=tree["a"]))
    definition_id = db.session.scalar(select(ProcessDefinition.id).where(ProcessDefinition.key == "three_tasks"))
    login("supervisor_b")
    assert client.get(f"/monitor/definitions/{definition_id}/diagram.bpmn").status_code == 404
    assert 'id="diagram"' not in page(client, "/monitor/definitions/three_tasks/1")
    login("supervisor")
    assert client.get(f"/monitor/definitions/{definition_id}/diagram.bpmn").status_code == 200


# --- overview and heat map ----------------------------------------------------------------------------------------


def test_overview_counts_instances_by_state_in_scope(client, login, three, outsider):
    with transaction():
        db.session.get(ProcessInstance, three["instances"][1]).status = InstanceStatus.SUSPENDED
    login("supervisor")
    html = page(client, "/monitor/")
    row = re.search(rf'<tr id="definition-{three["definition"].id}">(.*?)</tr>', html, re.S).group(1)
    assert re.search(r'data-status="running">2<', row) and re.search(r'data-status="suspended">1<', row)
    login("supervisor_b")
    row = re.search(r'<tr id="definition-\d+">(.*?)</tr>', page(client, "/monitor/"), re.S).group(1)
    assert re.search(r'data-status="running">1<', row) and re.search(r'data-status="suspended"><', row)


def test_heat_map_counts_equal_direct_counts(client, login, three):
    definition_id = three["definition"].id
    login("supervisor")
    html = page(client, "/monitor/definitions/three_tasks/1")
    shown = heat_table(html)
    assert diagram_data(html)["heat"] == shown

    mine = select(ProcessInstance.id).where(ProcessInstance.definition_id == definition_id)
    expected: dict[str, dict[str, int]] = {}
    for item in db.session.scalars(select(WorkItem).where(WorkItem.instance_id.in_(mine))):
        counts = expected.setdefault(item.element_id, {"active": 0, "completed": 0, "incidents": 0})
        counts["active"] += item.status == WorkItemStatus.OPEN
        counts["completed"] += item.status == WorkItemStatus.COMPLETED
    assert shown == expected
    assert shown["a"] == {"active": 1, "completed": 2, "incidents": 0}
    assert shown["b"] == {"active": 1, "completed": 1, "incidents": 0}
    assert shown["c"] == {"active": 1, "completed": 0, "incidents": 0}


def test_heat_map_counts_waiting_timers_and_fired_ones(client, login, deploy_fixtures, case_factory, clock):
    deploy_fixtures("timers.bpmn")
    for _ in range(2):
        start("timers", case_factory(), {"decided_at": clock.now().isoformat()})
    clock.advance(days=10, seconds=1)
    with transaction():
        engine.fire_due_timers(100)
    login("supervisor")
    heat = heat_table(page(client, "/monitor/definitions/timers/1"))
    waiting = dict(
        db.session.execute(
            select(Timer.element_id, func.count()).where(Timer.status == TimerStatus.WAITING).group_by(Timer.element_id)
        ).all()
    )
    fired = db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.type == "timer_fired"))
    assert heat["report_late"]["active"] == waiting["report_late"] == 2
    assert heat["report_reminder"]["completed"] == fired == 2
    assert heat["reminder_task"]["active"] == 2 and heat["report"]["active"] == 2


# --- incidents, waits, timers -------------------------------------------------------------------------------------


def test_retry_button_resolves_an_incident_and_is_audited(
    client, login, users, deploy_fixtures, case_factory, monkeypatch
):
    deploy_fixtures("failing.bpmn")
    case = case_factory()
    start("failing", case, {"divisor": 2, "service_down": True})
    complete(open_items()[0].id)
    incident = db.session.scalars(select(Incident)).one()
    login("supervisor")
    html = page(client, "/monitor/definitions/failing/1")
    assert f'id="incident-{incident.id}"' in html and "the external service is unavailable" in html
    assert f"/monitor/incidents/{incident.id}/retry" in html
    assert heat_table(html)["call_service"]["incidents"] == 1

    response = client.post(f"/monitor/incidents/{incident.id}/retry")  # still down: fails again, stays open
    assert response.status_code == 302 and response.location.endswith("/monitor/definitions/failing/1")
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).attempts == 2

    monkeypatch.setitem(services._registry, "fail_if_flag", lambda data, params: {"service_called": True})
    response = client.post(f"/monitor/incidents/{incident.id}/retry", data={"back": "instance"})
    assert response.location.endswith(f"/monitor/instances/{incident.instance_id}")
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).status == IncidentStatus.RESOLVED
    assert [i.element_id for i in open_items()] == ["second"]
    retried = db.session.scalars(select(AuditEvent).where(AuditEvent.type == "incident_retried")).all()
    assert [e.actor_id for e in retried] == [users["supervisor"].id] * 2
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.type == "incident_resolved")).one()
    assert "incident-list" not in page(client, "/monitor/definitions/failing/1")


def test_retry_is_refused_while_suspended_and_outside_scope(
    client, login, deploy_fixtures, case_factory, tree, outsider
):
    deploy_fixtures("failing.bpmn")
    info = start("failing", case_factory(node=tree["a"]), {"divisor": 0})
    complete(open_items()[0].id)
    incident = db.session.scalars(select(Incident)).one()
    login("supervisor_b")
    assert client.post(f"/monitor/incidents/{incident.id}/retry").status_code == 404
    login("designer")
    assert client.post(f"/monitor/incidents/{incident.id}/retry").status_code == 404
    login("supervisor")
    client.post(f"/monitor/instances/{info.id}/suspend", data={"reason": "checking data"})
    client.post(f"/monitor/incidents/{incident.id}/retry")
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).attempts == 1
    assert db.session.get(ProcessInstance, info.id).status == InstanceStatus.SUSPENDED
    assert client.post("/monitor/incidents/424242/retry").status_code == 404


def test_waiting_longest_and_timers_due_soon_and_overdue(client, login, deploy_fixtures, case_factory, clock):
    deploy_fixtures("timers.bpmn")
    first = start("timers", case_factory(), {"decided_at": clock.now().isoformat()})
    clock.advance(days=4)
    second = start("timers", case_factory(), {"decided_at": clock.now().isoformat()})
    login("supervisor")
    html = page(client, "/monitor/definitions/timers/1")
    waiting = re.search(r'id="waiting-table">(.*?)</table>', html, re.S).group(1)
    assert waiting.index(f"/monitor/instances/{first.id}") < waiting.index(f"/monitor/instances/{second.id}")
    soon = re.search(r'id="due-soon-table">(.*?)</table>', html, re.S).group(1)
    assert soon.count(f"/monitor/instances/{first.id}") == 1  # its reminder is due in 6 days
    assert 'id="overdue-table"' not in html  # the card says there are none

    with transaction():
        engine.suspend_instance(first.id, "court ruling pending")
    clock.advance(days=7)
    with transaction():
        engine.fire_due_timers(100)
    html = page(client, "/monitor/definitions/timers/1")
    overdue = re.search(r'id="overdue-table">(.*?)</table>', html, re.S).group(1)
    assert f"/monitor/instances/{first.id}" in overdue and f"/monitor/instances/{second.id}" not in overdue


# --- one instance -------------------------------------------------------------------------------------------------


def test_instance_page_marks_the_path_and_lists_element_events_with_data(client, login, three):
    instance_id = three["instances"][0]
    login("supervisor")
    html = page(client, f"/monitor/instances/{instance_id}")
    data = diagram_data(html)
    assert data["completed"] == {"start": 1, "a": 1, "b": 1} and data["active"] == ["c"] and data["waiting"] == []
    [done] = [e for e in data["events"]["a"] if e["type"] == "task_completed"]
    assert done["data"]["address"] == "x"
    assert {e["type"] for e in data["events"]["c"]} == {"task_created"}
    assert f"/monitor/definitions/{three['definition'].id}/diagram.bpmn" in html
    assert three["cases"][0].reference in html

    filtered = page(client, f"/monitor/instances/{instance_id}?event=task_completed")
    table = re.search(r'id="event-table">(.*?)</table>', filtered, re.S).group(1)
    assert table.count('data-type="task_completed"') == 2 and 'data-type="task_created"' not in table


def test_suspend_and_resume_from_the_instance_page_need_a_reason(client, login, users, three, clock):
    instance_id = three["instances"][0]
    login("supervisor")
    response = client.post(f"/monitor/instances/{instance_id}/suspend", data={"reason": "  "})
    assert response.status_code == 422 and "is-invalid" in response.get_data(as_text=True)
    assert db.session.get(ProcessInstance, instance_id).status == InstanceStatus.RUNNING

    response = client.post(f"/monitor/instances/{instance_id}/suspend", data={"reason": "person hospitalised"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(ProcessInstance, instance_id).status == InstanceStatus.SUSPENDED
    html = page(client, f"/monitor/instances/{instance_id}")
    assert f"/monitor/instances/{instance_id}/resume" in html and "person hospitalised" in html

    client.post(f"/monitor/instances/{instance_id}/resume", data={"reason": "discharged"})
    db.session.expire_all()
    assert db.session.get(ProcessInstance, instance_id).status == InstanceStatus.RUNNING
    events = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.type.in_(["instance_suspended", "instance_resumed"]))
        .order_by(AuditEvent.id)
    ).all()
    assert [(e.type, e.actor_id, e.payload["reason"]) for e in events] == [
        ("instance_suspended", users["supervisor"].id, "person hospitalised"),
        ("instance_resumed", users["supervisor"].id, "discharged"),
    ]
    response = client.post(f"/monitor/instances/{instance_id}/resume", data={"reason": "again"})
    assert response.status_code == 302  # not suspended: refused with a message, nothing recorded
    assert (
        db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.type == "instance_resumed"))
        == 1
    )


def test_case_page_links_its_processes_for_supervisors(client, login, three):
    case, instance_id = three["cases"][0], three["instances"][0]
    login("supervisor")
    html = page(client, f"/cases/{case.id}")
    assert 'id="process-history"' in html and f'href="/monitor/instances/{instance_id}"' in html
    login("caseworker")
    assert 'id="process-history"' not in page(client, f"/cases/{case.id}")


def test_a_suspended_instance_is_not_retried_until_resumed(app, deploy_fixtures, case_factory):
    from app import engine
    from app.engine.models import Incident, IncidentStatus, WorkItem

    deploy_fixtures("failing.bpmn")
    case = case_factory()
    with transaction():
        engine.start_process("failing", case_id=case.id, jurisdiction_id=case.jurisdiction_id, data={"divisor": 0})
    item = db.session.scalars(select(WorkItem)).one()
    with transaction():
        engine.complete_work_item(item.id, {})
    incident = db.session.scalars(select(Incident)).one()
    with transaction():
        engine.suspend_instance(incident.instance_id, "核查中", None)
    with pytest.raises(engine.NotRunnable), transaction():
        engine.retry_incident(incident.id, data={"divisor": 2})
    assert db.session.get(Incident, incident.id).status == IncidentStatus.OPEN
