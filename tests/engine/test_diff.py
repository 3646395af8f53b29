"""Version diff: elements added, removed and changed between two versions of a BPMN or DMN file."""

import json
from pathlib import Path

import pytest
from lxml import etree

from app import engine
from app.engine.diff import ElementChange

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
DMN = "https://www.omg.org/spec/DMN/20191111/MODEL/"
NS = {"bpmn": BPMN, "camunda": CAMUNDA, "dmn": DMN}


def edited(name: str, edit) -> tuple[str, str]:
    """(original, edited) text of a workflow file; ``edit(root)`` changes the lxml tree in place."""
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    root = etree.fromstring(text.encode("utf-8"))
    edit(root)
    return text, etree.tostring(root, encoding="unicode")


def by_id(root, element_id: str):
    [found] = root.xpath("//*[@id=$id]", id=element_id)
    return found


def test_identical_files_have_no_differences():
    for path in sorted(WORKFLOWS.glob("*.bpmn")) + sorted(WORKFLOWS.glob("*.dmn")):
        text = path.read_text(encoding="utf-8")
        assert not engine.diff_definitions(text, text), path.name


def test_layout_attribute_order_and_whitespace_are_not_changes():
    def relayout(root):
        for bounds in root.iter("{http://www.omg.org/spec/DD/20100524/DC}Bounds"):
            bounds.set("x", str(float(bounds.get("x")) + 40))
        for point in root.iter("{http://www.omg.org/spec/DD/20100524/DI}waypoint"):
            point.set("y", str(float(point.get("y")) + 15))
        task = by_id(root, "interview")
        attributes = list(task.attrib.items())
        task.attrib.clear()
        task.attrib.update(reversed(attributes))  # attribute order
        etree.indent(root, space="\t")  # whitespace everywhere, scripts and expressions included

    before, after = edited("intake.bpmn", relayout)
    assert before != after
    diff = engine.diff_definitions(before, after)
    assert (diff.added, diff.removed, diff.changed) == ([], [], [])


def test_rename():
    before, after = edited("intake.bpmn", lambda root: by_id(root, "interview").set("name", "入户访谈 Home interview"))
    diff = engine.diff_definitions(before, after)
    assert diff.changed == [
        ElementChange(
            "interview",
            "入户访谈 Home interview",
            "userTask",
            ["name: '入户访谈 Intake interview' → '入户访谈 Home interview'"],
        )
    ]
    assert diff.added == diff.removed == []


def test_added_task_with_its_flow_and_the_rerouted_flow():
    def add_task(root):
        flow = by_id(root, "flow_interviewed")
        flow.set("targetRef", "check_address")
        process = flow.getparent()
        process.append(etree.Element(f"{{{BPMN}}}userTask", id="check_address", name="核实住址 Check the address"))
        process.append(
            etree.Element(f"{{{BPMN}}}sequenceFlow", id="flow_address_checked", sourceRef="check_address",
                          targetRef="save_interview")
        )  # fmt: skip

    diff = engine.diff_definitions(*edited("intake.bpmn", add_task))
    assert [(e.id, e.type, e.name) for e in diff.added] == [
        ("check_address", "userTask", "核实住址 Check the address"),
        ("flow_address_checked", "sequenceFlow", None),
    ]
    assert [(e.id, e.changes) for e in diff.changed] == [
        ("flow_interviewed", ["target: '记入档案 Save to the case file' → '核实住址 Check the address'"])
    ]


def test_removed_task():
    def remove_task(root):
        task = by_id(root, "interview")
        task.getparent().remove(task)
        flow = by_id(root, "flow_interviewed")
        flow.getparent().remove(flow)
        by_id(root, "flow_to_interview").set("targetRef", "save_interview")

    diff = engine.diff_definitions(*edited("intake.bpmn", remove_task))
    assert [(e.id, e.type, e.name) for e in diff.removed] == [
        ("flow_interviewed", "sequenceFlow", None),
        ("interview", "userTask", "入户访谈 Intake interview"),
    ]
    assert [e.id for e in diff.changed] == ["flow_to_interview"]


def test_changed_timer():
    def longer(root):
        by_id(root, "report_deadline_timer").find("bpmn:timeDuration", NS).text = '"P20D"'

    diff = engine.diff_definitions(*edited("intake.bpmn", longer))
    assert [(e.id, e.type, e.changes) for e in diff.changed] == [
        ("report_deadline", "boundaryEvent", ['timer: "P15D" → "P20D"'])
    ]


def test_changed_form_fields():
    def edit_form(root):
        form = by_id(root, "record_refusal").find("bpmn:extensionElements/camunda:formData", NS)
        form.remove(form.find("camunda:formField[@id='good_reason']", NS))
        finding = form.find("camunda:formField[@id='finding']", NS)
        finding.set("label", "核查结论 Finding")
        finding.remove(finding.find("camunda:validation", NS))
        etree.SubElement(form, f"{{{CAMUNDA}}}formField", id="checked_by", label="核查人 Checked by", type="string")

    diff = engine.diff_definitions(*edited("intake.bpmn", edit_form))
    [change] = diff.changed
    assert change.id == "record_refusal"
    assert change.changes == [
        "form field 'checked_by' added",
        "form field 'finding' label: '核查情况 Finding' → '核查结论 Finding'",
        "form field 'finding' no longer required",
        "form field 'good_reason' removed",
    ]


def test_moved_to_another_lane():
    def move(root):
        [ref] = root.xpath("//bpmn:lane[@id='lane_caseworker']/bpmn:flowNodeRef[text()='interview']", namespaces=NS)
        ref.getparent().remove(ref)
        etree.SubElement(by_id(root, "lane_police"), f"{{{BPMN}}}flowNodeRef").text = "interview"

    diff = engine.diff_definitions(*edited("intake.bpmn", move))
    assert [(e.id, e.changes) for e in diff.changed] == [("interview", ["moved to lane '社区民警 police'"])]


def test_condition_script_documentation_and_attributes():
    def edit(root):
        by_id(root, "flow_unified").find("bpmn:conditionExpression", NS).text = 'bool(request.get("unified"))'
        by_id(root, "start_term").find("bpmn:script", NS).text = "term_started_on = reported_on or today"
        by_id(root, "register_report").find("bpmn:documentation", NS).text = "条例14: within 15 days."
        by_id(root, "register_report").set(f"{{{CAMUNDA}}}dueDate", "P10D")

    diff = engine.diff_definitions(*edited("intake.bpmn", edit))
    assert [(e.id, e.changes) for e in diff.changed] == [
        ("flow_unified", ["condition changed"]),
        ("register_report", ["camunda:dueDate: 'P15D' → 'P10D'", "documentation changed"]),
        ("start_term", ["script changed"]),
    ]


def test_changed_dmn_cell_hit_policy_and_removed_rule():
    def edit(root):
        table = root.find(".//dmn:decisionTable", NS)
        table.set("hitPolicy", "UNIQUE")
        by_id(root, "tier_yellow_missed_out_tier").find("dmn:text", NS).text = '"red"'
        table.remove(by_id(root, "tier_red_points"))

    diff = engine.diff_definitions(*edited("tier.dmn", edit))
    # The rules below the removed one are numbered one less, but they have not moved.
    assert [(e.id, e.type, e.changes) for e in diff.changed] == [
        ("tier", "decision", ["hit policy: 'FIRST' → 'UNIQUE'"]),
        ("tier_yellow_missed", "rule", ['rule 2: output \'tier\' "yellow" → "red"']),
    ]
    assert [(e.id, e.type, e.name) for e in diff.removed] == [("tier_red_points", "rule", "rule 2")]


def test_moved_dmn_rule_is_the_only_one_marked_moved():
    def move_blue_first(root):
        table = root.find(".//dmn:decisionTable", NS)
        blue = by_id(root, "tier_blue")
        table.remove(blue)
        table.insert(table.index(by_id(root, "tier_red_positive")), blue)

    diff = engine.diff_definitions(*edited("tier.dmn", move_blue_first))
    assert [(e.id, e.changes) for e in diff.changed] == [("tier_blue", ["rule 1: moved (was rule 6)"])]


def test_added_dmn_input_column():
    def add_input(root):
        table = root.find(".//dmn:decisionTable", NS)
        column = etree.fromstring(
            f'<input xmlns="{DMN}" id="in_age" label="年龄 Age"><inputExpression id="in_age_expr" typeRef="integer">'
            "<text>age</text></inputExpression></input>"
        )
        table.insert(table.index(table.find("dmn:output", NS)), column)
        for rule in table.findall("dmn:rule", NS):
            cell = etree.SubElement(rule, f"{{{DMN}}}inputEntry", id=f"{rule.get('id')}_in_age")
            etree.SubElement(cell, f"{{{DMN}}}text").text = "-"
            rule.insert(len(rule.findall("dmn:inputEntry", NS)), cell)

    diff = engine.diff_definitions(*edited("tier.dmn", add_input))
    assert [(e.id, e.type, e.name) for e in diff.added] == [("in_age", "input", "年龄 Age")]
    assert diff.changed == diff.removed == []


def test_changed_dmn_input_cell_without_reordering():
    def edit(root):
        by_id(root, "tier_red_points_in_points").find("dmn:text", NS).text = ">= 60"

    diff = engine.diff_definitions(*edited("tier.dmn", edit))
    assert [(e.id, e.changes) for e in diff.changed] == [
        ("tier_red_points", ["rule 2: input '管控积分 Risk points' >= 50 → >= 60"])
    ]


def test_to_dict_is_json_and_lists_are_sorted_by_id():
    def edit(root):
        for element_id in ("interview", "deliver_decision", "start_term"):
            by_id(root, element_id).set("name", element_id.upper())

    diff = engine.diff_definitions(*edited("intake.bpmn", edit))
    data = json.loads(json.dumps(diff.to_dict(), ensure_ascii=False))
    assert set(data) == {"added", "removed", "changed"}
    assert [e["id"] for e in data["changed"]] == ["deliver_decision", "interview", "start_term"]
    assert data["changed"][0] == {
        "id": "deliver_decision",
        "name": "DELIVER_DECISION",
        "type": "userTask",
        "changes": ["name: '送达决定书并通知街道 Deliver decision' → 'DELIVER_DECISION'"],
    }


def test_bpmn_and_dmn_cannot_be_compared():
    bpmn = (WORKFLOWS / "intake.bpmn").read_text(encoding="utf-8")
    dmn = (WORKFLOWS / "tier.dmn").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="cannot compare"):
        engine.diff_definitions(bpmn, dmn)


def test_vendor_decoration_is_not_a_change_but_a_pool_rename_is():
    path = Path(__file__).parent / "fixtures" / "interchange" / "signavio_onboarding.bpmn"
    text = path.read_text(encoding="utf-8")
    root = etree.fromstring(text.encode("utf-8"))
    for meta in root.iter("{http://www.signavio.com}signavioMetaData"):
        meta.set("metaValue", "#ff0000")
    [pool] = root.xpath("//bpmn:participant[@name='Public security bureau']", namespaces=NS)
    pool.set("name", "County public security bureau")
    diff = engine.diff_definitions(text, etree.tostring(root, encoding="unicode"))
    assert [(e.type, e.changes) for e in diff.changed] == [
        ("participant", ["name: 'Public security bureau' → 'County public security bureau'"])
    ]


def test_renamed_lane_is_one_change_not_a_move_of_its_tasks():
    before, after = edited("intake.bpmn", lambda root: by_id(root, "lane_police").set("name", "派出所 police station"))
    diff = engine.diff_definitions(before, after)
    assert [(e.id, e.type, e.changes) for e in diff.changed] == [
        ("lane_police", "lane", ["name: '社区民警 police' → '派出所 police station'"])
    ]
