"""The app serves: health check, sign-in with demo users, demo data with open work."""

from sqlalchemy import func, select

from app import engine
from app.core.db import transaction
from app.demo import DEMO_PASSWORD, seed
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db
from tests.conftest import FIXTURES


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_demo_seed_once_creates_users_cases_and_open_work(app):
    with transaction():
        engine.deploy(engine.workflow_files(FIXTURES.parents[2] / "workflows"))
    with transaction():
        assert seed() is True
    with transaction():
        assert seed() is False
    open_items = db.session.scalars(select(WorkItem).where(WorkItem.status == WorkItemStatus.OPEN)).all()
    assert len(open_items) == 3 and {i.element_id for i in open_items} == {"deliver_decision"}
    assert all(i.legal_basis == "条例13" and i.candidate_role == "caseworker" for i in open_items)


def test_sign_in_and_out(app, client):
    with transaction():
        seed()
    page = client.post("/auth/login", data={"username": "caseworker", "password": "wrong"})
    assert page.status_code == 200 and "用户名或密码错误" in page.get_data(as_text=True)  # Chinese by default
    response = client.post("/auth/login", data={"username": "caseworker", "password": DEMO_PASSWORD})
    assert response.status_code == 302
    assert client.get("/").headers["Location"].endswith("/inbox/")  # the workbench opens on the inbox
    inbox = client.get("/inbox/?view=claimable").get_data(as_text=True)
    assert 'id="count-claimable">0<' in inbox  # no workflow deployed here: nothing open
    client.post("/auth/logout")
    assert client.get("/").status_code == 302


def test_users_create_command(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "wang", "--password", "s3cret-pass", "--role", "police"])
    assert result.exit_code == 0, result.output
    bad = runner.invoke(args=["users", "create", "li", "--password", "s3cret-pass", "--role", "wizard"])
    assert bad.exit_code != 0 and "unknown role" in bad.output
    from app.auth.models import User

    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_incidents_commands(app, deploy_fixtures, case_factory):
    deploy_fixtures("failing.bpmn")
    case = case_factory()
    with transaction():
        engine.start_process("failing", case_id=case.id, jurisdiction_id=case.jurisdiction_id, data={"divisor": 0})
    item = db.session.scalars(select(WorkItem)).one()
    with transaction():
        engine.complete_work_item(item.id, {})
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["incidents", "list"])
    assert "element=divide" in listed.output and "division by zero" in listed.output
    bad = runner.invoke(args=["incidents", "retry", "1", "--data", "{not json"])
    assert bad.exit_code != 0 and "not valid JSON" in bad.output
    fixed = runner.invoke(args=["incidents", "retry", "1", "--data", '{"divisor": 4}'])
    assert fixed.exit_code == 0 and "resolved" in fixed.output
    assert "no incidents" in runner.invoke(args=["incidents", "list"]).output


def test_workbench_counts_only_work_in_the_users_jurisdiction(app, client):
    with transaction():
        engine.deploy(engine.workflow_files(FIXTURES.parents[2] / "workflows"))
    with transaction():
        seed()  # two cases in 夏湾社区 (caseworker), one in 茂盛社区 (caseworker2)
    client.post("/auth/login", data={"username": "caseworker", "password": DEMO_PASSWORD})
    assert 'id="count-claimable">2<' in client.get("/inbox/").get_data(as_text=True)
    client.post("/auth/logout")
    client.post("/auth/login", data={"username": "caseworker2", "password": DEMO_PASSWORD})
    assert 'id="count-claimable">1<' in client.get("/inbox/").get_data(as_text=True)
