"""The inbox in a real browser: claim and complete with an inline error, jurisdiction 404s, supervisor bulk
reassignment, the language switch, tablet width and the Content Security Policy (checked after every test)."""

import re
from dataclasses import dataclass

import pytest
from flask_babel import force_locale, gettext
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import JurisdictionNode, User
from app.cases.models import Case
from app.engine.models import WorkItem, WorkItemStatus
from tests.browser import read, sign_in, sign_out

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@dataclass(frozen=True)
class Demo:
    case_id: int
    item_id: int
    community: str


def demo_cases() -> dict[str, Demo]:
    """The seeded cases by person: their open 'deliver_decision' item and community."""
    rows = read(lambda session: session.execute(
        select(Case.person_name, Case.id, WorkItem.id, JurisdictionNode.name)
        .join(WorkItem, WorkItem.case_id == Case.id)
        .join(JurisdictionNode, JurisdictionNode.id == Case.jurisdiction_id)
        .where(WorkItem.element_id == "deliver_decision", WorkItem.status == WorkItemStatus.OPEN)
    ).all())
    return {name: Demo(case_id, item_id, community) for name, case_id, item_id, community in rows}


def item(item_id: int) -> dict:
    """A work item's state as the database has it now."""
    row = read(lambda session: session.execute(
        select(WorkItem.case_id, WorkItem.status, WorkItem.assignee_id, WorkItem.completed_by_id)
        .where(WorkItem.id == item_id)
    ).one())
    return row._asdict()


def user(username: str) -> dict:
    return read(lambda session: session.execute(
        select(User.id, User.locale).where(User.username == username)
    ).one())._asdict()


def audit(event_type: str) -> list[dict]:
    return read(lambda session: [
        {"actor_id": e.actor_id, "payload": e.payload}
        for e in session.scalars(select(AuditEvent).where(AuditEvent.type == event_type).order_by(AuditEvent.id))
    ])


def translated(app, message: str, locale: str) -> str:
    """What the interface shows for ``message`` in ``locale`` (whatever the catalogue holds today)."""
    with app.test_request_context(), force_locale(locale):
        return gettext(message)


def xiawan(cases: dict[str, Demo]) -> list[Demo]:
    return [c for name, c in sorted(cases.items()) if c.community == "夏湾社区"]


def test_caseworker_claims_a_task_fixes_an_inline_error_and_lands_on_the_next_task(page):
    cases = demo_cases()
    item_id = cases["张伟"].item_id
    sign_in(page, "caseworker")

    page.locator("a[role=tab]:has(#count-claimable)").click()  # "To claim" / "待认领"
    page.wait_for_url(re.compile(r"view=claimable"))
    row = page.locator(f"#item-{item_id}")
    expect(row).to_contain_text("张伟")
    expect(page.locator("#results tbody tr")).to_have_count(2)  # both 夏湾 cases, not 茂盛's 王强
    row.locator("button[formaction$='/claim']").click()
    expect(page.locator("#flashes .alert-success")).to_be_visible()
    expect(row).to_have_count(0)  # claimed: no longer in the pool
    caseworker = user("caseworker")["id"]
    assert item(item_id)["assignee_id"] == caseworker

    page.locator("a[role=tab]:has(#count-mine)").click()
    page.locator(f"#item-{item_id} a.btn-primary").click()  # "Open"
    page.wait_for_url(f"**/inbox/tasks/{item_id}")

    # One error: the required delivery date is left empty; the other value typed is kept.
    page.locator("#street_notified").check()
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator("#task-form button[name=action][value=submit]").click()
    assert answer.value.status == 422
    date = page.locator("#delivered_on")
    expect(date).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(date).to_have_attribute("aria-invalid", "true")
    feedback = page.locator("#delivered_on-feedback")
    expect(feedback).to_be_visible()
    field_box, feedback_box = date.bounding_box(), feedback.bounding_box()
    assert 0 <= feedback_box["y"] - (field_box["y"] + field_box["height"]) < 30  # right under the field
    expect(page.locator("#form-errors")).to_be_visible()
    expect(page.locator("#street_notified")).to_be_checked()
    assert item(item_id)["status"] == WorkItemStatus.OPEN

    date.fill("2026-03-02")
    page.locator("#task-form button[name=action][value=submit]").click()
    page.wait_for_url(lambda url: re.search(r"/inbox/tasks/(\d+)$", url) is not None and
                      not url.endswith(f"/inbox/tasks/{item_id}"))
    expect(page.locator("h1")).to_contain_text(re.compile("报到|Person reports"))
    expect(page.locator("#flashes .alert-success")).to_contain_text("张伟")
    next_id = int(page.url.rsplit("/", 1)[1])
    following = item(next_id)
    assert following["case_id"] == cases["张伟"].case_id and following["status"] == WorkItemStatus.OPEN

    done = item(item_id)
    assert done["status"] == WorkItemStatus.COMPLETED and done["completed_by_id"] == caseworker
    (completed,) = audit("task_completed")
    assert completed["payload"]["data"]["delivered_on"] == "2026-03-02"
    assert completed["payload"]["data"]["street_notified"] is True  # the tick survived the rejected submit


def test_another_communitys_caseworker_gets_404_for_the_case_and_its_task(app, pages):
    target = demo_cases()["张伟"]
    assert target.community == "夏湾社区"
    other = pages.new()
    sign_in(other, "caseworker2")
    expect(other.locator("#results")).not_to_contain_text("张伟")
    other.locator("a[role=tab]:has(#count-claimable)").click()
    expect(other.locator("#results tbody tr")).to_have_count(1)
    expect(other.locator("#results")).to_contain_text("王强")

    not_found = translated(app, "Not found, or not in your jurisdiction.", "zh_CN")
    for url in (f"/cases/{target.case_id}", f"/inbox/tasks/{target.item_id}"):
        response = other.goto(url)
        assert response.status == 404, url
        expect(other.locator("h1")).to_have_text("404")
        expect(other.locator("#main")).to_contain_text(not_found)
        expect(other.locator("#main")).not_to_contain_text("张伟")
    assert item(target.item_id)["assignee_id"] is None

    owner = pages.new()
    sign_in(owner, "caseworker")
    response = owner.goto(f"/inbox/tasks/{target.item_id}")
    assert response.status == 200
    if "cases.show" not in app.view_functions:
        pytest.skip("no case page yet (cases.show)")
    response = owner.goto(f"/cases/{target.case_id}")
    assert response.status == 200
    expect(owner.locator("#main")).to_contain_text("张伟")


def test_supervisor_bulk_reassigns_two_tasks_from_the_team_view(page):
    cases = demo_cases()
    chosen = xiawan(cases)
    assert len(chosen) == 2
    caseworker = user("caseworker")["id"]
    sign_in(page, "supervisor")

    page.locator("a[role=tab]:has(#count-team)").click()  # "All open in my area"
    page.wait_for_url(re.compile(r"view=team"))
    expect(page.locator("#results tbody tr")).to_have_count(3)
    for demo in chosen:
        page.locator(f"#item-{demo.item_id} input[name=ids]").check()
    expect(page.locator("#bulk-assignee")).to_have_count(0)  # the people are fetched only when asked for
    page.locator("#bulk-choose").click()  # "Reassign to…": htmx brings the list, the reason and the button
    page.locator("#bulk-assignee").select_option(str(caseworker))
    page.locator("#bulk-reason").fill("调整分工")
    page.locator("#bulk button[name=action][value=reassign]").click()

    expect(page.locator("#flashes .alert-success")).to_contain_text("2")
    expect(page.locator("#flashes .alert-warning")).to_have_count(0)
    for demo in chosen:
        expect(page.locator(f"#item-{demo.item_id}")).to_contain_text("Caseworker (夏湾)")  # assignee column
        assert item(demo.item_id)["assignee_id"] == caseworker
    assert item(cases["王强"].item_id)["assignee_id"] is None
    events = audit("task_reassigned")
    assert len(events) == 2
    assert {e["payload"].get("reason") for e in events} == {"调整分工"}
    assert {e["payload"].get("assignee_id") for e in events} == {caseworker}
    assert {e["actor_id"] for e in events} == {user("supervisor")["id"]}


def test_chinese_by_default_and_english_chosen_in_the_menu_sticks_to_the_account(app, pages):
    inbox_zh, inbox_en = translated(app, "Inbox", "zh_CN"), translated(app, "Inbox", "en")
    html = "html"

    unknown_language = pages.new(locale="fr-FR")
    unknown_language.goto("/auth/login")
    expect(unknown_language.locator(html)).to_have_attribute("lang", "zh-CN")  # zh_CN when nothing matches

    page = pages.new(locale="zh-CN")
    page.goto("/auth/login")
    expect(page.locator(html)).to_have_attribute("lang", "zh-CN")
    sign_in(page, "caseworker")
    expect(page.locator("h1")).to_have_text(inbox_zh)
    page.locator("a[role=tab]:has(#count-claimable)").click()
    expect(page.locator("#results")).to_contain_text("送达决定书并通知街道")  # diagram labels: the Chinese half

    page.locator("nav .dropdown-toggle:has(.bi-translate)").click()
    page.locator("nav button[name=locale][value=en]").click()
    expect(page.locator(html)).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text(inbox_en)
    expect(page.locator("#results")).to_contain_text("Deliver decision")
    assert "view=claimable" in page.url  # back where the switch was made

    page.reload()
    expect(page.locator(html)).to_have_attribute("lang", "en")
    expect(page.locator("#results")).to_contain_text("Deliver decision")

    sign_out(page)
    sign_in(page, "caseworker")
    expect(page.locator(html)).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text(inbox_en)

    elsewhere = pages.new(locale="zh-CN")  # another browser: the choice is on the account, not in a cookie
    elsewhere.goto("/auth/login")
    expect(elsewhere.locator(html)).to_have_attribute("lang", "zh-CN")
    sign_in(elsewhere, "caseworker")
    expect(elsewhere.locator(html)).to_have_attribute("lang", "en")
    assert user("caseworker")["locale"] == "en"


TABLET = {"width": 768, "height": 1024}
NO_PAGE_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth + 1"


@pytest.mark.parametrize("username,view", [("supervisor", "team"), ("caseworker", "claimable")])
def test_inbox_table_is_usable_on_a_tablet(pages, username, view):
    page = pages.new(viewport=TABLET)
    sign_in(page, username)
    page.goto(f"/inbox/?view={view}")
    rows = page.locator("#results tbody tr[id^=item-]")
    expect(rows.first).to_be_visible()
    table = page.locator("#results .table-responsive")
    assert table.evaluate("t => t.scrollWidth <= t.clientWidth + 1")  # the table itself needs no sideways scroll
    for i in range(rows.count()):  # every row's "Open" button is on screen
        box = rows.nth(i).locator("a.btn-primary").bounding_box()
        assert box is not None and box["x"] + box["width"] <= TABLET["width"], box


def test_pages_do_not_scroll_sideways_on_a_tablet(pages):
    page = pages.new(viewport=TABLET)
    sign_in(page, "caseworker")  # the longest name in the user menu
    page.goto("/inbox/?view=claimable")
    task_url = page.locator("#results tbody tr[id^=item-] a.btn-primary").first.get_attribute("href")
    widths = "[document.documentElement.scrollWidth, window.innerWidth]"
    overflow = page.evaluate(widths)
    page.goto(task_url)
    expect(page.locator("h1")).to_be_visible()
    assert page.evaluate(NO_PAGE_SCROLL), {"inbox": overflow, "task": page.evaluate(widths)}
    assert overflow[0] <= overflow[1] + 1, {"inbox": overflow}


def test_scripts_dropdowns_and_htmx_swaps_work_under_the_content_security_policy(pages):
    page = pages.new()
    sign_in(page, "supervisor")
    page.goto("/inbox/?view=team")
    rows = page.locator("#results tbody tr[id^=item-]")
    expect(rows).to_have_count(3)
    page.locator("[data-select-all]").check()  # app.js
    expect(page.locator("#results input[name=ids]:checked")).to_have_count(3)
    page.locator("nav .dropdown-toggle:has(.bi-person-circle)").click()  # bootstrap.bundle.js
    expect(page.locator("nav form[action$='/auth/logout'] button")).to_be_visible()
    page.locator("#q").fill("张伟")  # as an input method would; htmx: keyup → POST → #results swapped, URL pushed
    page.locator("#q").press("End")
    expect(rows).to_have_count(1)
    expect(page.locator("#results")).to_contain_text("张伟")
    page.wait_for_url(re.compile(r"[?&]s=1"))  # the pushed URL marks the search but never holds the name
    assert "%E5%BC%A0" not in page.url and "张" not in page.url
    page.goto(rows.locator("a.btn-primary").get_attribute("href") + "/reassign")
    expect(page.locator("#reason")).to_be_visible()
    assert pages.console_errors == [], pages.console_errors


def test_bulk_reassign_list_opens_from_the_keyboard_and_again_after_an_htmx_filter(pages):
    page = pages.new()
    sign_in(page, "supervisor")
    page.goto("/inbox/?view=team")
    chooser, people = page.locator("#bulk-assignee"), page.locator("#bulk-assignee option")
    page.locator("#bulk-choose").focus()
    page.keyboard.press("Enter")
    expect(chooser).to_be_focused()  # the list replaces the button and takes the focus: no hunting for it
    expect(people).not_to_have_count(1)  # more than "— choose —"
    count = people.count()
    # htmx focuses the autofocus element as its swap settles: Tab only once it has (this failed once in a CI run on
    # a loaded machine, the focus nowhere; not reproduced since)
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")
    page.keyboard.press("Tab")
    expect(page.locator("#bulk-reason")).to_be_focused()

    page.locator("#q").fill("张伟")
    page.locator("#q").press("End")
    expect(page.locator("#results tbody tr[id^=item-]")).to_have_count(1)
    expect(chooser).to_have_count(0)  # a swapped table starts with the button again
    page.locator("#bulk-choose").click()
    expect(people).to_have_count(count)


def test_language_menu_names_the_current_language(pages):
    page = pages.new(locale="zh-CN")
    page.goto("/auth/login")
    expect(page.locator("nav button[name=locale]")).to_have_count(1, timeout=500)  # only the other language
    sign_in(page, "caseworker")
    expect(page.locator("nav .dropdown-toggle:has(.bi-translate)")).to_contain_text("中文", timeout=500)
