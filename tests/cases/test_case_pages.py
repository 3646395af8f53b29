"""Case pages: list, new case from a decision, case page, documents, stage actions; jurisdiction scoping.

The clock of the tests starts on 2026-03-02 01:00 UTC (09:00 Beijing).
"""

import re
from datetime import date
from io import BytesIO

import pytest
from sqlalchemy import func, select

from app import engine
from app.audit.models import AuditEvent
from app.cases.forms import id_number_problem
from app.cases.models import Case, CaseStatus, Document, Measure
from app.core.db import transaction
from app.engine.models import Message, ProcessInstance, WorkItem, WorkItemStatus
from app.extensions import db
from tests.workflows.conftest import WORKFLOWS

VALID_ID = "11010519491231002X"  # the GB 11643-1999 example
VALID_ID_2 = "440402199001011236"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture
def client(app):
    """English pages (the default language is Chinese), so assertions read the English source strings."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return test_client


@pytest.fixture
def workflows(app):
    with transaction():
        engine.deploy(engine.workflow_files(WORKFLOWS))


def page(response) -> str:
    return response.get_data(as_text=True)


def decision(**changes) -> dict:
    """A filled-in new-case form (社区戒毒决定书) for community a."""
    data = {
        "person_name": "王五",
        "id_number": VALID_ID_2,
        "gender": "",
        "birth_date": "",
        "decision_date": "2026-02-27",
        "decision_number": "珠公(拱)决字〔2026〕0117号",
        "decision_authority": "珠海市公安局香洲分局",
        "community_id": "",
        "measure": "community_treatment",
    }
    return data | changes


def open_items(case_id: int) -> list[str]:
    rows = db.session.scalars(
        select(WorkItem.element_id).where(WorkItem.case_id == case_id, WorkItem.status == WorkItemStatus.OPEN)
    )
    return sorted(rows)


def audit_types(case_id: int) -> list[str]:
    return list(db.session.scalars(select(AuditEvent.type).where(AuditEvent.case_id == case_id)))


def set_case(case: Case, **fields) -> Case:
    with transaction():
        case = db.session.get(Case, case.id)
        for key, value in fields.items():
            setattr(case, key, value)
    return case


# --- list ---------------------------------------------------------------------------------------------------------


def test_list_shows_only_cases_in_the_users_jurisdiction(client, login, tree, case_factory):
    mine = case_factory(name="夏湾甲", node=tree["a"])
    other = case_factory(name="茂盛乙", node=tree["b"])

    login("caseworker")
    listing = page(client.get("/cases/"))
    assert "夏湾甲" in listing and "茂盛乙" not in listing
    assert mine.id_number not in listing and "*" * 14 + mine.id_number[-4:] in listing  # masked but the last 4

    login("caseworker2")
    listing = page(client.get("/cases/"))
    assert "茂盛乙" in listing and "夏湾甲" not in listing and other.reference in listing

    login("supervisor")  # the district: both communities
    listing = page(client.get("/cases/"))
    assert "夏湾甲" in listing and "茂盛乙" in listing


def test_list_search_filters_and_pages(client, login, tree, case_factory):
    first = case_factory(name="张三", node=tree["a"])
    second = case_factory(name="李四", node=tree["a"])
    set_case(second, stage="supervision", tier="red")
    set_case(first, status=CaseStatus.SUSPENDED)
    login("caseworker")

    def names(**args) -> set[str]:
        # a search is POSTed (names stay out of URLs) and followed to the list; filters are plain GET
        response = client.post("/cases/", data=args, follow_redirects=True) if "q" in args else client.get(
            "/cases/", query_string=args
        )
        text = page(response)
        return {n for n in ("张三", "李四") if n in text}

    assert names(q="张") == {"张三"}
    assert names(q=second.reference) == {"李四"}
    assert names(q=first.id_number[-4:]) == {"张三"}
    assert names(stage="supervision") == {"李四"}
    assert names(tier="red") == {"李四"} and names(tier="none") == {"张三"}
    assert names(status="suspended") == {"张三"}
    assert names(q="%") == set()  # LIKE wildcards are searched for literally
    # Nonsense in the query string is ignored, never an error.
    for args in ({"page": "abc"}, {"page": "-3"}, {"page": "99999999999"}, {"stage": "x"}, {"q": "a\x00b"}):
        assert client.get("/cases/", query_string=args).status_code == 200
    assert client.post("/cases/", data={"q": "a\x00b"}, follow_redirects=True).status_code == 200

    fragment = client.post("/cases/", data={"q": "李"}, headers={"HX-Request": "true", "HX-Target": "case-results"})
    assert fragment.status_code == 200 and "<html" not in page(fragment) and "李四" in page(fragment)
    assert "李" not in fragment.headers["HX-Push-Url"] and "%E6%9D%8E" not in fragment.headers["HX-Push-Url"]


def test_roles_without_case_work_see_no_case_pages(client, login, case_factory):
    case = case_factory()
    for username in ("designer", "admin"):
        login(username)
        assert client.get("/cases/").status_code == 404
        assert client.get(f"/cases/{case.id}").status_code == 404
    for username in ("cadre", "medical"):  # they work on cases but do not open them
        login(username)
        assert client.get("/cases/").status_code == 200
        assert client.get("/cases/new").status_code == 404
    client.post("/auth/logout")
    assert client.get("/cases/").status_code == 302  # to the sign-in page


def test_every_case_route_answers_404_outside_the_jurisdiction(app, client, login, tree, case_factory, users):
    """条例7/PIPL: a case in community a does not exist for a caseworker of community b, whatever the route."""
    case = case_factory(node=tree["a"])
    with transaction():
        document = Document(
            case_id=case.id,
            file_name="a.png",
            content_type="image/png",
            size=len(PNG),
            sha256="0" * 64,
            content=PNG,
            uploaded_at=app.extensions["clock"].now(),
        )
        db.session.add(document)
    values = {"case_id": case.id, "document_id": document.id, "name": "violation_reported"}
    login("caseworker2")
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("cases.") or "case_id" not in rule.arguments:
            continue
        url = rule.build({k: values[k] for k in rule.arguments})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for headers in ({}, {"HX-Request": "true", "HX-Target": "timeline"}):
                response = client.open(url, method=method, headers=headers)
                assert response.status_code == 404, (rule.endpoint, method, headers)
                checked += 1
    assert checked >= 8

    # In scope, but a document of another case is not found under this one.
    other = case_factory(node=tree["b"])
    assert client.get(f"/cases/{other.id}/documents/{document.id}").status_code == 404
    assert client.get(f"/cases/{other.id}").status_code == 200
    assert client.get("/cases/99999999999999999999").status_code == 404


# --- new case -----------------------------------------------------------------------------------------------------


def test_resident_id_checksum_gb11643():
    assert id_number_problem(VALID_ID) is None and id_number_problem(VALID_ID_2) is None
    assert "check character" in id_number_problem("110105194912310021")
    assert "18 characters" in id_number_problem("11010519491231002")
    assert "17 digits" in id_number_problem("11010519491231A02X")
    assert "birth date" in id_number_problem("110105194913310027")


def test_new_case_with_a_bad_id_checksum_is_refused_and_keeps_what_was_typed(client, login, tree, workflows):
    login("caseworker")
    form = page(client.get("/cases/new"))
    assert "夏湾社区" in form and "茂盛社区" not in form  # only the user's communities

    response = client.post("/cases/new", data=decision(id_number="110105194912310021", community_id=tree["a"].id))
    text = page(response)
    assert response.status_code == 422
    assert "The check character (the last one) does not match" in text
    assert 'value="王五"' in text and 'value="110105194912310021"' in text and "珠公(拱)决字〔2026〕0117号" in text
    assert db.session.scalar(select(func.count()).select_from(Case)) == 0

    # A community outside the user's jurisdiction is not a choice either.
    response = client.post("/cases/new", data=decision(community_id=tree["b"].id))
    assert response.status_code == 422 and db.session.scalar(select(func.count()).select_from(Case)) == 0
    # Gender and birth date must agree with the ID number; a decision cannot be dated in the future.
    response = client.post(
        "/cases/new",
        data=decision(community_id=tree["a"].id, gender="female", birth_date="1990-01-02", decision_date="2026-03-03"),
    )
    text = page(response)
    assert "other gender" in text and "differs from the one in the ID number" in text and "in the future" in text


def test_new_case_community_must_be_chosen_when_there_are_several(client, login, tree, workflows):
    login("police")  # the street: two communities
    form = page(client.get("/cases/new"))
    assert "夏湾社区" in form and "茂盛社区" in form and "— choose —" in form
    response = client.post("/cases/new", data=decision(community_id=""))
    assert response.status_code == 422 and "Choose the community that executes it." in page(response)
    assert "Invalid Choice" not in page(response) and "Not a valid choice" not in page(response)
    response = client.post("/cases/new", data=decision(community_id=tree["b"].id))
    assert response.status_code == 302
    assert db.session.scalars(select(Case)).one().jurisdiction_id == tree["b"].id


def test_new_case_opens_the_file_and_starts_the_lifecycle(client, login, tree, workflows):
    """法33/条例13: the decision opens the case; the lifecycle starts intake with the decision to deliver."""
    login("caseworker")
    response = client.post("/cases/new", data=decision(community_id=tree["a"].id, unified_intake="y"))
    assert response.status_code == 302
    case = db.session.scalars(select(Case)).one()
    assert response.headers["Location"].endswith(f"/cases/{case.id}")
    assert (case.person_name, case.id_number, case.jurisdiction_id) == ("王五", VALID_ID_2, tree["a"].id)
    assert case.gender == "male" and case.birth_date == date(1990, 1, 1) and case.decision_date == date(2026, 2, 27)
    assert case.measure == Measure.COMMUNITY_TREATMENT and case.stage == "intake"
    assert case.facts["decision_no"] == "珠公(拱)决字〔2026〕0117号"
    assert case.facts["decision_authority"] == "珠海市公安局香洲分局"
    assert open_items(case.id) == ["deliver_decision"]
    keys = set(db.session.scalars(select(ProcessInstance.process_key).where(ProcessInstance.case_id == case.id)))
    assert keys == {"case", "intake"}
    [message] = db.session.scalars(
        select(Message).where(Message.case_id == case.id, Message.name == "intake_requested")
    )
    assert message.event["payload"]["payload"] == {"unified": True}  # Guiyang unified intake

    # The same person cannot get a second open case.
    again = client.post("/cases/new", data=decision(community_id=tree["a"].id, id_number=VALID_ID_2.lower()))
    assert again.status_code == 422 and "already has an open case" in page(again)


# --- the case page ------------------------------------------------------------------------------------------------


def test_case_page_shows_masked_id_stage_open_work_and_timeline(client, login, tree, workflows):
    login("caseworker")
    client.post("/cases/new", data=decision(community_id=tree["a"].id))
    case = db.session.scalars(select(Case)).one()

    text = page(client.get(f"/cases/{case.id}"))
    assert "**************1236" in text and VALID_ID_2 not in text
    assert "Intake" in text and "Not tiered" in text and "Open" in text
    assert "Deliver decision" in text and "3 days left · 条例13" in text
    assert "Case created" in text and "Task opened" in text and "Stage changed" in text
    assert "珠公(拱)决字〔2026〕0117号" in text
    assert 'id="action-violation_reported"' not in text  # not in intake

    # The whole number on request, for the roles that need it, and the request is logged.
    revealed = page(client.get(f"/cases/{case.id}", query_string={"full_id": "1"}))
    assert VALID_ID_2 in revealed and "id_number_revealed" in audit_types(case.id)
    login("cadre")
    assert VALID_ID_2 not in page(client.get(f"/cases/{case.id}", query_string={"full_id": "1"}))

    # The timeline filter answers htmx with the fragment only.
    fragment = client.get(
        f"/cases/{case.id}",
        query_string={"event": "task_created"},
        headers={"HX-Request": "true", "HX-Target": "timeline"},
    )
    text = page(fragment)
    assert fragment.status_code == 200 and "<html" not in text
    assert "Task opened" in text and "Case created</strong>" not in text
    assert "Deliver decision" in text
    full = page(client.get(f"/cases/{case.id}", query_string={"event": "task_created", "tpage": "x"}))
    assert "<html" in full and "Case created</strong>" not in full


def test_term_clock_pauses_while_suspended(client, login, tree, case_factory, clock, workflows):
    """条例14: counted from the report day; 条例24: 中止 pauses the clock and the days are added to the term."""
    case = case_factory(node=tree["a"])
    set_case(case, term_started_on=date(2026, 3, 2), stage="supervision")
    with transaction():
        engine.send_message(case.id, case.jurisdiction_id, "term_started", {"years": 3})
    login("police")

    clock.advance(days=30)  # 2026-04-01 in Beijing
    text = page(client.get(f"/cases/{case.id}"))
    assert re.search(r'id="days-served">30<', text) and "2029-03-02" in text
    remaining = (date(2029, 3, 3) - date(2026, 4, 1)).days
    assert f'id="days-remaining">{remaining}<' in text
    assert 'id="action-case_suspended"' in text and 'id="action-case_resumed"' not in text

    response = client.post(f"/cases/{case.id}/actions/case_suspended", data={"case_suspended-reason": "detained"})
    assert response.status_code == 302
    assert db.session.get(Case, case.id).status == CaseStatus.SUSPENDED

    clock.advance(days=10)
    text = page(client.get(f"/cases/{case.id}"))
    assert 'id="days-served">30<' in text and 'id="days-paused">10<' in text
    assert f'id="days-remaining">{remaining}<' in text and "Suspended (中止) since 2026-04-01" in text
    assert 'id="action-case_resumed"' in text and 'id="action-case_suspended"' not in text

    assert client.post(f"/cases/{case.id}/actions/case_resumed", data={}).status_code == 302
    db.session.expire_all()
    text = page(client.get(f"/cases/{case.id}"))
    assert db.session.get(Case, case.id).status == CaseStatus.OPEN
    assert 'id="days-served">30<' in text and 'id="days-paused">10<' in text
    assert f'id="days-remaining">{remaining}<' in text and "2029-03-12" in text


# --- documents ----------------------------------------------------------------------------------------------------


def test_png_upload_and_download_with_audit(client, login, case_factory):
    case = case_factory()
    login("caseworker")
    response = client.post(
        f"/cases/{case.id}/documents",
        data={"upload-document": (BytesIO(PNG), "../尿检 photo.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    document = db.session.scalars(select(Document).where(Document.case_id == case.id)).one()
    assert document.content_type == "image/png" and "/" not in document.file_name

    assert document.file_name in page(client.get(f"/cases/{case.id}"))
    download = client.get(f"/cases/{case.id}/documents/{document.id}")
    assert download.status_code == 200 and download.data == PNG
    assert download.headers["Content-Type"] == "image/png"
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    [event] = db.session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.type == "document_downloaded")
    )
    assert event.payload == {"document_id": document.id} and event.actor_id is not None
    assert client.get(f"/cases/{case.id}/documents/{document.id + 1}").status_code == 404


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00" + bytes(64), "Only JPEG, PNG or WebP photos and PDF documents"),
        ("notes.txt", "尿检阴性 negative".encode(), "Only JPEG, PNG or WebP photos and PDF documents"),
        ("fake.png", b"<script>alert(1)</script>", "Only JPEG, PNG or WebP photos and PDF documents"),
        ("empty.pdf", b"", "The file is empty."),
    ],
)
def test_upload_of_other_types_is_refused(client, login, case_factory, name, content, message):
    case = case_factory()
    login("caseworker")
    response = client.post(
        f"/cases/{case.id}/documents",
        data={"upload-document": (BytesIO(content), name)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and message in page(response)
    assert db.session.scalar(select(func.count()).select_from(Document)) == 0


def test_upload_without_a_file_is_refused(client, login, case_factory):
    case = case_factory()
    login("caseworker")
    response = client.post(f"/cases/{case.id}/documents", data={}, content_type="multipart/form-data")
    assert response.status_code == 422 and "Choose a file." in page(response)


# --- stage actions ------------------------------------------------------------------------------------------------


def test_art20_violation_reported_from_the_case_page_starts_violation_handling(client, login, case_factory, workflows):
    """条例20: a refused test reported from the case page is counted and leads to a warning talk."""
    case = set_case(case_factory(), stage="supervision")
    login("cadre")
    assert 'id="action-violation_reported"' not in page(client.get(f"/cases/{case.id}"))
    assert client.post(f"/cases/{case.id}/actions/violation_reported", data={}).status_code == 404

    login("caseworker")
    assert 'id="action-violation_reported"' in page(client.get(f"/cases/{case.id}"))
    refused = client.post(
        f"/cases/{case.id}/actions/violation_reported",
        data={"violation_reported-violation_kind": "absence", "violation_reported-evidence": "离开县境"},
    )
    assert refused.status_code == 422 and "Enter how many days the person was away." in page(refused)
    assert 'value="离开县境"' not in page(refused) and "离开县境" in page(refused)  # textarea keeps it

    response = client.post(
        f"/cases/{case.id}/actions/violation_reported",
        data={
            "violation_reported-violation_kind": "refusal",
            "violation_reported-evidence": "拒绝尿检 refused the test",
        },
    )
    assert response.status_code == 302
    [instance] = db.session.scalars(
        select(ProcessInstance).where(ProcessInstance.case_id == case.id, ProcessInstance.process_key == "violation")
    )
    assert instance.started_by_id is not None
    assert open_items(case.id) == ["warning_talk"]
    assert db.session.get(Case, case.id).refusal_count == 1
    [event] = db.session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.type == "violation_recorded")
    )
    assert event.payload["evidence"] == "拒绝尿检 refused the test"


def test_actions_follow_stage_and_status(client, login, case_factory, workflows):
    case = case_factory()  # stage "decision"
    login("caseworker")
    text = page(client.get(f"/cases/{case.id}"))
    assert 'id="action-violation_reported"' not in text and 'id="action-transfer_requested"' not in text
    response = client.post(
        f"/cases/{case.id}/actions/violation_reported",
        data={"violation_reported-violation_kind": "refusal", "violation_reported-evidence": "x"},
    )
    assert response.status_code == 302 and open_items(case.id) == []
    assert client.post(f"/cases/{case.id}/actions/no_such_message", data={}).status_code == 404
    # 中止 needs a running term clock (closure.bpmn waits for it): not offered to the police before.
    login("police")
    assert 'id="action-case_suspended"' not in page(client.get(f"/cases/{case.id}"))
    assert client.post(f"/cases/{case.id}/actions/case_suspended", data={}).status_code == 302
    assert db.session.get(Case, case.id).status == CaseStatus.OPEN


def test_tiaoli22_transfer_requested_from_the_case_page(client, login, tree, case_factory, workflows):
    """条例22: the change of execution place starts transfer.bpmn with the file to forward."""
    case = set_case(case_factory(node=tree["a"]), stage="supervision", term_started_on=date(2026, 1, 10))
    login("caseworker")
    text = page(client.get(f"/cases/{case.id}"))
    assert 'id="action-transfer_requested"' in text and f'<option value="{tree["b"].id}">茂盛社区</option>' in text
    assert f'<option value="{tree["a"].id}">' not in text

    bad = client.post(f"/cases/{case.id}/actions/transfer_requested", data={"transfer_requested-new_community_id": "x"})
    assert bad.status_code == 422
    street = client.post(
        f"/cases/{case.id}/actions/transfer_requested", data={"transfer_requested-new_community_id": tree["street"].id}
    )
    assert street.status_code == 422 and "Not a valid choice" in page(street)

    response = client.post(
        f"/cases/{case.id}/actions/transfer_requested", data={"transfer_requested-new_community_id": tree["b"].id}
    )
    assert response.status_code == 302
    assert open_items(case.id) == ["forward_file"]
    assert 'id="action-transfer_requested"' not in page(client.get(f"/cases/{case.id}"))  # one transfer at a time


def test_employment_requested_once_at_a_time(client, login, case_factory, workflows):
    case = set_case(case_factory(), stage="supervision")
    login("cadre")
    assert 'id="action-employment_requested"' in page(client.get(f"/cases/{case.id}"))
    assert client.post(f"/cases/{case.id}/actions/employment_requested", data={}).status_code == 302
    assert "assess_needs" in open_items(case.id)
    assert 'id="action-employment_requested"' not in page(client.get(f"/cases/{case.id}"))
    assert client.post(f"/cases/{case.id}/actions/employment_requested", data={}).status_code == 302
    count = select(func.count()).where(ProcessInstance.case_id == case.id, ProcessInstance.process_key == "employment")
    assert db.session.scalar(count) == 1


def test_tiaoli24_termination_closes_the_case(client, login, tree, case_factory, workflows):
    case = set_case(case_factory(), stage="supervision", term_started_on=date(2026, 3, 2))
    with transaction():
        engine.send_message(case.id, case.jurisdiction_id, "term_started", {"years": 3})
    login("police")
    response = client.post(
        f"/cases/{case.id}/actions/case_terminated", data={"case_terminated-reason": "prison_sentence"}
    )
    assert response.status_code == 302
    case = db.session.get(Case, case.id)
    assert case.status == CaseStatus.CLOSED and case.close_reason == "terminated"
    text = page(client.get(f"/cases/{case.id}"))
    assert "The case is closed." in text and 'id="action-case_terminated"' not in text
    assert case.facts["termination"]["reason"] == "prison_sentence"


def test_new_case_without_the_case_workflow_saves_nothing(client, login, tree):
    login("caseworker")
    response = client.post("/cases/new", data=decision(community_id=tree["a"].id))
    assert response.status_code == 409 and "the case workflow is not available" in page(response)
    assert 'value="王五"' in page(response)
    assert db.session.scalar(select(func.count()).select_from(Case)) == 0


def test_bad_input_never_500s(client, login, tree, case_factory):
    case = case_factory()
    login("caseworker")
    for args in ({"full_id": "yes"}, {"event": "x" * 500}, {"tpage": "-1"}, {"tpage": "1e9"}, {"event": "\x00"}):
        assert client.get(f"/cases/{case.id}", query_string=args).status_code == 200
    garbage = decision(
        community_id="abc",
        decision_date="2026-02-30",
        birth_date="99999-01-01",
        measure="x",
        gender="z",
        person_name="\x00" * 3,
        id_number="\x00",
    )
    assert client.post("/cases/new", data=garbage).status_code == 422
    bad_action = {"violation_reported-violation_kind": "nope", "violation_reported-absence_days": "1e99"}
    set_case(case, stage="supervision")
    assert client.post(f"/cases/{case.id}/actions/violation_reported", data=bad_action).status_code == 422
    assert client.post(f"/cases/{case.id}/documents", data={"upload-document": "not a file"}).status_code == 422


def test_timeline_filters_by_actor_and_leaves_views_to_the_access_log(client, login, tree, workflows, users):
    login("caseworker")
    client.post("/cases/new", data=decision(community_id=tree["a"].id))
    case = db.session.scalars(select(Case)).one()
    login("police")
    client.get(f"/cases/{case.id}")  # a view: recorded, but not a step of the case
    assert "case_viewed" in audit_types(case.id)
    def timeline(actor) -> str:
        return page(client.get(f"/cases/{case.id}", query_string={"actor": actor},
                               headers={"HX-Request": "true", "HX-Target": "timeline"}))

    assert "<strong>Case created</strong>" in timeline(users["caseworker"].id)
    assert "<strong>" not in timeline(users["police"].id)  # the police officer only looked
    everyone = page(client.get(f"/cases/{case.id}", headers={"HX-Request": "true", "HX-Target": "timeline"}))
    assert "Task opened" in everyone and "case_viewed" not in everyone and "Case viewed" not in everyone
    assert f'<option value="{users["caseworker"].id}"' in everyone
