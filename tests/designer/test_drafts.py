"""The process library, drafts, the modeler's save/validate/deploy endpoints and uploads."""

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.designer.models import DefinitionDraft
from app.engine.models import ProcessDefinition
from app.extensions import db

FIXTURES = Path(__file__).resolve().parent.parent / "engine" / "fixtures"
THREE_TASKS = (FIXTURES / "three_tasks.bpmn").read_text(encoding="utf-8")


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def deployed(deploy_fixtures):
    deploy_fixtures("three_tasks.bpmn", "tier_rule.dmn")


def _edit_latest(client, key: str) -> int:
    definition = db.session.scalars(
        select(ProcessDefinition).where(ProcessDefinition.key == key).order_by(ProcessDefinition.version.desc())
    ).first()
    response = client.post(f"/designer/versions/{definition.id}/edit")
    assert response.status_code == 302
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def test_library_lists_processes_and_decisions_for_designers_and_supervisors(client, login, deployed):
    login("designer")
    page = client.get("/designer/").get_data(as_text=True)
    assert "three_tasks.bpmn" in page and "tier_rule.dmn" in page
    login("supervisor")
    assert client.get("/designer/").status_code == 200
    for other in ("caseworker", "police", "admin"):
        login(other)
        assert client.get("/designer/").status_code == 404


def test_only_designers_edit_or_deploy(client, login, deployed):
    login("supervisor")
    definition = db.session.scalars(select(ProcessDefinition)).first()
    assert client.post(f"/designer/versions/{definition.id}/edit").status_code == 403
    assert client.post("/designer/drafts/new", data={"kind": "bpmn"}).status_code == 403
    assert _count(DefinitionDraft) == 0


def test_download_gives_the_deployed_file(client, login, deployed):
    login("designer")
    definition = db.session.scalars(select(ProcessDefinition).where(ProcessDefinition.key == "three_tasks")).one()
    response = client.get(f"/designer/versions/{definition.id}/file")
    assert response.get_data(as_text=True) == definition.xml
    assert "attachment" in response.headers["Content-Disposition"]


def test_draft_is_private_and_survives_reload(client, login, users, deployed):
    login("designer")
    draft_id = _edit_latest(client, "three_tasks")
    edited = THREE_TASKS.replace('name="Intake interview"', 'name="Intake interview, renamed"')
    assert 'name="Intake interview, renamed"' in edited
    response = client.post(f"/designer/drafts/{draft_id}", json={"xml": edited})
    assert response.status_code == 200 and response.json["saved_at"]
    assert client.get(f"/designer/drafts/{draft_id}/file").get_data(as_text=True) == edited
    assert client.get(f"/designer/drafts/{draft_id}").status_code == 200
    login("supervisor")
    assert client.get(f"/designer/drafts/{draft_id}").status_code in (403, 404)
    assert client.get(f"/designer/drafts/{draft_id}/file").status_code == 404


def test_saving_garbage_keeps_the_draft(client, login, deployed):
    login("designer")
    draft_id = _edit_latest(client, "three_tasks")
    before = db.session.get(DefinitionDraft, draft_id).xml
    response = client.post(f"/designer/drafts/{draft_id}", json={"xml": "<not xml"})
    assert response.status_code == 400 and "XML" in response.json["error"]
    response = client.post(f"/designer/drafts/{draft_id}", data="nonsense", content_type="text/plain")
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(DefinitionDraft, draft_id).xml == before


def test_validate_pins_problems_to_elements_and_deploys_nothing(client, login, deployed):
    login("designer")
    draft_id = _edit_latest(client, "three_tasks")
    broken = THREE_TASKS.replace("<bpmn:flowNodeRef>a</bpmn:flowNodeRef>", "")
    assert broken != THREE_TASKS
    versions = _count(ProcessDefinition)
    body = client.post(f"/designer/drafts/{draft_id}/validate", json={"xml": broken}).json
    assert body["ok"] is False
    assert any(p["element"] == "a" and "lane" in p["message"] for p in body["problems"])
    response = client.post(f"/designer/drafts/{draft_id}/deploy", json={"xml": broken})
    assert response.status_code == 422 and response.json["problems"]
    assert _count(ProcessDefinition) == versions
    assert db.session.get(DefinitionDraft, draft_id).xml == broken  # what was typed is kept


def test_deploy_without_approval_makes_the_next_version(client, login, app, deployed):
    login("designer")
    draft_id = _edit_latest(client, "three_tasks")
    edited = THREE_TASKS.replace('name="Intake interview"', 'name="Intake interview, renamed"')
    response = client.post(f"/designer/drafts/{draft_id}/deploy", json={"xml": edited})
    assert response.status_code == 200 and response.json["ok"], response.json
    versions = db.session.scalars(select(ProcessDefinition.version).where(ProcessDefinition.key == "three_tasks")).all()
    assert sorted(versions) == [1, 2]
    assert db.session.get(DefinitionDraft, draft_id) is None
    assert db.session.scalar(select(func.count()).where(AuditEvent.type == "definition_deployed")) >= 1


def test_new_blank_files_open(client, login):
    login("designer")
    for kind in ("bpmn", "dmn"):
        response = client.post("/designer/drafts/new", data={"kind": kind})
        assert response.status_code == 302
        draft = db.session.scalars(select(DefinitionDraft).order_by(DefinitionDraft.id.desc())).first()
        assert draft.kind.value == kind and draft.file_name.endswith(f".{kind}")
        assert client.get(f"/designer/drafts/{draft.id}").status_code == 200


def test_upload_keeps_a_readable_file_and_refuses_others(client, login):
    login("designer")
    response = client.post(
        "/designer/drafts/upload",
        data={"file": (io.BytesIO(THREE_TASKS.encode()), "three_tasks.bpmn")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    assert _count(DefinitionDraft) == 1
    for name, content, message in [
        ("broken.bpmn", b"<definitions", "XML"),
        ("notes.txt", b"hello", ".bpmn"),
        ("latin1.bpmn", "<a>é</a>".encode("latin-1"), "UTF-8"),
    ]:
        response = client.post(
            "/designer/drafts/upload",
            data={"file": (io.BytesIO(content), name)},
            content_type="multipart/form-data",
        )
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)
    assert _count(DefinitionDraft) == 1


def test_uploaded_names_are_cleaned_and_download_in_any_language(client, login):
    login("designer")
    xml = THREE_TASKS.replace('id="three_tasks"', 'id="home_visit"').replace(
        'processRef="three_tasks"', 'processRef="home_visit"'
    )
    response = client.post(
        "/designer/drafts/upload",
        data={"file": (io.BytesIO(xml.encode()), "../流程:家访.bpmn")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    draft = db.session.scalars(select(DefinitionDraft)).one()
    assert draft.file_name == "流程_家访.bpmn" and draft.key == "home_visit"
    response = client.get(f"/designer/drafts/{draft.id}/file?download=1")
    assert response.status_code == 200 and "filename*=UTF-8''" in response.headers["Content-Disposition"]


def test_a_file_reusing_a_deployed_id_is_flagged(client, login, deployed):
    login("designer")
    client.post(
        "/designer/drafts/upload",
        data={"file": (io.BytesIO(THREE_TASKS.encode()), "other.bpmn")},
        content_type="multipart/form-data",
    )
    draft = db.session.scalars(select(DefinitionDraft)).one()
    assert draft.base_definition_id is not None  # the upload continues three_tasks: no warning needed
    assert 'id="replaces-notice"' not in client.get(f"/designer/drafts/{draft.id}").get_data(as_text=True)
    client.post("/designer/drafts/new", data={"kind": "bpmn"})
    blank = db.session.scalars(select(DefinitionDraft).order_by(DefinitionDraft.id.desc())).first()
    client.post(f"/designer/drafts/{blank.id}", json={"xml": THREE_TASKS})
    assert 'id="replaces-notice"' in client.get(f"/designer/drafts/{blank.id}").get_data(as_text=True)
