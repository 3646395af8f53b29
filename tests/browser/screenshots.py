"""Regenerate the README screenshots in docs/screenshots/ (1280×800, Chinese interface):

    .venv/bin/python -m tests.browser.screenshots [--out docs/screenshots]

A throw-away SQLite database with the demo data and a few more cases at a fixed date, served on a free port and
photographed with Debian's chromium (fonts-noto-cjk for the Chinese text; ``make browser`` installs both).
"""

import argparse
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select

from app import create_app, engine
from app.auth.models import JurisdictionNode, User
from app.cases.models import Case
from app.cases.operations import open_case
from app.core.clock import FrozenClock
from app.core.db import transaction
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db
from app.inbox import operations
from tests.browser import LiveServer, deploy_and_seed, launch, sign_in

ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1280, "height": 800}
#: When the demo cases are opened, and "today" in the pictures.
START = datetime(2026, 2, 20, 1, 0, tzinfo=UTC)
TODAY = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
#: More people: (name, ID number, community, tier, day the decision arrives).
MORE_PEOPLE = [
    ("陈静", "440402199203034567", "夏湾社区", "yellow", date(2026, 2, 25)),
    ("刘洋", "440402198707075678", "夏湾社区", "red", date(2026, 2, 25)),
    ("黄磊", "440402199409096789", "茂盛社区", "blue", date(2026, 2, 25)),
    ("赵敏", "440402199611117890", "夏湾社区", None, date(2026, 3, 2)),
    ("周杰", "440402198912128901", "茂盛社区", "blue", date(2026, 3, 2)),
]
TIERS = {"张伟": "red", "李娜": "yellow"}


def _open_items(case_id: int) -> list[WorkItem]:
    query = select(WorkItem).where(WorkItem.case_id == case_id, WorkItem.status == WorkItemStatus.OPEN)
    return list(db.session.scalars(query.order_by(WorkItem.id)))


def _case(name: str) -> Case:
    return db.session.scalars(select(Case).where(Case.person_name == name)).one()


def build_caseload(clock: FrozenClock) -> None:
    """Work at several points: overdue, due soon, just arrived; some claimed by the 夏湾 caseworker."""
    nodes = {n.name: n for n in db.session.scalars(select(JurisdictionNode))}
    caseworker = db.session.scalars(select(User).where(User.username == "caseworker")).one()
    for day in sorted({when for *_, when in MORE_PEOPLE}):
        clock.set(datetime.combine(day, START.timetz()))
        with transaction():
            for name, id_number, community, _tier, when in MORE_PEOPLE:
                if when == day:
                    open_case(name, id_number, nodes[community], decision_date=date(2026, 11, 1))
    with transaction():
        for name, tier in TIERS.items() | {(p[0], p[3]) for p in MORE_PEOPLE}:
            _case(name).tier = tier
    with transaction():  # 李娜's decision was delivered: she is due to report (条例14)
        (item,) = _open_items(_case("李娜").id)
        operations.claim(item, caseworker)
        engine.complete_work_item(item.id, {"delivered_on": "2026-02-21", "street_notified": True}, caseworker.id)
    clock.set(TODAY)
    with transaction():
        for name in ("张伟", "李娜", "刘洋"):
            for item in _open_items(_case(name).id):
                if item.assignee_id is None:
                    operations.claim(item, caseworker)


def deploy_supervision_v2() -> None:
    """A second version of the supervision cycle (a longer grace period, a renamed check), for the diff picture."""
    xml = (ROOT / "workflows" / "supervision.bpmn").read_text(encoding="utf-8")
    changed = xml.replace(
        'name="尿检与见面核查 Drug test and face-to-face check"',
        'name="尿检、见面核查与家访 Drug test, check and home visit"',
    ).replace("interval_days + grace_days}D", "interval_days + grace_days + 2}D")
    assert changed.count("home visit") == 1 and "grace_days + 2" in changed
    with transaction():
        engine.deploy([engine.SourceFile("supervision.bpmn", changed)])


def take(out: Path, url: str) -> None:
    with sync_playwright() as playwright:
        browser = launch(playwright)  # headless chromium shows date inputs as mm/dd/yyyy whatever the locale
        context = browser.new_context(base_url=url, locale="zh-CN", timezone_id="Asia/Shanghai", viewport=VIEWPORT)
        page = context.new_page()

        page.goto("/auth/login")
        expect(page.locator("#username")).to_be_visible()
        page.screenshot(path=out / "login.png")

        sign_in(page, "caseworker")
        expect(page.locator("#results tbody tr[id^=item-]").first).to_be_visible()
        page.screenshot(path=out / "inbox.png")

        page.goto("/inbox/?view=claimable")
        page.locator("#results tbody tr[id^=item-] a.btn-primary").first.click()
        page.locator("#street_notified").check()
        page.locator("#task-form button[name=action][value=submit]").click()
        expect(page.locator("#delivered_on-feedback")).to_be_visible()
        page.screenshot(path=out / "task-form-error.png")

        other = browser.new_context(base_url=url, locale="zh-CN", timezone_id="Asia/Shanghai", viewport=VIEWPORT)
        page = other.new_page()
        sign_in(page, "supervisor")
        page.goto("/inbox/?view=team")
        node = page.locator("#node option", has_text="夏湾社区").get_attribute("value")
        page.goto(f"/inbox/?view=team&node={node}")
        rows = page.locator("#results tbody tr[id^=item-]")
        expect(rows).to_have_count(5)
        for name in ("陈静", "赵敏"):
            rows.filter(has_text=name).locator("input[name=ids]").check()
        page.locator("#bulk-choose").click()  # the people to reassign to are fetched when asked for
        page.locator("#bulk-assignee").select_option(
            page.locator("#bulk-assignee option", has_text="Caseworker (夏湾)").get_attribute("value")
        )
        page.locator("#bulk-reason").fill("社工休假，调整分工")
        page.locator("#bulk fieldset").scroll_into_view_if_needed()  # below the table
        page.screenshot(path=out / "supervisor-team.png")

        designer = browser.new_context(base_url=url, locale="zh-CN", timezone_id="Asia/Shanghai", viewport=VIEWPORT)
        page = designer.new_page()
        sign_in(page, "designer")
        page.goto("/designer/")
        page.locator("#library-supervision button[type=submit]").click()
        expect(page.locator("#modeler[data-ready='1']")).to_be_attached()
        page.evaluate(  # bring the check into view and select it, as a click on it would
            """() => { const m = window.rehabflowModeler, check = m.get("elementRegistry").get("drug_test_check");
                       m.get("canvas").scrollToElement(check); m.get("selection").select(check); }"""
        )
        expect(page.locator("#modeler-properties [data-group-id='group-CamundaPlatform__Form']")).to_be_visible()
        page.screenshot(path=out / "designer-modeler.png")

        page.goto("/designer/processes/supervision")
        page.locator("#compare-form button[type=submit]").click()
        expect(page.locator("#diff[data-ready='1']")).to_be_attached()
        page.locator("#diff-table tr[data-diff-element='drug_test_check']").click()  # zooms both diagrams to it
        page.locator("#diff-summary").scroll_into_view_if_needed()
        page.screenshot(path=out / "designer-diff.png")
        browser.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    clock = FrozenClock(START)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/screenshots.sqlite", "CLOCK": clock,
                          "RATELIMIT_ENABLED": False})
        with app.app_context():
            db.create_all()
            deploy_and_seed(app)
            build_caseload(clock)
            deploy_supervision_v2()
            db.session.remove()
            with LiveServer(app) as live:
                take(args.out, live.url)
            db.engine.dispose()
    for name in ("login", "inbox", "task-form-error", "supervisor-team", "designer-modeler", "designer-diff"):
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
