"""Every route with an object id, tried by a user of another community, answers 404 (no existence leak)."""

import io
import re

import pytest
from sqlalchemy import select

from app import engine
from app.cases.models import Document
from app.core.db import transaction
from app.designer import jobs, operations
from app.engine.models import Incident, ProcessDefinition, ProcessInstance, WorkItem
from app.extensions import db
from app.inbox.models import SavedFilter
from tests.conftest import FIXTURES
from tests.inbox.test_inbox import FIXTURE, PNG

#: Routes reachable without an id of someone else's object; they are scoped by their queries (tested per area).
NO_OBJECT = {"static", "core.healthz"}


@pytest.fixture
def objects(app, users, tree, case_factory, clock):
    """One of each kind of object, all in community a (or owned by its caseworker)."""
    with transaction():
        engine.deploy([engine.SourceFile.from_path(FIXTURE), engine.SourceFile.from_path(FIXTURES / "failing.bpmn")])
    case = case_factory("张伟", tree["a"])
    with transaction():  # an incident in community a (tests/test_app.py raises one the same way)
        engine.start_process("failing", case_id=case.id, jurisdiction_id=case.jurisdiction_id, data={"divisor": 0})
    failing = db.session.scalars(select(WorkItem).where(WorkItem.process_key == "failing")).one()
    with transaction():
        engine.complete_work_item(failing.id, {})
    incident = db.session.scalars(select(Incident)).one()
    with transaction():
        engine.start_process("all_fields", case_id=case.id, jurisdiction_id=case.jurisdiction_id)
        saved = SavedFilter(owner_id=users["caseworker"].id, name="mine", params={}, created_at=clock.now())
        db.session.add(saved)
        from werkzeug.datastructures import FileStorage

        from app.cases.documents import store_document

        document = store_document(case, FileStorage(io.BytesIO(PNG), "p.png"), users["caseworker"].id)
    item = db.session.scalars(select(WorkItem).where(WorkItem.process_key == "all_fields")).one()
    definition = db.session.scalars(select(ProcessDefinition).where(ProcessDefinition.key == "all_fields")).one()
    with transaction():  # the designer's objects: a draft, a deploy request and a migration job
        draft = operations.draft_from_version(users["designer"], definition)
        app.config["DEPLOY_APPROVAL"] = True
        request = operations.deploy_draft(draft, users["designer"]).request
        job = jobs.create_job(users["designer"], definition, definition, [item.instance_id], {}, {})
    return {
        "instance_id": item.instance_id,
        "incident_id": incident.id,
        "definition_id": definition.id,
        "key": definition.key,
        "version": definition.version,
        "measure": "report_rate",
        "case_id": case.id,
        "item_id": item.id,
        "document_id": document.id,
        "filter_id": saved.id,
        "user_id": users["caseworker"].id,
        "node_id": tree["a"].id,
        "name": "report_violation",
        "draft_id": draft.id,
        "request_id": request.id,
        "job_id": job.id,
    }


def _routes_with_ids(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NO_OBJECT or not rule.arguments:
            continue
        yield rule


def test_every_route_with_an_id_answers_404_to_another_community(app, client, login, objects):
    login("caseworker2")
    tried = 0
    for rule in _routes_with_ids(app):
        url = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(objects[m.group(1)]), rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method, data={"action": "draft", "reason": "x", "name": "x"})
            assert response.status_code == 404, f"{method} {url} ({rule.endpoint}) -> {response.status_code}"
            tried += 1
    assert tried >= 15
    # nothing changed on the way
    item = db.session.get(WorkItem, objects["item_id"])
    assert item.assignee_id is None and db.session.get(SavedFilter, objects["filter_id"]) is not None
    assert db.session.get(Document, objects["document_id"]) is not None
    assert db.session.get(Incident, objects["incident_id"]).resolved_at is None
    assert db.session.get(ProcessInstance, objects["instance_id"]).status.value == "running"


def test_the_owner_can_reach_the_same_objects(app, client, login, objects):
    """The 404s above come from scoping, not from wrong ids: the caseworker of community a gets through."""
    login("caseworker")
    assert client.get(f"/inbox/tasks/{objects['item_id']}").status_code == 200
    assert client.get(f"/cases/{objects['case_id']}").status_code == 200
    assert client.get(f"/cases/{objects['case_id']}/documents/{objects['document_id']}").data == PNG
