"""The designer's migration pages: choose instances of a version, dry run, execute as a job, and the worker path."""

import pytest
from sqlalchemy import func, select

from app import engine
from app.audit.models import AuditEvent
from app.core.db import transaction
from app.designer import jobs
from app.designer.models import ItemStatus, JobStatus, MigrationJob, MigrationJobItem
from app.engine.models import ProcessInstance, WorkItem, WorkItemStatus
from app.extensions import db
from app.worker import run_once
from tests.conftest import FIXTURES

V1 = (FIXTURES / "migration" / "check_v1.bpmn").read_text()
V2 = (FIXTURES / "migration" / "check_v2.bpmn").read_text()


def _deploy(text: str):
    with transaction():
        return engine.deploy([engine.SourceFile("check.bpmn", text)]).deployed[0]


@pytest.fixture
def versions(app, users, tree, case_factory):
    """Three v1 instances in community a: two at the intake, one at record_check (which v2 lacks); then v2."""
    v1 = _deploy(V1)
    ids = []
    for n in range(3):
        case = case_factory(f"测试{n}", tree["a"])
        with transaction():
            ids.append(engine.start_process("check", case_id=case.id, jurisdiction_id=case.jurisdiction_id).id)
    intake = db.session.scalars(select(WorkItem).where(WorkItem.instance_id == ids[2])).one()
    with transaction():
        engine.complete_work_item(intake.id, {})
    v2 = _deploy(V2)
    return v1, v2, ids


def _definition_ids(instance_ids):
    db.session.expire_all()
    return [db.session.get(ProcessInstance, i).definition_id for i in instance_ids]


def _events(type_: str) -> int:
    return db.session.scalar(select(func.count()).where(AuditEvent.type == type_))


def test_dry_run_reports_and_changes_nothing(client, login, versions):
    v1, v2, ids = versions
    login("designer")
    page = client.get(f"/designer/versions/{v1.id}/migrate")
    assert page.status_code == 200
    response = client.post(
        f"/designer/versions/{v1.id}/migrate",
        data={"target": v2.id, "action": "dry_run"},
        headers={"Accept-Language": "en"},
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="dry-run-table"' in text and "2 of 3 can move" in text
    assert 'name="map__record_check"' in text  # offered a mapping for the element v2 lacks
    assert _definition_ids(ids) == [v1.id] * 3 and _events("instance_migrated") == 0


def test_execute_moves_what_can_move_and_reports_the_rest(client, login, versions):
    v1, v2, ids = versions
    login("designer")
    response = client.post(f"/designer/versions/{v1.id}/migrate", data={"target": v2.id, "action": "execute"})
    assert response.status_code == 302
    job = db.session.scalars(select(MigrationJob)).one()
    page = client.get(f"/designer/migrations/{job.id}").get_data(as_text=True)
    assert 'id="failed-items"' in page and "record_check" in page
    db.session.expire_all()
    assert job.status == JobStatus.DONE
    assert _definition_ids(ids) == [v2.id, v2.id, v1.id]
    failed = db.session.scalars(select(MigrationJobItem).where(MigrationJobItem.status == ItemStatus.FAILED)).one()
    assert failed.instance_id == ids[2] and "record_check" in failed.message
    assert _events("migration_started") == 1 and _events("instance_migrated") == 2 and _events("migration_failed") == 1

    # With a mapping the last one moves, onto v2's review task.
    response = client.post(
        f"/designer/versions/{v1.id}/migrate",
        data={"target": v2.id, "action": "execute", "map__record_check": "review"},
    )
    assert response.status_code == 302
    assert _definition_ids(ids) == [v2.id] * 3
    open_items = db.session.scalars(
        select(WorkItem.element_id).where(WorkItem.instance_id == ids[2], WorkItem.status == WorkItemStatus.OPEN)
    ).all()
    assert open_items == ["review"]


def test_mapping_to_an_unknown_element_is_ignored(client, login, versions):
    v1, v2, ids = versions
    login("designer")
    client.post(
        f"/designer/versions/{v1.id}/migrate",
        data={"target": v2.id, "action": "execute", "map__record_check": "no_such_element"},
    )
    assert _definition_ids(ids)[2] == v1.id


def test_the_worker_moves_queued_jobs(app, users, versions):
    v1, v2, ids = versions
    with app.test_request_context():
        with transaction():
            job = jobs.create_job(users["designer"], v1, v2, ids[:2], {}, {})
    assert jobs.progress(job.id)["pending"] == 2
    run_once(50)
    assert jobs.progress(job.id) == {"pending": 0, "moved": 2, "failed": 0, "total": 2}
    db.session.expire_all()
    assert db.session.get(MigrationJob, job.id).status == JobStatus.DONE
    assert _definition_ids(ids[:2]) == [v2.id, v2.id]


def test_only_designers_migrate(client, login, versions):
    v1, v2, ids = versions
    login("supervisor")
    assert (
        client.post(f"/designer/versions/{v1.id}/migrate", data={"target": v2.id, "action": "execute"}).status_code
        == 403
    )
    assert _definition_ids(ids) == [v1.id] * 3
