"""The access log: every view of a case page, download and export is recorded; supervisors see who looked."""

from io import BytesIO

import pytest
from sqlalchemy import select

from app.audit.log import record
from app.audit.models import AuditEvent
from app.auth.models import NodeLevel
from app.cases.models import Document
from app.core.db import transaction
from app.extensions import db
from tests.conftest import PASSWORD

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture
def client(app):
    """English pages, so assertions read the English source strings."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return test_client


@pytest.fixture
def district_b(tree, users):
    """A second district (with its own community and supervisor) beside the tree's district."""
    from app.auth.operations import create_node, create_user

    with transaction():
        district = create_node("斗门区", NodeLevel.DISTRICT, tree["city"])
        street = create_node("井岸镇", NodeLevel.STREET, district)
        community = create_node("新堂社区", NodeLevel.COMMUNITY, street)
        create_user("supervisor_b", PASSWORD, ["supervisor"], district, "Supervisor B")
    return {"district": district, "community": community}


def access_events(case_id: int) -> list[AuditEvent]:
    query = select(AuditEvent).where(
        AuditEvent.case_id == case_id,
        AuditEvent.type.in_(["case_viewed", "document_downloaded", "export_downloaded", "id_number_revealed"]),
    )
    return list(db.session.scalars(query.order_by(AuditEvent.seq)))


def test_every_view_of_a_case_page_is_recorded(client, login, users, case_factory, clock):
    case = case_factory()
    login("caseworker")
    assert client.get(f"/cases/{case.id}").status_code == 200
    assert client.get(f"/cases/{case.id}").status_code == 200
    views = access_events(case.id)
    assert [e.type for e in views] == ["case_viewed", "case_viewed"]
    assert {(e.actor_id, e.jurisdiction_id, e.occurred_at) for e in views} == {
        (users["caseworker"].id, case.jurisdiction_id, clock.now())
    }


def test_a_view_outside_the_jurisdiction_is_not_a_view(client, login, case_factory, tree):
    case = case_factory(node=tree["b"])
    login("caseworker")  # community a
    assert client.get(f"/cases/{case.id}").status_code == 404
    assert access_events(case.id) == []


def test_downloads_and_revealed_id_numbers_are_in_the_access_log(client, login, users, case_factory):
    case = case_factory()
    login("caseworker")
    client.post(
        f"/cases/{case.id}/documents",
        data={"upload-document": (BytesIO(PNG), "尿检.png")},
        content_type="multipart/form-data",
    )
    document = db.session.scalars(select(Document).where(Document.case_id == case.id)).one()
    assert client.get(f"/cases/{case.id}/documents/{document.id}").status_code == 200
    login("police")
    assert client.get(f"/cases/{case.id}?full_id=1").status_code == 200
    with transaction():  # as the KPI export writes it
        record("export_downloaded", actor_id=users["supervisor"].id, case_id=case.id, payload={"format": "csv"})

    assert [(e.type, e.actor_id) for e in access_events(case.id)] == [
        ("document_downloaded", users["caseworker"].id),
        ("id_number_revealed", users["police"].id),
        ("case_viewed", users["police"].id),
        ("export_downloaded", users["supervisor"].id),
    ]
    login("supervisor")
    html = client.get(f"/audit/cases/{case.id}/access").get_data(as_text=True)
    for label in ("Document downloaded", "Full ID number shown", "Case page viewed", "Export downloaded"):
        assert label in html
    assert f"document {document.id}" in html


def test_supervisor_sees_who_looked_at_a_case(client, login, users, case_factory):
    case = case_factory()
    for who in ("caseworker", "caseworker", "police"):
        login(who)
        client.get(f"/cases/{case.id}")
    login("supervisor")
    response = client.get(f"/audit/cases/{case.id}/access")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    people = html[html.index('id="access-people"') : html.index('id="access-log"')]
    assert people.index("(police)") < people.index("(caseworker)")  # the latest first
    assert "<td>2</td>" in people and "<td>1</td>" in people
    assert html.count('data-type="case_viewed"') == 3
    assert "Who looked at case" in html


def test_access_log_link_on_the_case_page_for_supervisors_only(client, login, case_factory):
    case = case_factory()
    login("caseworker")
    assert 'id="access-log-link"' not in client.get(f"/cases/{case.id}").get_data(as_text=True)
    login("supervisor")
    html = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert f'href="/audit/cases/{case.id}/access"' in html


def test_access_log_is_for_supervisors_only(client, login, case_factory):
    case = case_factory()
    for who in ("caseworker", "police", "admin", "designer"):
        login(who)
        assert client.get(f"/audit/cases/{case.id}/access").status_code == 404, who


def test_access_log_needs_sign_in(client, case_factory):
    case = case_factory()
    response = client.get(f"/audit/cases/{case.id}/access")
    assert response.status_code in (302, 401)


def test_supervisor_of_another_district_sees_nothing(client, login, case_factory, district_b):
    ours = case_factory()
    theirs = case_factory(node=district_b["community"])
    login("supervisor")
    assert client.get(f"/audit/cases/{theirs.id}/access").status_code == 404
    assert client.get(f"/audit/cases/{ours.id}/access").status_code == 200
    assert client.get("/audit/cases/999999/access").status_code == 404
    login("supervisor_b")
    assert client.get(f"/audit/cases/{ours.id}/access").status_code == 404
    assert client.get(f"/audit/cases/{theirs.id}/access").status_code == 200


def test_access_log_pages(client, login, users, case_factory):
    case = case_factory()
    with transaction():
        for _ in range(55):
            record("case_viewed", actor_id=users["caseworker"].id, case_id=case.id)
    login("supervisor")
    first = client.get(f"/audit/cases/{case.id}/access").get_data(as_text=True)
    second = client.get(f"/audit/cases/{case.id}/access?page=2").get_data(as_text=True)
    assert first.count('data-type="case_viewed"') == 50 and second.count('data-type="case_viewed"') == 5
    assert client.get(f"/audit/cases/{case.id}/access?page=-3").status_code == 200
