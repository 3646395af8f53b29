"""Diagrams from other modelers: they deploy and run when they use what RehabFlow supports, else every element that
stands in the way is named. The fixtures in fixtures/interchange/ are written as each tool exports them."""

import pytest
from lxml import etree
from sqlalchemy import select

from app import engine
from app.core.db import transaction
from app.engine.models import Timer, WorkItem, WorkItemStatus
from app.extensions import db
from tests.conftest import FIXTURES

INTERCHANGE = FIXTURES / "interchange"
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
NS = {"bpmn": BPMN, "bpmndi": BPMNDI}
SIGNAVIO_KEY = "sid-5E1F2A9C-3B7D-4E8A-9C1F-7A2B6D4E8F01"
#: Tags bpmn-js draws as shapes or edges (decoration included): every one needs diagram interchange.
DRAWN = {
    "participant", "lane", "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent",
    "boundaryEvent", "task", "userTask", "manualTask", "serviceTask", "scriptTask", "businessRuleTask", "sendTask",
    "receiveTask", "callActivity", "subProcess", "transaction", "adHocSubProcess", "exclusiveGateway",
    "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway", "sequenceFlow", "messageFlow",
    "textAnnotation", "association", "group", "dataObjectReference", "dataStoreReference", "dataInputAssociation",
    "dataOutputAssociation",
}  # fmt: skip


def source(name: str, edit=None) -> engine.SourceFile:
    """A fixture file, optionally changed by ``edit(root)`` (an lxml tree) first."""
    text = (INTERCHANGE / name).read_text(encoding="utf-8")
    if edit is not None:
        root = etree.fromstring(text.encode("utf-8"))
        edit(root)
        text = etree.tostring(root, encoding="unicode")
    return engine.SourceFile(name, text)


def problems_of(*sources: engine.SourceFile) -> list[engine.Problem]:
    return engine.validate(list(sources))[1]


def element(root, element_id: str):
    [found] = root.xpath("//*[@id=$id]", id=element_id)
    return found


def open_items(instance_id: int) -> list[WorkItem]:
    return db.session.scalars(
        select(WorkItem)
        .where(WorkItem.instance_id == instance_id, WorkItem.status == WorkItemStatus.OPEN)
        .order_by(WorkItem.element_id)
    ).all()


def deploy_and_start(name: str, case_factory):
    with transaction():
        [definition] = engine.deploy([source(name)]).deployed
    case = case_factory()
    with transaction():
        info = engine.start_process(definition.key, case_id=case.id, jurisdiction_id=case.jurisdiction_id)
    return definition, info


def complete(item: WorkItem, data: dict | None = None):
    with transaction():
        return engine.complete_work_item(item.id, data or {})


# --- every file can be drawn ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(INTERCHANGE.glob("*.bpmn")), ids=lambda p: p.name)
def test_every_fixture_has_a_shape_or_edge_for_each_element(path):
    root = etree.parse(str(path)).getroot()
    drawn = {el.get("bpmnElement") for el in root.iterfind(".//bpmndi:BPMNShape", NS)}
    drawn |= {el.get("bpmnElement") for el in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    semantic = [
        el.get("id")
        for el in root.iter()
        if isinstance(el.tag, str) and etree.QName(el).namespace == BPMN and etree.QName(el).localname in DRAWN
    ]
    assert semantic and [i for i in semantic if i not in drawn] == []


# --- imports that deploy and run ------------------------------------------------------------------------------------


def test_camunda7_export_deploys_and_runs_with_candidate_groups_forms_and_timers(case_factory, clock):
    """Camunda Modeler 5 (Camunda 7): candidateGroups picks the role where the lane name names none, formData
    becomes the form, a quoted timer on a boundary event waits, a default flow and a Python condition route."""
    definition, info = deploy_and_start("camunda7_home_visit.bpmn", case_factory)
    assert (definition.key, definition.name) == ("home_visit", "Home visit")
    [plan] = open_items(info.id)
    assert (plan.element_id, plan.candidate_role, plan.lane) == ("Activity_1plan", "caseworker", "Community team")
    assert [f["id"] for f in plan.form] == ["visit_date", "address"] and plan.form[0]["required"] is True
    assert plan.due_at is not None and (plan.due_at - clock.now()).days == 3

    complete(plan, {"visit_date": "2026-03-05", "address": "拱北 1 号"})
    [visit] = open_items(info.id)
    assert visit.element_id == "Activity_0visit" and visit.legal_basis == "条例14"
    [late] = db.session.scalars(select(Timer).where(Timer.instance_id == info.id)).all()
    assert late.element_id == "Event_1late" and not late.interrupting

    complete(visit, {"outcome": "absent"})
    [police] = open_items(info.id)
    assert (police.element_id, police.candidate_role) == ("Activity_0police", "police")


def test_camunda8_export_with_lanes_deploys_and_runs(case_factory):
    """Camunda 8 (zeebe:userTask, zeebe:formDefinition, task headers): the lanes give the roles."""
    _, info = deploy_and_start("camunda8_urine_test.bpmn", case_factory)
    [collect] = open_items(info.id)
    assert (collect.element_id, collect.candidate_role, collect.form) == ("Activity_0collect", "caseworker", [])
    complete(collect)
    [record] = open_items(info.id)
    assert (record.element_id, record.candidate_role) == ("Activity_1record", "medical")
    assert complete(record).instance.status == "completed"


def test_bpmn_io_export_marked_not_executable_deploys_and_runs(case_factory):
    """bpmn.io demo: Process_1 with isExecutable="false", plain tasks in lanes, a parallel split, and decoration
    (text annotation, group, data object and data store references without associations)."""
    definition, info = deploy_and_start("bpmn_io_check_in.bpmn", case_factory)
    assert (definition.key, definition.name) == ("Process_1", "Monthly check-in")
    assert 'isExecutable="false"' in definition.xml  # stored as it came
    assert [name for _, name in definition.user_tasks] == [
        "Meet the person",
        "Update the case file",
        "Check police records",
    ]  # plain tasks become work items, so the inbox's task filter lists them
    [meet] = open_items(info.id)
    assert (meet.name, meet.candidate_role) == ("Meet the person", "caseworker")
    complete(meet)
    items = open_items(info.id)
    assert [(i.name, i.candidate_role) for i in items] == [
        ("Check police records", "police"),
        ("Update the case file", "caseworker"),
    ]
    complete(items[0])
    assert complete(items[1]).instance.status == "completed"


def test_signavio_export_with_an_external_pool_deploys_and_runs(case_factory):
    """Signavio: default namespace, signavio metadata everywhere, isExecutable="false", a collapsed external pool
    with a message flow, multi-line names."""
    definition, info = deploy_and_start("signavio_onboarding.bpmn", case_factory)
    assert (definition.key, definition.name) == (SIGNAVIO_KEY, "Supervision onboarding")
    [sign] = open_items(info.id)
    assert (sign.name.split(), sign.candidate_role) == (["Sign", "the", "agreement"], "caseworker")
    complete(sign)
    items = open_items(info.id)
    assert sorted(i.candidate_role for i in items) == ["caseworker", "police"]
    complete(items[0])
    assert complete(items[1]).instance.status == "completed"


def test_an_empty_pool_next_to_the_process_is_ignored(app):
    def add_empty_pool(root):
        collaboration = root.find("bpmn:collaboration", NS)
        etree.SubElement(collaboration, f"{{{BPMN}}}participant", id="Participant_empty", processRef="Process_0empty")
        root.insert(2, etree.Element(f"{{{BPMN}}}process", id="Process_0empty", isExecutable="false"))

    parsed, problems = engine.validate([source("bpmn_io_check_in.bpmn", add_empty_pool)])
    assert problems == [] and parsed[0].key == "Process_1"


# --- imports refused, with every reason named -----------------------------------------------------------------------


def test_bpmn_io_tasks_outside_lanes_are_named(app):
    [problem] = problems_of(source("bpmn_io_plain.bpmn"))
    assert problem.element_id == "Activity_0ux5oif"
    assert problem.message.startswith("task 'Call the person' is in no lane")


def test_camunda8_export_without_lanes_names_what_is_missing(app):
    problems = problems_of(source("camunda8_missed_report.bpmn"))
    found = sorted((p.element_id, p.message) for p in problems)
    expected = [
        ("Activity_0call", "zeebe:assignmentDefinition is not read"),
        ("Activity_1sms", "Zeebe job type 'send-sms'"),
        ("Activity_1sms", "zeebe:ioMapping on serviceTask 'Send SMS reminder' is not supported"),
        ("Event_0late", 'write "PT24H" in quotes'),
        ("Flow_0yes", "FEEL expressions"),
        ("Flow_1no", "FEEL expressions"),
    ]
    assert len(found) == len(expected)
    for (element_id, message), (expected_id, fragment) in zip(found, expected, strict=True):
        assert element_id == expected_id and fragment in message, (element_id, message)


def test_two_full_pools_are_refused_by_name(app):
    [problem] = problems_of(source("signavio_two_pools.bpmn"))
    assert problem.element_id is None
    assert "2 pools" in problem.message and "'Caseworker team', 'Police station'" in problem.message


def test_of_two_pools_the_one_marked_executable_is_the_process(app):
    def mark_caseworker_pool(root):
        root.find("bpmn:process", NS).set("isExecutable", "true")

    problems = problems_of(source("signavio_two_pools.bpmn", mark_caseworker_pool))
    # Only the executable pool is checked: its task has no lane; the police pool's task is not mentioned.
    assert [p.element_id for p in problems] == ["sid-A1A1A1A1-0000-4000-8000-000000000002"]


#: Every element of unsupported_elements.bpmn that RehabFlow cannot run, with a word its message must contain.
UNSUPPORTED = {
    "Gateway_complex": "complexGateway 'Enough evidence?' is not supported",
    "Activity_tx": "transaction 'Pay the fine' is not supported",
    "Event_tx_cancel": "cancel endEvent 'Payment failed' is not supported",
    "Event_tx_cancelled": "cancel boundaryEvent 'Cancelled' is not supported",
    "Activity_adhoc": "adHocSubProcess 'Optional support' is not supported",
    "Event_wait_cond": "conditional intermediateCatchEvent 'Test result in' is not supported",
    "Event_link_throw": "link intermediateThrowEvent 'To review' is not supported",
    "Event_link_catch": "link intermediateCatchEvent 'From payment' is not supported",
    "Event_compensate": "compensate boundaryEvent 'Undo' is not supported",
    "Activity_undo": "task 'Undo the registration' is a compensation handler",
    "Event_compensate_throw": "compensate intermediateThrowEvent 'Compensate' is not supported",
    "Activity_receive": "receiveTask is not supported",
    "Activity_send": "sendTask is not supported",
    "Gateway_event": "eventBasedGateway is not supported",
    "Event_signal_end": "signal endEvent 'Tell everyone' is not supported",
    "Event_multi": "intermediateCatchEvent 'Reply or reminder' has several triggers",
    "Event_evsub_start": "message startEvent 'Court order' of an event subprocess is not supported",
    "Activity_script": "scriptTask 'Compute the fine' is written in groovy",
    "Activity_service": "serviceTask 'Notify the bank' calls camunda:class",
    "Activity_sign": "camunda:executionListener on userTask 'Sign the receipt' is not supported",
    "Activity_review": "userTask 'Review the case' reads data store 'Court register'",
}


def test_every_unsupported_element_is_named_once_with_what_to_use_instead(app):
    problems = problems_of(source("unsupported_elements.bpmn"))
    by_element = {p.element_id: p for p in problems}
    assert len(by_element) == len(problems), "one problem per element"
    assert set(by_element) == set(UNSUPPORTED)
    for element_id, fragment in UNSUPPORTED.items():
        message = by_element[element_id].message
        assert fragment in message and ": " in message.split(fragment, 1)[1], message
        assert by_element[element_id].file == "unsupported_elements.bpmn"


def test_unsupported_elements_deploy_nothing(app):
    with pytest.raises(engine.InvalidDefinition) as err:
        with transaction():
            engine.deploy([source("unsupported_elements.bpmn")])
    assert len(err.value.problems) == len(UNSUPPORTED)
    assert engine.latest_definitions() == []


# --- single edits to a deployable export ----------------------------------------------------------------------------


def _set_condition(text):
    def edit(root):
        element(root, "Flow_1met").find("bpmn:conditionExpression", NS).text = text

    return edit


def _end_event_definition(xml):
    def edit(root):
        element(root, "Event_0done").append(etree.fromstring(xml))

    return edit


_MSG = f'xmlns="{BPMN}"'


@pytest.mark.parametrize(
    ("edit", "element_id", "fragment"),
    [
        (_set_condition('${outcome == "met"}'), "Flow_1met", "JUEL expressions"),
        (_set_condition('=outcome = "met"'), "Flow_1met", "FEEL expressions"),
        (
            _end_event_definition(f'<messageEventDefinition {_MSG} messageRef="Message_x"/>'),
            "Event_0done",
            "sends no payload",
        ),
        (
            _end_event_definition(f'<signalEventDefinition {_MSG} signalRef="Signal_x"/>'),
            "Event_0done",
            "signal endEvent 'Visit done' is not supported",
        ),
        (
            lambda root: element(root, "Activity_0visit").set(
                "{http://camunda.org/schema/1.0/bpmn}candidateGroups", "x"
            ),
            "Activity_0visit",
            "candidate group 'x' names no known role",
        ),
        (
            lambda root: element(root, "Gateway_0met").attrib.pop("default"),
            "Gateway_0met",
            "outgoing flow 'no' has no condition and is not the default flow",
        ),
    ],
    ids=["juel", "feel", "message-without-payload", "signal-end", "unknown-group", "no-default-flow"],
)
def test_one_edit_to_the_camunda7_export_is_named(app, edit, element_id, fragment):
    problems = problems_of(source("camunda7_home_visit.bpmn", edit))
    assert [p.element_id for p in problems] == [element_id]
    assert fragment in problems[0].message, problems[0].message


def test_a_signal_caught_but_never_thrown_is_named(app):
    def wait_for_signal(root):
        boundary = element(root, "Event_1late")
        boundary.remove(boundary.find("bpmn:timerEventDefinition", NS))
        boundary.append(etree.fromstring(f'<signalEventDefinition {_MSG} signalRef="Signal_x"/>'))

    [problem] = problems_of(source("camunda7_home_visit.bpmn", wait_for_signal))
    assert problem.element_id == "Event_1late" and "never throws" in problem.message


def test_a_documentation_gateway_without_conditions_is_named(app):
    """Documentation tools label the flows of an exclusive gateway ("yes"/"no") but give them no condition."""
    split = "sid-F6A7B8C9-D0E1-4F2A-B3C4-D5E6F7A8B9C0"

    def exclusive(root):
        element(root, split).tag = f"{{{BPMN}}}exclusiveGateway"

    problems = problems_of(source("signavio_onboarding.bpmn", exclusive))
    assert [p.element_id for p in problems] == [split, split]
    assert all("has no condition and is not the default flow" in p.message for p in problems)


def test_a_task_writing_a_data_object_it_never_sets_is_named(app):
    def write_notes(root):
        task = element(root, "Activity_0y0ez4n")
        association = etree.SubElement(task, f"{{{BPMN}}}dataOutputAssociation", id="DataOutputAssociation_1")
        etree.SubElement(association, f"{{{BPMN}}}targetRef").text = "DataObjectReference_0hh2v5m"

    [problem] = problems_of(source("bpmn_io_check_in.bpmn", write_notes))
    assert problem.element_id == "Activity_0y0ez4n"
    assert "writes data object 'Check-in notes'" in problem.message
