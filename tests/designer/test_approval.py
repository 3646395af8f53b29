"""Deploys that wait for a second designer or a supervisor (DEPLOY_APPROVAL), and that both steps are audited."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.designer.models import DefinitionDraft, DeployRequest, RequestStatus
from app.engine.models import ProcessDefinition
from app.extensions import db

FIXTURES = Path(__file__).resolve().parent.parent / "engine" / "fixtures"
THREE_TASKS = (FIXTURES / "three_tasks.bpmn").read_text(encoding="utf-8")
RENAMED = THREE_TASKS.replace('name="Intake interview"', 'name="Intake interview, renamed"')


@pytest.fixture
def approval(app, deploy_fixtures):
    deploy_fixtures("three_tasks.bpmn")
    app.config["DEPLOY_APPROVAL"] = True


def _versions() -> list[int]:
    return sorted(db.session.scalars(select(ProcessDefinition.version).where(ProcessDefinition.key == "three_tasks")))


def _events(type_: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.type == type_)))


def _request_deploy(client, login, xml=RENAMED) -> DeployRequest:
    login("designer")
    definition = db.session.scalars(select(ProcessDefinition).where(ProcessDefinition.key == "three_tasks")).one()
    draft_id = int(client.post(f"/designer/versions/{definition.id}/edit").headers["Location"].rsplit("/", 1)[1])
    response = client.post(f"/designer/drafts/{draft_id}/deploy", json={"xml": xml, "note": "rename the intake"})
    assert response.status_code == 200 and response.json["ok"], response.json
    return db.session.scalars(select(DeployRequest)).one()


def test_deploy_waits_for_a_second_person(client, login, approval, designer2):
    request = _request_deploy(client, login)
    assert request.status == RequestStatus.PENDING and request.note == "rename the intake"
    assert _versions() == [1]
    assert [e.payload["request_id"] for e in _events("deploy_requested")] == [request.id]

    # The requester cannot approve their own deploy.
    client.post(f"/designer/requests/{request.id}/approve")
    db.session.expire_all()
    assert request.status == RequestStatus.PENDING and _versions() == [1]

    login("designer2")
    page = client.get(f"/designer/diff?a={_latest_id()}&b=r{request.id}").get_data(as_text=True)
    assert "Intake interview, renamed" in page  # the reviewer sees what changes
    assert client.post(f"/designer/requests/{request.id}/approve").status_code == 302
    db.session.expire_all()
    assert request.status == RequestStatus.DEPLOYED and _versions() == [1, 2]
    assert request.decided_by_id is not None and request.deployed[0]["version"] == 2
    approved = _events("deploy_approved")
    assert len(approved) == 1 and approved[0].payload["request_id"] == request.id
    assert db.session.scalar(select(func.count()).select_from(DefinitionDraft)) == 0


def _latest_id() -> int:
    return db.session.scalar(
        select(ProcessDefinition.id)
        .where(ProcessDefinition.key == "three_tasks")
        .order_by(ProcessDefinition.version.desc())
        .limit(1)
    )


def test_a_supervisor_can_reject_with_a_reason(client, login, approval):
    request = _request_deploy(client, login)
    login("supervisor")
    assert client.post(f"/designer/requests/{request.id}/reject", data={"reason": ""}).status_code == 302
    db.session.expire_all()
    assert request.status == RequestStatus.PENDING  # no reason, no decision
    client.post(f"/designer/requests/{request.id}/reject", data={"reason": "wrong article cited"})
    db.session.expire_all()
    assert request.status == RequestStatus.REJECTED and request.reason == "wrong article cited"
    assert _versions() == [1]
    assert _events("deploy_rejected")[0].payload["reason"] == "wrong article cited"
    # The draft is still there to be fixed.
    assert db.session.scalar(select(func.count()).select_from(DefinitionDraft)) == 1
    # A decided request cannot be decided again.
    client.post(f"/designer/requests/{request.id}/approve")
    db.session.expire_all()
    assert request.status == RequestStatus.REJECTED and _versions() == [1]


def test_an_approval_that_no_longer_validates_deploys_nothing(client, login, approval, deploy_fixtures, designer2):
    parent = (FIXTURES / "parent.bpmn").read_text(encoding="utf-8")
    deploy_fixtures("child.bpmn", "tier_rule.dmn")
    login("designer")
    response = client.post("/designer/drafts/new", data={"kind": "bpmn"})
    draft_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert client.post(f"/designer/drafts/{draft_id}/deploy", json={"xml": parent}).json["ok"]
    request = db.session.scalars(select(DeployRequest)).one()
    # What was asked for no longer validates when it is approved (the stored file is altered here, standing in for
    # something it depends on having changed meanwhile).
    request.files = [
        {"name": "parent.bpmn", "content": parent.replace('calledElement="child"', 'calledElement="gone"')}
    ]
    db.session.commit()
    login("designer2")
    before = db.session.scalar(select(func.count()).select_from(ProcessDefinition))
    client.post(f"/designer/requests/{request.id}/approve")
    db.session.expire_all()
    assert request.status == RequestStatus.FAILED
    assert any("gone" in p["message"] for p in request.problems)
    assert db.session.scalar(select(func.count()).select_from(ProcessDefinition)) == before
    assert len(_events("deploy_failed")) == 1


def test_requester_can_withdraw(client, login, approval):
    request = _request_deploy(client, login)
    client.post(f"/designer/requests/{request.id}/withdraw")
    db.session.expire_all()
    assert request.status == RequestStatus.WITHDRAWN and _versions() == [1]


def test_invalid_files_make_no_request(client, login, approval):
    login("designer")
    definition = db.session.scalars(select(ProcessDefinition)).one()
    draft_id = int(client.post(f"/designer/versions/{definition.id}/edit").headers["Location"].rsplit("/", 1)[1])
    broken = THREE_TASKS.replace("<bpmn:flowNodeRef>a</bpmn:flowNodeRef>", "")
    response = client.post(f"/designer/drafts/{draft_id}/deploy", json={"xml": broken})
    assert response.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(DeployRequest)) == 0


def test_requests_page_lists_pending_and_decided(client, login, approval):
    request = _request_deploy(client, login)
    page = client.get("/designer/requests").get_data(as_text=True)
    assert f'id="request-{request.id}"' in page and "rename the intake" in page
    login("caseworker")
    assert client.get("/designer/requests").status_code == 404
