"""Case history in a real browser: a supervisor opens a case's process instance and sees its diagram drawn by bpmn-js
with the completed path and the current task marked; a click on an element shows its events and submitted data.
The Content Security Policy is checked after every test (tests/browser/conftest.py)."""

import re

import pytest
from sqlalchemy import select

from app import engine
from app.cases.models import Case
from app.core.db import transaction
from app.engine.models import ProcessInstance, WorkItem, WorkItemStatus
from tests.browser import read, sign_in

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


def open_item(person: str, element_id: str) -> tuple[int, int, int]:
    """(case id, instance id, work item id) of the person's open task ``element_id``."""
    return read(
        lambda session: tuple(
            session.execute(
                select(Case.id, WorkItem.instance_id, WorkItem.id)
                .join(WorkItem, WorkItem.case_id == Case.id)
                .where(
                    Case.person_name == person,
                    WorkItem.element_id == element_id,
                    WorkItem.status == WorkItemStatus.OPEN,
                )
            ).one()
        )
    )


def open_elements(instance_id: int) -> list[str]:
    return read(
        lambda session: list(
            session.scalars(
                select(WorkItem.element_id).where(
                    WorkItem.instance_id == instance_id, WorkItem.status == WorkItemStatus.OPEN
                )
            )
        )
    )


def process_key(instance_id: int) -> str:
    return read(
        lambda session: session.scalar(select(ProcessInstance.process_key).where(ProcessInstance.id == instance_id))
    )


def test_supervisor_opens_a_case_history_and_sees_the_path_on_the_diagram(page):
    case_id, instance_id, item_id = open_item("张伟", "deliver_decision")
    assert process_key(instance_id) == "intake"
    with transaction():  # the caseworker delivered the decision
        engine.complete_work_item(item_id, {"delivered_on": "2026-03-02", "street_notified": True})
    [current] = open_elements(instance_id)

    sign_in(page, "supervisor")
    page.goto(f"/cases/{case_id}")
    page.locator(f"#process-history a[href$='/monitor/instances/{instance_id}']").click()
    page.wait_for_url(f"**/monitor/instances/{instance_id}")

    diagram = page.locator("#diagram")
    expect(diagram).to_have_attribute("data-rendered", "yes")
    expect(diagram.locator("svg")).not_to_have_count(0)
    for element_id in ("start", "load_case", "deliver_decision", current):
        expect(diagram.locator(f".djs-element[data-element-id='{element_id}']")).to_have_count(1)
    done = diagram.locator(".djs-element[data-element-id='deliver_decision']")
    expect(done).to_have_class(re.compile(r"\brf-completed\b"))
    expect(diagram.locator(".djs-element[data-element-id='start']")).to_have_class(re.compile(r"\brf-completed\b"))
    expect(diagram.locator(".djs-element[data-element-id='flow_loaded']")).to_have_class(
        re.compile(r"\brf-completed-flow\b")
    )
    expect(diagram.locator(f".djs-element[data-element-id='{current}']")).to_have_class(re.compile(r"\brf-active\b"))
    expect(done).not_to_have_class(re.compile(r"\brf-active\b"))

    done.click()
    detail = page.locator("#element-detail")
    expect(detail).to_contain_text("deliver_decision")
    expect(detail.locator("li[data-type=task_completed]")).to_have_count(1)
    expect(detail).to_contain_text("2026-03-02")  # the data submitted at that task


def test_designer_gets_the_heat_map_but_not_the_instance_page(pages):
    case_id, instance_id, _ = open_item("张伟", "deliver_decision")
    page = pages.new()
    sign_in(page, "designer")
    assert page.goto(f"/monitor/instances/{instance_id}").status == 404
    page.goto("/monitor/")
    page.locator("#process-table a", has_text="v1").first.wait_for()
    version = read(
        lambda session: session.scalar(select(ProcessInstance.definition_id).where(ProcessInstance.id == instance_id))
    )
    page.locator(f"#definition-{version} a").click()
    diagram = page.locator("#diagram")
    expect(diagram).to_have_attribute("data-rendered", "yes")
    badge = diagram.locator(".djs-overlay-container .rf-heat-active")
    expect(badge.first).to_be_visible()
    expect(page.locator("#main")).not_to_contain_text("张伟")
