"""The policy designers' modeler in a real browser: a designer adds a step to the supervision cycle with the palette,
context pad and properties panel, meets the validator, fixes the step, deploys, and a new case runs the new step.
The Content Security Policy is checked after every test (tests/browser/conftest.py)."""

import re

import pytest
from lxml import etree
from sqlalchemy import select

from app import engine
from app.auth.models import JurisdictionNode
from app.cases.operations import create_case
from app.core.db import transaction
from app.designer.models import DefinitionDraft
from app.engine.models import ProcessDefinition, ProcessInstance, WorkItem, WorkItemStatus
from tests.browser import WORKFLOWS, read, sign_in

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

NEW_STEP = "welcome_call"
BPMN = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": "http://camunda.org/schema/1.0/bpmn"}


def versions(key: str) -> list[tuple[int, int]]:
    """(id, version) of every deployed version of ``key``, oldest first."""
    return read(lambda session: [tuple(row) for row in session.execute(
        select(ProcessDefinition.id, ProcessDefinition.version)
        .where(ProcessDefinition.key == key)
        .order_by(ProcessDefinition.version)
    )])


def latest_xml(key: str) -> str:
    return read(lambda session: session.scalar(
        select(ProcessDefinition.xml).where(ProcessDefinition.key == key).order_by(
            ProcessDefinition.version.desc()).limit(1)
    ))


def flows(xml: str) -> set[tuple[str, str]]:
    """(source, target) of every sequence flow."""
    root = etree.fromstring(xml.encode())
    return {(f.get("sourceRef"), f.get("targetRef")) for f in root.iterfind(".//bpmn:sequenceFlow", BPMN)}


def open_work(case_id: int) -> list[dict]:
    """The case's open work items with the version of the diagram that opened them."""
    return read(lambda session: [row._asdict() for row in session.execute(
        select(WorkItem.element_id, WorkItem.candidate_role, WorkItem.process_key, ProcessDefinition.version)
        .join(ProcessInstance, ProcessInstance.id == WorkItem.instance_id)
        .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
        .where(WorkItem.case_id == case_id, WorkItem.status == WorkItemStatus.OPEN)
    )])


def on_screen(page, flow_id: str) -> dict:
    """Page coordinates of the middle of a sequence flow's first segment (the modeler is only read here)."""
    return page.evaluate(
        """(id) => {
          const modeler = window.rehabflowModeler, canvas = modeler.get("canvas");
          const [a, b] = modeler.get("elementRegistry").get(id).waypoints;
          const box = canvas.viewbox(), rect = canvas.getContainer().getBoundingClientRect();
          const x = (a.x + b.x) / 2, y = (a.y + b.y) / 2;
          return {x: rect.left + (x - box.x) * box.scale, y: rect.top + (y - box.y) * box.scale};
        }""",
        flow_id,
    )


def property_group(page, group_id: str):
    """A properties panel group, opened if it is closed."""
    group = page.locator(f"#modeler-properties [data-group-id='group-{group_id}']")
    header = group.locator(".bio-properties-panel-group-header")
    if "open" not in (header.get_attribute("class") or "").split():
        header.click()
    return group


def type_property(page, group_id: str, field: str, value: str) -> None:
    """Type into a properties panel field and wait until the (debounced) change reaches the selected element."""
    property_group(page, group_id).locator(f"#bio-properties-panel-{field}").fill(value)
    page.wait_for_function(
        """([field, value]) => {
          const [element] = window.rehabflowModeler.get("selection").get();
          return element && (field === "id" ? element.id : element.businessObject.get(field)) === value;
        }""",
        arg=[field, value],
    )


def test_designer_adds_a_step_fixes_its_role_deploys_and_a_new_case_runs_it(page):
    assert [version for _id, version in versions("supervision")] == [1]
    sign_in(page, "designer")

    # The library's supervision page: edit the deployed version as a draft.
    page.goto("/designer/processes/supervision")
    page.locator("#version-1 form[action$='/edit'] button").click()
    page.wait_for_url(re.compile(r"/designer/drafts/\d+$"))
    expect(page.locator("#modeler")).to_have_attribute("data-ready", "1")
    expect(page.locator("#modeler-canvas [data-element-id='flow_start']")).to_have_count(1)

    # Palette → task, dropped on the flow from the cycle's start to "load case": bpmn-js splits the flow.
    page.locator(".djs-palette .entry[data-action='create.task']").click()
    drop = on_screen(page, "flow_start")
    page.mouse.move(drop["x"] - 30, drop["y"])
    page.mouse.move(drop["x"], drop["y"])
    page.mouse.click(drop["x"], drop["y"])
    # Context pad → wrench → user task.
    page.locator(".djs-context-pad .entry[data-action='replace']").click()
    page.locator(".djs-popup [data-id='replace-with-user-task']").click()
    expect(property_group(page, "general")).to_be_visible()
    type_property(page, "general", "id", NEW_STEP)
    type_property(page, "general", "name", "入组电话 Welcome call")
    # The designer names the role as the lane shows it in Chinese: not a role the inbox knows.
    type_property(page, "CamundaPlatform__UserAssignment", "candidateGroups", "禁毒社工")
    expect(page.locator("#modeler-status")).to_have_attribute("data-state", "unsaved")

    with page.expect_response(lambda r: r.url.endswith("/validate")) as answer:
        page.locator("#modeler-validate").click()
    assert answer.value.status == 200 and answer.value.json()["ok"] is False
    problems = page.locator("#modeler-problems")
    expect(problems).to_be_visible()
    problem = problems.locator(f"button[data-element='{NEW_STEP}']")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("names no known role")
    step = page.locator(f"#modeler-canvas g.djs-element[data-element-id='{NEW_STEP}']")
    expect(step).to_have_class(re.compile(r"\brf-problem\b"))
    badge = page.locator(".djs-overlay-rf-problem .rf-problem-badge")
    expect(badge).to_have_count(1)
    expect(badge).to_have_attribute("title", re.compile("禁毒社工"))
    lane = page.locator("#modeler-canvas g.djs-element[data-element-id='lane_supervisor'] > .djs-hit").first
    lane.click(position={"x": 300, "y": 60})  # look elsewhere
    assert page.evaluate("window.rehabflowModeler.get('selection').get().map((e) => e.id)") == ["lane_supervisor"]
    problem.click()  # the problem list leads back to the step
    assert page.evaluate("window.rehabflowModeler.get('selection').get().map((e) => e.id)") == [NEW_STEP]

    # The fix, in the same panel: the role's own name.
    type_property(page, "CamundaPlatform__UserAssignment", "candidateGroups", "caseworker")
    with page.expect_response(lambda r: r.url.endswith("/validate")) as answer:
        page.locator("#modeler-validate").click()
    verdict = answer.value.json()
    assert verdict["ok"] is True and verdict["problems"] == []
    expect(problems).to_be_hidden()
    expect(page.locator("#modeler-canvas .rf-problem")).to_have_count(0)
    expect(badge).to_have_count(0)
    expect(page.locator("#modeler-status")).to_have_attribute("data-state", "ok")

    page.locator("#modeler-deploy").click()
    page.wait_for_url("**/designer/processes/supervision")
    expect(page.locator("#flashes .alert-success")).to_be_visible()
    expect(page.locator("#version-2")).to_be_visible()
    assert [version for _id, version in versions("supervision")] == [1, 2]
    deployed = latest_xml("supervision")
    root = etree.fromstring(deployed.encode())
    [task] = root.xpath(f"//bpmn:userTask[@id='{NEW_STEP}']", namespaces=BPMN)
    assert task.get(f"{{{BPMN['camunda']}}}candidateGroups") == "caseworker"
    [lane] = root.xpath(f"//bpmn:lane[bpmn:flowNodeRef='{NEW_STEP}']", namespaces=BPMN)  # dropped into a lane
    assert lane.get("id") == "lane_caseworker"
    assert {("start_cycle", NEW_STEP), (NEW_STEP, "load_case")} <= flows(deployed)
    assert ("start_cycle", "load_case") not in flows(deployed)

    # A new case's supervision cycle runs the new step first, for the caseworkers.
    with transaction() as session:
        community = session.scalar(select(JurisdictionNode).where(JurisdictionNode.name == "夏湾社区"))
        case = create_case("陈新", "440402199001018888", community)
        engine.send_message(case.id, case.jurisdiction_id, "supervision_cycle", {"cycle": 1})
        case_id = case.id
    assert open_work(case_id) == [
        {"element_id": NEW_STEP, "candidate_role": "caseworker", "process_key": "supervision", "version": 2}
    ]


def test_version_diff_marks_the_changed_step_on_both_diagrams_and_follows_the_table(page):
    """v2 renames one task: both diagrams mark it changed, and a click on its row in the table selects it in both."""
    xml = (WORKFLOWS / "supervision.bpmn").read_text(encoding="utf-8")
    renamed = xml.replace('name="读取案件 Load case"', 'name="读取案件档案 Load the case file"')
    assert renamed != xml
    with transaction():
        engine.deploy([engine.SourceFile("supervision.bpmn", renamed)])
    (v1, _), (v2, _) = versions("supervision")
    sign_in(page, "designer")

    page.goto(f"/designer/diff?a={v1}&b={v2}")
    expect(page.locator("#diff")).to_have_attribute("data-ready", "1")
    for side in ("a", "b"):
        expect(page.locator(f"#diff-{side} g.rf-diff-changed[data-element-id='load_case']")).to_have_count(1)
    expect(page.locator("#diff-b g.rf-diff-added, #diff-a g.rf-diff-removed")).to_have_count(0)
    page.locator("#diff-table tr[data-diff-element='load_case']").click()
    selected = page.evaluate("[rehabflowDiff.a, rehabflowDiff.b].map((v) => v.get('selection').get().map((e) => e.id))")
    assert selected == [["load_case"], ["load_case"]]


def test_designer_edits_a_decision_table_cell_and_saves_the_draft(page):
    sign_in(page, "designer")
    page.goto("/designer/processes/tier")
    page.locator("#version-1 form[action$='/edit'] button").click()
    page.wait_for_url(re.compile(r"/designer/drafts/\d+$"))
    draft_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#modeler")).to_have_attribute("data-ready", "1")
    assert page.evaluate("window.rehabflowModeler.getActiveView().type") == "decisionTable"

    cell = page.locator("#modeler-canvas td[data-element-id='tier_red_points_in_points']")
    expect(cell).to_have_text(">= 50")
    cell.click()
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.type("60")
    page.locator("#modeler-canvas .decision-table-name").click()  # leave the cell
    expect(page.locator("#modeler-status")).to_have_attribute("data-state", "unsaved")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator("#modeler-save").click()
    assert answer.value.status == 200
    expect(page.locator("#modeler-status")).to_have_attribute("data-state", "ok")
    saved = read(lambda session: session.get(DefinitionDraft, draft_id).xml)
    assert "<text>&gt;= 60</text>" in saved
