"""The task inbox: views and counts, scoping, claim races, task forms, drafts, bulk actions, saved filters."""

import io
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from app import engine
from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.operations import create_user
from app.cases.models import Case, Document
from app.core.db import transaction
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db
from app.inbox import operations
from app.inbox.models import SavedFilter, TaskDraft
from app.inbox.queries import InboxFilter, inbox_page, view_counts
from tests.conftest import PASSWORD

FIXTURE = Path(__file__).parent / "fixtures" / "all_fields.bpmn"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def flow(app, users, tree, case_factory):
    """The all-field-types process started for one case in community a and one in community b."""
    with transaction():
        engine.deploy([engine.SourceFile.from_path(FIXTURE)])
    cases = {"a": case_factory("张伟", tree["a"]), "b": case_factory("李娜", tree["b"])}
    with transaction():
        for case in cases.values():
            engine.start_process("all_fields", case_id=case.id, jurisdiction_id=case.jurisdiction_id)
    items = {
        key: db.session.scalars(select(WorkItem).where(WorkItem.case_id == case.id)).one()
        for key, case in cases.items()
    }
    return {"cases": cases, "items": items}


def _text(response) -> str:
    return response.get_data(as_text=True)


def _valid_form(**changes) -> dict:
    data = {
        "place": "社区服务站",
        "notes": "",
        "panels": "5",
        "level": "0.5",
        "tested_on": "2026-03-02",
        "collected_at": "2026-03-02T09:30",
        "positive": "",
        "method": "urine",
        "photo": (io.BytesIO(PNG), "photo.png"),
        "action": "submit",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_claimable_view_lists_only_work_in_my_jurisdiction_with_masked_id_and_legal_countdown(flow, login, client):
    login("caseworker")
    page = _text(client.get("/inbox/?view=claimable"))
    assert "张伟" in page and "李娜" not in page
    assert "**************0001" in page and "44040019900101" not in page  # ID masked except the last 4
    assert "条例19" in page and re.search(r"(3 days left|剩余3天)", page)
    assert 'id="count-claimable">1<' in page


def test_view_counts_and_overdue_move_with_the_clock(flow, users, clock):
    caseworker = users["caseworker"]
    assert view_counts(caseworker)["claimable"] == 1 and view_counts(caseworker)["overdue"] == 0
    assert view_counts(caseworker)["week"] == 1
    clock.advance(days=4)
    counts = view_counts(caseworker)
    assert counts["overdue"] == 1 and counts["week"] == 0
    supervisor = users["supervisor"]
    assert view_counts(supervisor)["overdue"] == 2 and view_counts(supervisor)["team"] == 2


def test_filters_search_and_paging(flow, users, case_factory, tree):
    supervisor = users["supervisor"]
    assert [r.person_name for r in inbox_page(supervisor, InboxFilter(view="team", q="张")).rows] == ["张伟"]
    assert inbox_page(supervisor, InboxFilter(view="team", q="0002")).rows[0].person_name == "李娜"
    assert inbox_page(supervisor, InboxFilter(view="team", node=tree["b"].id)).total == 1
    assert inbox_page(supervisor, InboxFilter(view="team", tier="red")).total == 0
    with transaction():
        db.session.get(Case, flow["cases"]["b"].id).tier = "red"
    assert inbox_page(supervisor, InboxFilter(view="team", tier="red")).rows[0].person_name == "李娜"
    one_per_page = inbox_page(supervisor, InboxFilter(view="team", sort="person", page=2), page_size=1)
    assert one_per_page.total == 2 and one_per_page.pages == 2 and one_per_page.page == 2


@pytest.mark.parametrize("method,url", [
    ("get", "/inbox/tasks/{id}"),
    ("post", "/inbox/tasks/{id}"),
    ("post", "/inbox/tasks/{id}/claim"),
    ("post", "/inbox/tasks/{id}/unclaim"),
    ("get", "/inbox/tasks/{id}/reassign"),
    ("post", "/inbox/tasks/{id}/reassign"),
])
def test_another_communitys_task_answers_404(flow, login, client, method, url):
    login("caseworker2")
    response = getattr(client, method)(url.format(id=flow["items"]["a"].id), data={"action": "draft"})
    assert response.status_code == 404
    assert db.session.get(WorkItem, flow["items"]["a"].id).assignee_id is None


def test_every_inbox_route_is_covered_by_the_scoping_test(app):
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("inbox.")}
    assert routes == {
        "/inbox/",
        "/inbox/assignees",
        "/inbox/tasks/<int:item_id>",
        "/inbox/tasks/<int:item_id>/claim",
        "/inbox/tasks/<int:item_id>/unclaim",
        "/inbox/tasks/<int:item_id>/reassign",
        "/inbox/bulk",
        "/inbox/filters",
        "/inbox/filters/<int:filter_id>",
        "/inbox/filters/<int:filter_id>/delete",
    }  # a new route must be added to the 404 tests above (assignees, bulk and filters are tested below)


def test_bulk_and_saved_filters_do_not_reach_outside_the_users_scope(flow, login, client, users):
    login("supervisor")
    with transaction():
        other = create_user("sup_b", PASSWORD, ["supervisor"], flow["cases"]["b"].jurisdiction, "Supervisor B")
    login("sup_b")
    client.post("/inbox/bulk", data={"ids": [flow["items"]["a"].id], "action": "claim"})
    assert db.session.get(WorkItem, flow["items"]["a"].id).assignee_id is None
    with transaction():
        at = flow["items"]["a"].created_at
        mine = SavedFilter(owner_id=users["caseworker"].id, name="x", params={}, created_at=at)
        db.session.add(mine)
    assert client.post(f"/inbox/filters/{mine.id}/delete").status_code == 404
    login("caseworker")
    assert client.post("/inbox/bulk", data={"ids": [flow["items"]["a"].id], "action": "claim"}).status_code == 404
    assert other.id


def test_claim_then_a_second_claimer_is_told_who_has_it(flow, login, client, users):
    item = flow["items"]["a"]
    login("caseworker")
    client.post(f"/inbox/tasks/{item.id}/claim")
    assert db.session.get(WorkItem, item.id).assignee_id == users["caseworker"].id
    with transaction():
        create_user("caseworker3", PASSWORD, ["caseworker"], flow["cases"]["a"].jurisdiction, "王芳")
    login("caseworker3")
    page = _text(client.post(f"/inbox/tasks/{item.id}/claim", follow_redirects=True))
    assert "caseworker has already claimed this task" in page or "caseworker 已认领" in page
    assert db.session.get(WorkItem, item.id).assignee_id == users["caseworker"].id


def test_claim_race_between_two_threads_has_exactly_one_winner(app, flow, users):
    item_id = flow["items"]["a"].id
    with transaction():
        rival = create_user("caseworker3", PASSWORD, ["caseworker"], flow["cases"]["a"].jurisdiction, "王芳")
    claimers = [users["caseworker"].id, rival.id]
    db.session.commit()
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def attempt(user_id: int):
        with app.app_context(), app.test_request_context():
            from app.auth.models import User

            user = db.session.get(User, user_id)
            item = db.session.get(WorkItem, item_id)
            db.session.commit()  # an open SQLite transaction holds the write lock: start level
            barrier.wait()
            try:
                with transaction():
                    operations.claim(item, user)
                outcomes[user_id] = "won"
            except operations.InboxError as exc:
                outcomes[user_id] = str(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(uid,)) for uid in claimers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values(), key=lambda v: v != "won")[0] == "won"
    assert list(outcomes.values()).count("won") == 1
    loser_message = next(v for v in outcomes.values() if v != "won")
    assert "caseworker" in loser_message or "王芳" in loser_message
    assert "already claimed" in loser_message or "已认领" in loser_message
    db.session.expire_all()
    winner = next(uid for uid, v in outcomes.items() if v == "won")
    assert db.session.get(WorkItem, item_id).assignee_id == winner
    assert len(db.session.scalars(select(AuditEvent).where(AuditEvent.type == "task_claimed")).all()) == 1


def test_form_with_an_error_keeps_what_was_typed_then_submits_and_opens_the_next_task(flow, login, client, users):
    item = flow["items"]["a"]
    login("caseworker")
    response = client.post(f"/inbox/tasks/{item.id}", data=_valid_form(place="", panels="40", notes="尿检阴性"),
                           content_type="multipart/form-data")
    page = _text(response)
    assert response.status_code == 422
    assert "尿检阴性" in page and 'value="5"' not in page and 'value="40"' in page  # typed values kept
    assert page.count("invalid-feedback") >= 2  # place required, panels out of range: next to each field
    assert db.session.get(WorkItem, item.id).status == WorkItemStatus.OPEN
    kept = db.session.scalars(select(Document).where(Document.work_item_id == item.id)).one()  # upload kept
    assert f'value="{kept.id}"' in page

    response = client.post(f"/inbox/tasks/{item.id}", data=_valid_form(photo=None, photo__document=str(kept.id)),
                           content_type="multipart/form-data")
    assert response.status_code == 302
    next_item = db.session.scalars(
        select(WorkItem).where(WorkItem.case_id == item.case_id, WorkItem.status == WorkItemStatus.OPEN)
    ).one()
    assert next_item.element_id == "follow_up" and response.headers["Location"].endswith(f"/inbox/tasks/{next_item.id}")
    done = db.session.get(WorkItem, item.id)
    assert done.status == WorkItemStatus.COMPLETED and done.completed_by_id == users["caseworker"].id
    completed = db.session.scalars(select(AuditEvent).where(AuditEvent.type == "task_completed")).one()
    data = completed.payload["data"]
    assert data["panels"] == 5 and data["level"] == 0.5 and data["tested_on"] == "2026-03-02"
    assert data["photo"] == f"document:{kept.id}" and data["method"] == "urine" and data["positive"] is False
    assert data["collected_at"].startswith("2026-03-02T09:30") and data["notes"] is None


def test_a_refused_upload_is_named_next_to_its_field(flow, login, client):
    item = flow["items"]["a"]
    login("caseworker")
    response = client.post(f"/inbox/tasks/{item.id}", data=_valid_form(photo=(io.BytesIO(b"MZ\x90\x00"), "x.png")),
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Only JPEG, PNG or WebP photos and PDF documents" in _text(response) or "仅接受" in _text(response)
    assert db.session.scalars(select(Document)).all() == []


def test_double_submit_completes_once_and_tells_the_second_post(flow, login, client):
    item = flow["items"]["a"]
    login("caseworker")
    first = client.post(f"/inbox/tasks/{item.id}", data=_valid_form(), content_type="multipart/form-data")
    second = client.post(f"/inbox/tasks/{item.id}", data=_valid_form(), content_type="multipart/form-data",
                         follow_redirects=True)
    assert first.status_code == 302 and second.status_code == 200
    assert len(db.session.scalars(select(AuditEvent).where(AuditEvent.type == "task_completed")).all()) == 1


def test_draft_is_saved_and_resumed_and_removed_on_completion(flow, login, client):
    item = flow["items"]["a"]
    login("caseworker")
    client.post(f"/inbox/tasks/{item.id}", data={"place": "家中", "notes": "草稿内容", "action": "draft"})
    assert db.session.scalars(select(TaskDraft)).one().data["notes"] == "草稿内容"
    assert db.session.get(WorkItem, item.id).status == WorkItemStatus.OPEN
    page = _text(client.get(f"/inbox/tasks/{item.id}"))
    assert "草稿内容" in page and 'value="家中"' in page
    client.post(f"/inbox/tasks/{item.id}", data=_valid_form(), content_type="multipart/form-data")
    assert db.session.scalars(select(TaskDraft)).all() == []


def test_someone_elses_task_is_read_only(flow, login, client, users):
    item = flow["items"]["a"]
    with transaction():
        create_user("caseworker3", PASSWORD, ["caseworker"], flow["cases"]["a"].jurisdiction, "王芳")
    login("caseworker3")
    client.post(f"/inbox/tasks/{item.id}/claim")
    login("caseworker")
    page = _text(client.get(f"/inbox/tasks/{item.id}"))
    assert "王芳" in page and 'id="task-form"' not in page
    client.post(f"/inbox/tasks/{item.id}", data=_valid_form(), content_type="multipart/form-data")
    assert db.session.get(WorkItem, item.id).status == WorkItemStatus.OPEN


def test_unclaim_and_reassign_with_reason(flow, login, client, users):
    item = flow["items"]["a"]
    login("caseworker")
    client.post(f"/inbox/tasks/{item.id}/claim")
    client.post(f"/inbox/tasks/{item.id}/unclaim")
    assert db.session.get(WorkItem, item.id).assignee_id is None
    login("supervisor")
    refused = client.post(f"/inbox/tasks/{item.id}/reassign", data={"assignee_id": users["caseworker"].id})
    assert refused.status_code == 200 and db.session.get(WorkItem, item.id).assignee_id is None  # no reason
    wrong = client.post(f"/inbox/tasks/{item.id}/reassign",
                        data={"assignee_id": users["caseworker2"].id, "reason": "休假"})
    assert "cannot take this task" in _text(wrong) or "不能" in _text(wrong)
    ok = client.post(f"/inbox/tasks/{item.id}/reassign", data={"assignee_id": users["caseworker"].id, "reason": "休假"})
    assert ok.status_code == 302 and db.session.get(WorkItem, item.id).assignee_id == users["caseworker"].id
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.type == "task_reassigned")).one()
    assert event.payload["reason"] == "休假" and event.actor_id == users["supervisor"].id


def test_supervisor_bulk_reassigns_and_each_item_succeeds_or_fails_on_its_own(flow, login, client, users):
    login("supervisor")
    ids = [flow["items"]["a"].id, flow["items"]["b"].id]
    page = _text(client.post("/inbox/bulk", data={"ids": ids, "action": "reassign", "reason": "调整分工",
                                                 "assignee_id": users["caseworker"].id}, follow_redirects=True))
    assert db.session.get(WorkItem, ids[0]).assignee_id == users["caseworker"].id
    assert db.session.get(WorkItem, ids[1]).assignee_id is None  # community b is not the caseworker's
    assert f"Task {ids[1]}" in page or f"任务 {ids[1]}" in page


def test_the_bulk_bar_fetches_the_people_in_the_supervisors_area_only_when_asked(flow, login, client, users):
    """The inbox page carries a button, not the list: GET /inbox/assignees fills it in (htmx) when it is used."""
    login("supervisor")
    page = _text(client.get("/inbox/?view=team"))
    assert 'hx-get="/inbox/assignees"' in page and 'id="bulk-choose"' in page
    assert 'id="bulk-assignee"' not in page and 'id="bulk-reason"' not in page

    fields = _text(client.get("/inbox/assignees", headers={"HX-Request": "true"}))
    assert 'id="bulk-assignee"' in fields and "autofocus" in fields  # the focus moves to the list when it arrives
    assert 'id="bulk-reason"' in fields and 'value="reassign"' in fields
    offered = set(re.findall(r'<option value="(\d+)"', fields))
    field_people = {"caseworker", "caseworker2", "police", "cadre", "medical"}
    assert offered == {str(users[name].id) for name in field_people}  # no supervisor, designer or admin

    with transaction():
        create_user("sup_b", PASSWORD, ["supervisor"], flow["cases"]["b"].jurisdiction, "Supervisor B")
        db.session.get(User, users["caseworker2"].id).active = False
    login("sup_b")
    assert re.findall(r'<option value="(\d+)"', _text(client.get("/inbox/assignees"))) == []  # b: caseworker2 left
    login("caseworker")
    assert client.get("/inbox/assignees").status_code == 404


def test_bulk_is_for_supervisors_only(flow, login, client):
    login("caseworker")
    assert client.post("/inbox/bulk", data={"ids": [flow["items"]["a"].id], "action": "claim"}).status_code == 404


def test_saved_filter_shared_with_a_role(flow, login, client, users):
    login("caseworker")
    client.post("/inbox/filters", data={"name": "红色预警", "shared_role": "caseworker", "view": "overdue",
                                        "tier": "red"})
    saved = db.session.scalars(select(SavedFilter)).one()
    assert saved.params == {"view": "overdue", "tier": "red", "sort": "due"}
    login("caseworker2")
    assert "红色预警" in _text(client.get("/inbox/"))
    client.post("/inbox/filters", data={"name": "x", "shared_role": "supervisor"})
    assert len(db.session.scalars(select(SavedFilter)).all()) == 1  # cannot share with a role one lacks


def test_htmx_gets_the_results_fragment_only(flow, login, client):
    login("caseworker")
    fragment = _text(client.get("/inbox/?view=claimable", headers={"HX-Request": "true"}))
    assert "张伟" in fragment and "<html" not in fragment and 'id="filters"' not in fragment


def test_a_search_never_puts_the_name_or_id_number_into_a_url(flow, login, client):
    """domain.md §5: no personal data in URLs (browser history, access logs)."""
    login("caseworker")
    posted = client.post("/inbox/", data={"view": "claimable", "q": "张伟"})
    location = posted.headers["Location"]
    assert posted.status_code == 302 and "张伟" not in location and "%E5%BC%A0" not in location and "s=1" in location
    page = client.get(location).get_data(as_text=True)
    assert "张伟" in page and 'id="count-claimable"' in page
    assert "张伟" not in client.post("/inbox/", data={"view": "claimable", "q": "李"}, follow_redirects=True).get_data(
        as_text=True
    ).split('id="results"')[1]
    fragment = client.post("/inbox/", data={"view": "claimable", "q": "440400"}, headers={"HX-Request": "true"})
    assert "440400" not in fragment.headers["HX-Push-Url"] and "s=1" in fragment.headers["HX-Push-Url"]
    assert "张伟" in fragment.get_data(as_text=True)


def test_a_saved_filter_with_a_search_opens_without_the_term_in_the_url(flow, login, client):
    login("caseworker")
    client.post("/inbox/filters", data={"name": "张", "view": "claimable", "q": "张伟"})
    saved = db.session.scalars(select(SavedFilter)).one()
    assert saved.params["q"] == "张伟"
    client.post("/inbox/", data={"q": ""})  # forget the search
    opened = client.get(f"/inbox/filters/{saved.id}")
    assert "%E5%BC%A0" not in opened.headers["Location"]
    page = client.get(opened.headers["Location"]).get_data(as_text=True)
    assert "张伟" in page.split('id="results"')[1]
    login("caseworker2")
    assert client.get(f"/inbox/filters/{saved.id}").status_code == 404
