"""Definitions: validate BPMN/DMN, deploy immutable versions, and build the runnable spec bundles."""

import copy
import dataclasses
import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.exceptions import SpiffWorkflowException
from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from app.audit.log import record
from app.auth.roles import role_for_lane
from app.core import direct
from app.core.clock import now
from app.engine.errors import InvalidDefinition, NotFound, Problem
from app.engine.forms import FIELD_TYPES
from app.engine.models import DefinitionKind, ProcessDefinition, SpecBundle
from app.engine.parser import RehabParser
from app.engine.script_env import check_script
from app.engine.serialization import dump_specs, load_specs
from app.engine.services import TopicServiceTask, known_topics
from app.extensions import db

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS}
HIT_POLICIES = {"UNIQUE", "FIRST", "COLLECT"}
ISO_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_DMN_OPERATOR = re.compile(r"^\s*(<=|>=|<|>|==|!=|in\b|not\b)")


@dataclass(frozen=True)
class SourceFile:
    """A BPMN or DMN document to validate or deploy."""

    name: str
    content: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode("utf-8")).hexdigest()

    @classmethod
    def from_path(cls, path: Path) -> "SourceFile":
        return cls(name=path.name, content=path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ParsedSource:
    source: SourceFile
    kind: DefinitionKind
    key: str
    name: str
    dependencies: list[str]
    start_messages: list[str]
    root: etree._Element
    #: [[element id, name], ...] of the process's user tasks (the inbox's task filter reads these).
    user_tasks: list = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class DeployResult:
    deployed: list[ProcessDefinition]
    unchanged: list[ProcessDefinition]


def workflow_files(directory: Path) -> list[SourceFile]:
    """Every .bpmn and .dmn file in a folder, in a stable order."""
    paths = sorted(p for p in directory.iterdir() if p.suffix in {".bpmn", ".dmn"})
    return [SourceFile.from_path(p) for p in paths]


# --- reading files -------------------------------------------------------------------------------------------


def _parse_xml(source: SourceFile) -> tuple[ParsedSource | None, list[Problem]]:
    try:
        root = etree.fromstring(source.content.encode("utf-8"), etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        return None, [Problem(source.name, None, f"not well-formed XML: {exc}")]
    namespace = etree.QName(root).namespace or ""
    if etree.QName(root).localname != "definitions":
        return None, [Problem(source.name, None, "the root element must be <definitions>")]
    if namespace == BPMN_NS:
        return _read_bpmn(source, root)
    if "DMN" in namespace.upper():
        return _read_dmn(source, root, namespace)
    return None, [Problem(source.name, None, f"neither BPMN 2.0 nor DMN: namespace {namespace!r}")]


def _read_bpmn(source: SourceFile, root) -> tuple[ParsedSource | None, list[Problem]]:
    process, reason = _choose_process(root)
    if process is None:
        return None, [Problem(source.name, None, reason)]
    deps = {el.get("calledElement") for el in process.iter(f"{{{BPMN_NS}}}callActivity") if el.get("calledElement")}
    deps |= {
        el.get(f"{{{CAMUNDA_NS}}}decisionRef")
        for el in process.iter(f"{{{BPMN_NS}}}businessRuleTask")
        if el.get(f"{{{CAMUNDA_NS}}}decisionRef")
    }
    messages = {m.get("id"): m.get("name") for m in root.findall("bpmn:message", NS)}
    start_messages = []
    for start in process.findall("bpmn:startEvent", NS):
        for definition in start.findall("bpmn:messageEventDefinition", NS):
            start_messages.append(messages.get(definition.get("messageRef")) or start.get("name"))
    parsed = ParsedSource(
        source=source,
        kind=DefinitionKind.BPMN,
        key=process.get("id"),
        name=process.get("name") or _pool_name(root, process),
        dependencies=sorted(deps),
        start_messages=sorted(m for m in start_messages if m),
        root=root,
        user_tasks=user_tasks_of(process),
    )
    return parsed, []


def _choose_process(root) -> tuple[etree._Element | None, str]:
    """The one process of a file, or None and why there is not exactly one.

    Pools without content (collapsed external participants, empty pools) do not count, nor do pools marked
    ``isExecutable="false"`` next to one that is executable. A file whose only process is marked non-executable
    (documentation tools export that way) is accepted.
    """
    processes = root.findall("bpmn:process", NS)
    if not processes:
        return None, "the file has no process"
    drawn = [p for p in processes if _flow_elements(p)] or processes
    executable = [p for p in drawn if p.get("isExecutable", "true") != "false"] or drawn
    if len(executable) == 1:
        return executable[0], ""
    names = ", ".join(repr(_pool_name(root, p)) for p in executable)
    return None, (
        f"the file has {len(executable)} pools with processes ({names}); RehabFlow runs one process per file: "
        'put each pool in its own file (they can exchange messages) or mark all but one isExecutable="false"'
    )


def _pool_name(root, process) -> str:
    for participant in root.iterfind("bpmn:collaboration/bpmn:participant", NS):
        if participant.get("processRef") == process.get("id") and participant.get("name"):
            return _label(participant)
    return _label(process)


def _label(element) -> str:
    """An element's name on one line, or its id."""
    return " ".join((element.get("name") or "").split()) or element.get("id") or "?"


def _flow_elements(container) -> list:
    """The flow nodes directly inside a process or subprocess (sequence flows, data and decoration left out)."""
    return [
        el
        for el in container
        if isinstance(el.tag, str)
        and etree.QName(el).namespace == BPMN_NS
        and etree.QName(el).localname not in NOT_FLOW_NODES
    ]


def user_tasks_of(process) -> list[list[str]]:
    """[[id, name], ...] of the tasks people do (user, manual and plain tasks: all become work items) in a
    <bpmn:process> element, subprocesses included."""
    tags = [f"{{{BPMN_NS}}}{tag}" for tag in WORK_ITEM_TAGS]
    return [[el.get("id"), el.get("name") or el.get("id")] for el in process.iter(*tags)]


def _read_dmn(source: SourceFile, root, namespace: str) -> tuple[ParsedSource | None, list[Problem]]:
    decisions = root.findall(f"{{{namespace}}}decision")
    if len(decisions) != 1:
        return None, [Problem(source.name, None, f"one decision per DMN file, found {len(decisions)}")]
    decision = decisions[0]
    parsed = ParsedSource(
        source=source,
        kind=DefinitionKind.DMN,
        key=decision.get("id"),
        name=decision.get("name") or decision.get("id"),
        dependencies=[],
        start_messages=[],
        root=root,
    )
    return parsed, _check_dmn(parsed, namespace)


# --- checks SpiffWorkflow does not make ---------------------------------------------------------------------

#: Expression languages of other engines, recognised to say so instead of reporting a Python syntax error.
_FOREIGN_EXPRESSIONS = (
    (re.compile(r"^\s*="), "FEEL expressions (Camunda 8, starting with '=')"),
    (re.compile(r"[$#]\{"), "JUEL expressions (Camunda 7, ${...})"),
)


def _check_script(problems: list[Problem], file: str, element_id: str | None, source: str | None, mode: str, what: str):
    if not source or not source.strip():
        return
    reason = check_script(source.strip(), mode)
    if reason:
        for pattern, language in _FOREIGN_EXPRESSIONS:
            if pattern.search(source):
                reason = f"{language} are not supported: write a Python expression"
                break
        problems.append(Problem(file, element_id, f"{what}: {reason}"))


#: Flow elements RehabFlow does not run, with what to use instead. SpiffWorkflow's parser reads the first three
#: but RehabFlow cannot store them or deliver to them; it cannot parse complexGateway, and runs transactions and
#: ad hoc subprocesses without what modelers mean by them (compensation; tasks chosen by the performer).
UNSUPPORTED = {
    "receiveTask": "use an intermediate catch event with a message definition",
    "sendTask": "use an intermediate throw event with a message definition",
    "eventBasedGateway": "use boundary events on a user task, or separate processes started by messages",
    "complexGateway": "use an inclusive gateway with a condition on each outgoing flow",
    "transaction": "use a subProcess with an error end event and an error boundary event (there is no compensation)",
    "adHocSubProcess": "use a parallel gateway around the optional tasks, or a loop through an exclusive gateway",
}
#: These keep the wording they had before messages named the element (callers match on it).
_LEGACY_UNSUPPORTED = {"receiveTask", "sendTask", "eventBasedGateway"}
_GENERIC_INSTEAD = "RehabFlow cannot run it; use a task, gateway or event it supports"
#: What stands in a process or subprocess besides flow nodes: flows, data, decoration and activity details.
NOT_FLOW_NODES = frozenset(
    {
        "sequenceFlow", "laneSet", "documentation", "extensionElements", "textAnnotation", "association", "group",
        "category", "dataObject", "dataObjectReference", "dataStoreReference", "ioSpecification", "property",
        "auditing", "monitoring", "correlationSubscription", "supports", "resourceRole", "performer",
        "humanPerformer", "potentialOwner", "incoming", "outgoing", "dataInputAssociation", "dataOutputAssociation",
        "standardLoopCharacteristics", "multiInstanceLoopCharacteristics", "completionCondition", "ioBinding",
    }
)  # fmt: skip
#: Flow nodes RehabFlow runs: every tag its parser has a class for, less the refused ones.
SUPPORTED_FLOW_NODES = frozenset(
    etree.QName(tag).localname for tag in {**RehabParser.PARSER_CLASSES, **RehabParser.OVERRIDE_PARSER_CLASSES}
) - set(UNSUPPORTED)
_CONTAINERS = {"process", "subProcess", "transaction", "adHocSubProcess"}
#: Event definitions RehabFlow runs, per kind of event. SpiffWorkflow 3.2's event parsers also read conditional
#: and cancel definitions, and silently drop the others (link, compensate, a signal on an end event).
EVENT_DEFINITIONS = {
    "startEvent": {"message", "timer", "signal", "error", "escalation"},
    "intermediateCatchEvent": {"message", "timer", "signal"},
    "intermediateThrowEvent": {"message", "signal", "escalation"},
    "boundaryEvent": {"message", "timer", "signal", "error", "escalation"},
    "endEvent": {"message", "error", "escalation", "terminate"},
}
_COMPENSATION = "compensation is not supported; model the undo steps as tasks after an error boundary event"
#: What to use instead of an event definition RehabFlow does not run (by kind, or by event and kind).
EVENT_INSTEAD = {
    "conditional": "nothing re-evaluates the condition while the process waits; use a timer, or an exclusive "
    "gateway after the task that changes the data",
    "compensate": _COMPENSATION,
    "cancel": "cancel events belong to transactions, which are not supported; use error events",
    "link": "connect the two parts of the flow with a sequence flow",
    ("endEvent", "signal"): "the signal would never be sent; throw it from an intermediate throw event first",
}
_LISTENERS = "listeners do not run; use a script task or a service task"
_MAPPINGS = "input/output mappings are not read; map data in a script task"
#: Extension elements of other engines whose behaviour SpiffWorkflow would silently skip.
UNSUPPORTED_EXTENSIONS = {
    (CAMUNDA_NS, "executionListener"): _LISTENERS,
    (CAMUNDA_NS, "taskListener"): _LISTENERS,
    (CAMUNDA_NS, "inputOutput"): _MAPPINGS,
    (CAMUNDA_NS, "connector"): "connectors do not run; use a service task with camunda:topic",
    (ZEEBE_NS, "executionListeners"): _LISTENERS,
    (ZEEBE_NS, "taskListeners"): _LISTENERS,
    (ZEEBE_NS, "ioMapping"): _MAPPINGS,
    (ZEEBE_NS, "calledElement"): "set the callActivity's calledElement attribute to the called process id",
    (ZEEBE_NS, "calledDecision"): "set camunda:decisionRef to the decision id",
    (ZEEBE_NS, "script"): "write the script in Python as the scriptTask's script",
}
_PREFIXES = {CAMUNDA_NS: "camunda", ZEEBE_NS: "zeebe"}
#: Tasks that become work items for people, so they need a role (from a lane or camunda:candidateGroups).
WORK_ITEM_TAGS = ("userTask", "manualTask", "task")
_ROLE_HINT = "(caseworker, police, cadre, medical, supervisor, ...)"
_NO_DATA_STORES = "data stores are not supported; remove the association (data lives in the case and its forms)"


def _tag(element) -> str:
    return etree.QName(element).localname


def _flow_nodes(process) -> list:
    """Every flow node of a process, subprocess contents included."""
    found, todo = [], [process]
    while todo:
        for element in _flow_elements(todo.pop()):
            found.append(element)
            if _tag(element) in _CONTAINERS:
                todo.append(element)
    return found


def _lane_of(element, lanes: dict[str, str]) -> str | None:
    """The lane SpiffWorkflow gives an element: that of its outermost enclosing flow node in a lane."""
    chain = []
    while element is not None and _tag(element) != "process":
        chain.append(element.get("id"))
        element = element.getparent()
    return next((lanes[node_id] for node_id in reversed(chain) if node_id in lanes), None)


def _unsupported(file: str, root, process, nodes: list) -> Iterator[Problem]:
    """One problem per element, event definition or extension RehabFlow cannot run."""
    thrown_signals = {
        d.get("signalRef") or _label(d.getparent())
        for d in process.iter(f"{{{BPMN_NS}}}signalEventDefinition")
        if _tag(d.getparent()) == "intermediateThrowEvent"
    }
    references = {
        el.get("id"): el for el in process.iter(f"{{{BPMN_NS}}}dataStoreReference", f"{{{BPMN_NS}}}dataObjectReference")
    }
    for store in root.iterfind("bpmn:dataStore", NS):
        yield Problem(file, store.get("id"), f"dataStore {_label(store)!r} is not supported: {_NO_DATA_STORES}")
    for element in [process, *nodes]:
        tag, label, element_id = _tag(element), _label(element), element.get("id")
        if tag in _LEGACY_UNSUPPORTED:
            yield Problem(file, element_id, f"{tag} is not supported: {UNSUPPORTED[tag]}")
        elif tag != "process" and tag not in SUPPORTED_FLOW_NODES:
            instead = UNSUPPORTED.get(tag, _GENERIC_INSTEAD)
            yield Problem(file, element_id, f"{tag} {label!r} is not supported: {instead}")
        elif element.get("isForCompensation") == "true":
            yield Problem(file, element_id, f"{tag} {label!r} is a compensation handler: {_COMPENSATION}")
        elif tag in EVENT_DEFINITIONS:
            yield from _event_problems(file, element, thrown_signals)
        for extension in element.iterfind("bpmn:extensionElements/*", NS):
            name = etree.QName(extension) if isinstance(extension.tag, str) else None
            instead = name and UNSUPPORTED_EXTENSIONS.get((name.namespace, name.localname))
            if instead:
                what = f"{_PREFIXES[name.namespace]}:{name.localname}"
                yield Problem(file, element_id, f"{what} on {tag} {label!r} is not supported: {instead}")
        yield from _data_problems(file, element, references)


def _event_problems(file: str, event, thrown_signals: set[str]) -> Iterator[Problem]:
    tag, label, event_id = _tag(event), _label(event), event.get("id")
    definitions = [c for c in event if isinstance(c.tag, str) and _tag(c).endswith("EventDefinition")]
    if event.find("bpmn:eventDefinitionRef", NS) is not None:
        yield Problem(file, event_id, f"{tag} {label!r} uses a shared eventDefinitionRef: define its trigger inside it")
        return
    if len(definitions) > 1:
        yield Problem(file, event_id, f"{tag} {label!r} has several triggers: use one event per trigger")
        return
    if not definitions:
        if tag == "boundaryEvent":
            yield Problem(file, event_id, f"boundaryEvent {label!r} has no trigger (timer, message, error, ...)")
        return
    definition = definitions[0]
    kind = _tag(definition).removesuffix("EventDefinition")
    in_event_subprocess = event.getparent().get("triggeredByEvent") == "true"
    if kind not in EVENT_DEFINITIONS[tag]:
        instead = EVENT_INSTEAD.get((tag, kind)) or EVENT_INSTEAD.get(kind)
        instead = instead or f"a {tag} can be plain or {', '.join(sorted(EVENT_DEFINITIONS[tag]))}"
        yield Problem(file, event_id, f"{kind} {tag} {label!r} is not supported: {instead}")
    elif tag == "startEvent" and kind in {"error", "escalation"} and not in_event_subprocess:
        yield Problem(file, event_id, f"{kind} startEvent {label!r} is not supported outside an event subprocess")
    elif tag == "startEvent" and kind == "message" and in_event_subprocess:
        yield Problem(
            file,
            event_id,
            f"message startEvent {label!r} of an event subprocess is not supported: messages reach only waiting "
            "events; use a non-interrupting message boundary event",
        )
    elif kind == "signal" and tag != "intermediateThrowEvent":
        if (definition.get("signalRef") or label) not in thrown_signals:
            yield Problem(
                file,
                event_id,
                f"signal {tag} {label!r} waits for a signal this process never throws: RehabFlow does not route "
                "signals between processes; use a message",
            )
    elif kind == "message":
        if not definition.get("messageRef") and not event.get("name"):
            yield Problem(file, event_id, f"message {tag} {label!r} names no message: set its messageRef")
        if tag in {"intermediateThrowEvent", "endEvent"} and not definition.get(f"{{{CAMUNDA_NS}}}expression"):
            yield Problem(
                file, event_id, f"message {tag} {label!r} sends no payload: set camunda:expression (for example {{}})"
            )


def _data_problems(file: str, element, references: dict) -> Iterator[Problem]:
    """Data store references fail to parse; a data object written by a task that never sets it fails at run time."""
    tag, label, element_id = _tag(element), _label(element), element.get("id")
    sources = [el.text for el in element.iterfind("bpmn:dataInputAssociation/bpmn:sourceRef", NS)]
    targets = [el.text for el in element.iterfind("bpmn:dataOutputAssociation/bpmn:targetRef", NS)]
    fields = {f.get("id") for f in element.iterfind(".//camunda:formField", NS)}
    for verb, ref_id in [("reads", s) for s in sources] + [("writes", t) for t in targets]:
        reference = references.get((ref_id or "").strip())
        if reference is None:
            continue
        what = _label(reference)
        if _tag(reference) == "dataStoreReference":
            yield Problem(file, element_id, f"{tag} {label!r} {verb} data store {what!r}: {_NO_DATA_STORES}")
        elif verb == "writes" and tag in WORK_ITEM_TAGS and reference.get("dataObjectRef") not in fields:
            variable = reference.get("dataObjectRef")
            yield Problem(
                file,
                element_id,
                f"{tag} {label!r} writes data object {what!r}, but no form field sets {variable!r}: remove the "
                "association or add that form field",
            )


def _work_item_problems(file: str, task, lanes: dict[str, str]) -> Iterator[Problem]:
    """A task that becomes a work item needs a role; a user task's form needs known field types."""
    tag, task_id = _tag(task), task.get("id")
    groups = task.get(f"{{{CAMUNDA_NS}}}candidateGroups")
    lane_name = _lane_of(task, lanes)
    role = role_for_lane(groups) if groups else role_for_lane(lane_name)
    if role is None:
        if groups:
            reason = f"candidate group {groups!r} names no known role"
        elif lane_name:
            reason = f"lane {lane_name!r} names no known role"
        else:
            reason = "user task is in no lane" if tag == "userTask" else f"{tag} {_label(task)!r} is in no lane"
            if task.find(f"bpmn:extensionElements/{{{ZEEBE_NS}}}assignmentDefinition", NS) is not None:
                reason += "; zeebe:assignmentDefinition is not read: use a lane or camunda:candidateGroups"
        yield Problem(file, task_id, f"{reason} {_ROLE_HINT}")
    for field in task.iterfind(".//camunda:formField", NS):
        if field.get("type") not in FIELD_TYPES:
            yield Problem(file, task_id, f"form field {field.get('id')!r} has unknown type {field.get('type')!r}")
        if not field.get("id"):
            yield Problem(file, task_id, "a form field has no id")


def _gateway_problems(file: str, gateway, outgoing: list) -> Iterator[Problem]:
    """Every outgoing flow of an exclusive or inclusive gateway needs a condition, except the default flow."""
    if len(outgoing) < 2:
        return
    for flow in outgoing:
        if flow.get("id") != gateway.get("default") and flow.find("bpmn:conditionExpression", NS) is None:
            yield Problem(
                file,
                gateway.get("id"),
                f"{_tag(gateway)} {_label(gateway)!r}: outgoing flow {_label(flow)!r} has no condition and is not "
                "the default flow",
            )


def _service_task_problems(file: str, task) -> Iterator[Problem]:
    topic = task.get(f"{{{CAMUNDA_NS}}}topic")
    if topic in known_topics():
        return
    if topic:
        yield Problem(file, task.get("id"), f"no service is registered for topic {topic!r}")
        return
    label = _label(task)
    job = task.find(f"bpmn:extensionElements/{{{ZEEBE_NS}}}taskDefinition", NS)
    java = next((a for a in ("class", "delegateExpression", "expression") if task.get(f"{{{CAMUNDA_NS}}}{a}")), None)
    if job is not None:
        reason = f"serviceTask {label!r} has a Zeebe job type {job.get('type')!r}, which RehabFlow does not read"
    elif java:
        reason = f"serviceTask {label!r} calls camunda:{java}, which RehabFlow cannot run"
    else:
        reason = f"serviceTask {label!r} has no camunda:topic"
    known = ", ".join(sorted(known_topics())) or "none yet"
    yield Problem(file, task.get("id"), f"{reason}: set camunda:topic to a registered service ({known})")


def _script_task_problems(file: str, task) -> Iterator[Problem]:
    language = (task.get("scriptFormat") or "python").lower()
    script = task.findtext("bpmn:script", "", NS)
    if language not in {"python", "py", "text/x-python"}:
        yield Problem(file, task.get("id"), f"scriptTask {_label(task)!r} is written in {language}: scripts are Python")
    elif not script.strip() and task.find(f"bpmn:extensionElements/{{{ZEEBE_NS}}}script", NS) is None:
        yield Problem(file, task.get("id"), f"scriptTask {_label(task)!r} has no script")


def _check_bpmn(parsed: ParsedSource) -> list[Problem]:
    file, root = parsed.source.name, parsed.root
    process = next(p for p in root.iterfind("bpmn:process", NS) if p.get("id") == parsed.key)
    nodes = _flow_nodes(process)
    problems = list(_unsupported(file, root, process, nodes))
    lanes = {}
    for lane in process.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.findall("bpmn:flowNodeRef", NS):
            lanes[(ref.text or "").strip()] = lane.get("name") or ""
    flows = list(process.iter(f"{{{BPMN_NS}}}sequenceFlow"))
    outgoing: dict[str, list] = {}
    for flow in flows:
        outgoing.setdefault(flow.get("sourceRef"), []).append(flow)
    for node in nodes:
        tag, node_id = _tag(node), node.get("id")
        if tag in WORK_ITEM_TAGS:
            problems.extend(_work_item_problems(file, node, lanes))
            due = node.get(f"{{{CAMUNDA_NS}}}dueDate")
            if due and not ISO_DURATION.match(due.strip()):
                _check_script(problems, file, node_id, due, "eval", "due date expression")
        elif tag == "scriptTask":
            found = list(_script_task_problems(file, node))
            problems.extend(found)
            if not found:
                _check_script(problems, file, node_id, node.findtext("bpmn:script", "", NS), "exec", "script")
        elif tag == "serviceTask":
            problems.extend(_service_task_problems(file, node))
        elif tag in {"exclusiveGateway", "inclusiveGateway"}:
            problems.extend(_gateway_problems(file, node, outgoing.get(node_id, [])))
    for flow in flows:
        condition = flow.find("bpmn:conditionExpression", NS)
        if condition is not None:
            _check_script(problems, file, flow.get("id"), condition.text, "eval", "condition")
    for definition in process.iter(f"{{{BPMN_NS}}}timerEventDefinition"):
        event_id = definition.getparent().get("id")
        for child in definition:
            if isinstance(child.tag, str):
                _check_timer(problems, file, event_id, child.text)
    for definition in process.iter(f"{{{BPMN_NS}}}messageEventDefinition"):
        expression = definition.get(f"{{{CAMUNDA_NS}}}expression")
        _check_script(problems, file, definition.getparent().get("id"), expression, "eval", "message payload")
    return problems


def _check_timer(problems: list[Problem], file: str, event_id: str, text: str | None):
    expression = (text or "").strip()
    if not expression:
        problems.append(Problem(file, event_id, "timer has no expression"))
        return
    if ISO_DURATION.match(expression) or expression.startswith("R"):
        problems.append(
            Problem(file, event_id, f'timer expression must be a Python expression: write "{expression}" in quotes')
        )
        return
    _check_script(problems, file, event_id, expression, "eval", "timer expression")
    literal = expression[1:-1] if expression[:1] in "'\"" and expression[-1:] == expression[:1] else None
    if literal is not None and literal.startswith("P") and not ISO_DURATION.match(literal):
        problems.append(Problem(file, event_id, f"timer duration {literal!r} is not an ISO 8601 duration (e.g. P15D)"))


def _check_dmn(parsed: ParsedSource, namespace: str) -> list[Problem]:
    problems: list[Problem] = []
    file = parsed.source.name
    ns = {"dmn": namespace}
    for table in parsed.root.iterfind(".//dmn:decisionTable", ns):
        table_id = table.get("id") or parsed.key
        policy = table.get("hitPolicy", "UNIQUE")
        if policy not in HIT_POLICIES:
            problems.append(Problem(file, table_id, f"hit policy {policy} is not supported (UNIQUE, FIRST, COLLECT)"))
        inputs = table.findall("dmn:input", ns)
        outputs = table.findall("dmn:output", ns)
        if not outputs:
            problems.append(Problem(file, table_id, "decision table has no output"))
        for output in outputs:
            if not output.get("name"):
                problems.append(Problem(file, output.get("id") or table_id, "output has no name"))
        expressions = []
        for item in inputs:
            text = item.findtext("dmn:inputExpression/dmn:text", default="", namespaces=ns).strip()
            expressions.append(text)
            if not text:
                problems.append(Problem(file, item.get("id") or table_id, "input has no expression"))
            else:
                _check_script(problems, file, item.get("id"), text, "eval", "input expression")
        for rule in table.findall("dmn:rule", ns):
            entries = rule.findall("dmn:inputEntry", ns)
            if len(entries) != len(inputs):
                problems.append(
                    Problem(file, rule.get("id"), f"rule has {len(entries)} input cells, table has {len(inputs)}")
                )
            if len(rule.findall("dmn:outputEntry", ns)) != len(outputs):
                problems.append(Problem(file, rule.get("id"), "rule does not give every output"))
            for entry, expression in zip(entries, expressions, strict=False):
                _check_cell(problems, file, rule.get("id"), expression, entry.findtext("dmn:text", "", ns))
            for entry in rule.findall("dmn:outputEntry", ns):
                _check_script(problems, file, rule.get("id"), entry.findtext("dmn:text", "", ns), "eval", "output")
    return problems


def _check_cell(problems: list[Problem], file: str, rule_id: str | None, input_expression: str, cell: str):
    cell = (cell or "").strip()
    if not cell or cell == "-":
        return
    if "?" in cell:
        candidate = cell.replace("?", "dmninputexpr")
    elif _DMN_OPERATOR.match(cell):
        candidate = f"({input_expression or 'x'}) {cell}"
    else:
        candidate = f"({input_expression or 'x'}) == ({cell})"
    _check_script(problems, file, rule_id, candidate, "eval", f"input cell {cell!r}")


# --- building runnable specs --------------------------------------------------------------------------------


def _spiff_problem(file_by_key: dict[str, str], default_file: str, exc: Exception) -> Problem:
    file = getattr(exc, "file_name", "") or default_file
    element = getattr(exc, "id", None) or None
    message = str(exc.args[0]) if exc.args else str(exc)
    return Problem(file, element, message)


def _build_parser(parsed: list[ParsedSource]) -> RehabParser:
    parser = RehabParser()
    for item in sorted(parsed, key=lambda p: p.kind != DefinitionKind.DMN):  # decisions first
        if item.kind == DefinitionKind.DMN:
            parser.add_dmn_str(item.source.content.encode("utf-8"), filename=item.source.name)
        else:
            parser.add_bpmn_xml(_runnable_xml(item), filename=item.source.name)
    return parser


def _runnable_xml(item: ParsedSource):
    """The file as SpiffWorkflow should read it: its process marked executable (documentation tools export
    ``isExecutable="false"``, which SpiffWorkflow refuses to run). The stored file is left as it came."""
    root = copy.deepcopy(item.root)
    for process in root.iterfind("bpmn:process", NS):
        if process.get("id") == item.key:
            process.set("isExecutable", "true")
    return root


def validate(sources: list[SourceFile]) -> tuple[list[ParsedSource], list[Problem]]:
    """Check files as a deploy would, against the latest deployed versions of everything they call.

    Returns the parsed files and every problem found (an empty list means the set can be deployed).
    """
    parsed: list[ParsedSource] = []
    problems: list[Problem] = []
    for source in sources:
        item, found = _parse_xml(source)
        problems.extend(found)
        if item is not None:
            parsed.append(item)
            if item.kind == DefinitionKind.BPMN:
                problems.extend(_check_bpmn(item))
    keys: dict[str, str] = {}
    for item in parsed:
        if item.key in keys:
            problems.append(Problem(item.source.name, item.key, f"{item.key!r} is also defined in {keys[item.key]}"))
        keys[item.key] = item.source.name
    if problems:
        return parsed, problems

    # Everything the new files call, as deployed now (new files win), so references resolve.
    closure = {p.key: p for p in parsed}
    missing = {d for p in parsed for d in p.dependencies if d not in closure}
    for definition in latest_definitions_closure(missing):
        if definition.key not in closure:
            item, _ = _parse_xml(SourceFile(definition.file_name, definition.xml))
            closure[definition.key] = item
    for item in parsed:
        for dep in item.dependencies:
            if dep not in closure:
                problems.append(
                    Problem(item.source.name, None, f"calls {dep!r}, which is neither deployed nor in this deploy")
                )
    if problems:
        return parsed, problems
    try:
        parser = _build_parser(list(closure.values()))
        for item in parsed:
            if item.kind == DefinitionKind.BPMN:
                # Serialize too: a spec the parser builds but the serializer cannot store would fail at first start.
                dump_specs(parser.get_spec(item.key), parser.get_subprocess_specs(item.key))
    except (
        ValidationException,
        SpiffWorkflowException,
        KeyError,
        ValueError,
        SyntaxError,
        TypeError,
        NotImplementedError,
    ) as exc:
        problems.append(_spiff_problem(keys, parsed[0].source.name if parsed else "", exc))
    return parsed, problems


def deploy(sources: list[SourceFile], actor_id: int | None = None) -> DeployResult:
    """Store a new immutable version of every changed file; all or nothing.

    Raises:
        InvalidDefinition: with every problem found; nothing is stored.
    """
    parsed, problems = validate(sources)
    if problems:
        raise InvalidDefinition(problems)
    deployed, unchanged = [], []
    for item in parsed:
        latest = latest_definition(item.key)
        if latest is not None and latest.sha256 == item.source.sha256:
            unchanged.append(latest)
            continue
        definition = ProcessDefinition(
            key=item.key,
            kind=item.kind,
            name=item.name,
            version=(latest.version + 1) if latest else 1,
            sha256=item.source.sha256,
            file_name=item.source.name,
            xml=item.source.content,
            dependencies=item.dependencies,
            start_messages=item.start_messages,
            user_tasks=item.user_tasks,
            deployed_at=now(),
            deployed_by_id=actor_id,
        )
        db.session.add(definition)
        deployed.append(definition)
    db.session.flush()
    for definition in deployed:
        record(
            "definition_deployed",
            actor_id=actor_id,
            payload={
                "key": definition.key,
                "version": definition.version,
                "sha256": definition.sha256,
                "file": definition.file_name,
            },
        )
    return DeployResult(deployed=deployed, unchanged=unchanged)


# --- queries --------------------------------------------------------------------------------------------------


def latest_definition(key: str) -> ProcessDefinition | None:
    """The newest version of ``key``, or None if it was never deployed."""
    return db.session.scalars(
        select(ProcessDefinition)
        .where(ProcessDefinition.key == key)
        .order_by(ProcessDefinition.version.desc())
        .limit(1)
    ).first()


def _latest_of(keys=None) -> Select:
    newest = select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version")).group_by(
        ProcessDefinition.key
    )
    if keys is not None:
        newest = newest.where(ProcessDefinition.key.in_(keys))
    newest = newest.subquery()
    return (
        select(ProcessDefinition)
        .join(newest, (ProcessDefinition.key == newest.c.key) & (ProcessDefinition.version == newest.c.version))
        .order_by(ProcessDefinition.key)
    )


_LATEST_OF_KEYS = _latest_of(bindparam("keys", expanding=True))  # built once: every start asks it


def latest_definitions(keys: set[str] | None = None) -> list[ProcessDefinition]:
    """The newest version of each key (of every key when ``keys`` is None)."""
    if keys is None:
        return list(db.session.scalars(_latest_of()))
    if not keys:
        return []
    return list(db.session.scalars(_LATEST_OF_KEYS, {"keys": sorted(keys)}))


def latest_definitions_closure(keys: set[str]) -> list[ProcessDefinition]:
    """The newest versions of ``keys`` and of everything they call, transitively."""
    found: dict[str, ProcessDefinition] = {}
    todo = set(keys)
    while todo:
        batch = latest_definitions(todo)
        for definition in batch:
            found[definition.key] = definition
        todo = {dep for d in batch for dep in d.dependencies} - set(found)
    return list(found.values())


def processes_started_by(message_name: str) -> list[ProcessDefinition]:
    """Latest process versions with a message start event for ``message_name``."""
    return [d for d in latest_definitions() if d.kind == DefinitionKind.BPMN and message_name in d.start_messages]


# --- bundles --------------------------------------------------------------------------------------------------


#: The newest version of one process: what a start needs, read straight on the driver (app.core.direct).
_NEWEST_OF_KEY = direct.Direct(
    select(
        ProcessDefinition.id,
        ProcessDefinition.kind,
        ProcessDefinition.version,
        ProcessDefinition.sha256,
        ProcessDefinition.dependencies,
    )
    .where(ProcessDefinition.key == bindparam("key"))
    .order_by(ProcessDefinition.version.desc())
    .limit(1)
)


#: key -> (sha256 of a self-contained version, its bundle's sha256) last found stored: a guess checked in the same
#: round trip as the newest version (a pure function's result kept in this process, not state)
_known_bundles: dict[str, tuple[str, str]] = {}


def bundle_for(key: str, along: Sequence[direct.Call] = ()) -> tuple[int, int, str, list[direct.Outcome]]:
    """The newest version of process ``key`` (its id and version number) and the sha256 of its runnable bundle
    (built once per content); ``along``: the caller's statements, sent in the same round trip, and their outcomes."""
    calls = [*along, direct.Call(_NEWEST_OF_KEY, {"key": key})]
    known = _known_bundles.get(key)
    if known is not None:
        calls.append(direct.Call(_BUNDLE_STORED, {"sha256": known[1]}))
    outcomes = direct.run(db.session.connection(), calls)
    theirs, (newest, *known_stored) = outcomes[: len(along)], outcomes[len(along) :]
    if not newest.rows:
        raise NotFound(f"no deployed process or decision {key!r}")
    definition_id, kind, version, sha256, dependencies = newest.rows[0]
    if kind != DefinitionKind.BPMN:
        raise NotFound(f"{key!r} is a decision, not a process")
    if not dependencies:  # calls nothing: the bundle is named by this one version, stored since its first start
        if known is not None and known[0] == sha256 and known_stored[0].rows:
            return definition_id, version, known[1], theirs
        digest = _digest({key: sha256})
        if _stored(digest):
            _known_bundles[key] = (sha256, digest)
            return definition_id, version, digest, theirs
    closure = {d.key: d for d in latest_definitions_closure({key})}
    definition = closure[key]  # read again with what it calls: all of one moment
    return definition.id, definition.version, _bundle(key, closure), theirs


def bundle_for_definition(definition: ProcessDefinition, *, store: bool = True) -> str:
    """The sha256 of the runnable bundle of one given process version (used to move instances onto it).

    What it calls resolves to the latest deployed versions, as at deploy. With ``store=False`` nothing is written:
    a bundle not stored yet is built and kept in this process's cache only, so :func:`specs_of` can read it.
    """
    closure = {d.key: d for d in latest_definitions_closure(set(definition.dependencies))}
    closure[definition.key] = definition
    return _bundle(definition.key, closure, store=store)


_BUNDLE_STORED = direct.Direct(select(SpecBundle.sha256).where(SpecBundle.sha256 == bindparam("sha256")))


def _stored(digest: str) -> bool:
    return bool(direct.run(db.session.connection(), [direct.Call(_BUNDLE_STORED, {"sha256": digest})])[0].rows)


def _digest(sha256_by_key: dict[str, str]) -> str:
    """A bundle's name: the sha256 over the sha256s of the definition versions it is built from."""
    return hashlib.sha256("|".join(f"{k}:{sha256_by_key[k]}" for k in sorted(sha256_by_key)).encode()).hexdigest()


def _bundle(key: str, closure: dict[str, ProcessDefinition], store: bool = True) -> str:
    digest = _digest({k: d.sha256 for k, d in closure.items()})
    if not store and digest in _spec_cache:
        return digest
    if _stored(digest):
        return digest
    parsed = [_parse_xml(SourceFile(d.file_name, d.xml))[0] for d in closure.values()]
    parser = _build_parser(parsed)
    content = dump_specs(parser.get_spec(key), parser.get_subprocess_specs(key))
    if not store:
        _spec_cache[digest] = load_specs(content)
        return digest
    try:
        with db.session.begin_nested():
            db.session.add(SpecBundle(sha256=digest, content=content, created_at=now()))
    except IntegrityError:  # another process stored the same bundle first
        pass
    return digest


_spec_cache: "OrderedDict[str, tuple]" = OrderedDict()
_SPEC_CACHE_SIZE = 256


def specs_of(bundle_sha256: str):
    """Deserialized (spec, subprocess_specs) of a bundle.

    Bundles are immutable and named by their content hash, so the parsed objects are cached per process
    (a cache, not state: every process rebuilds the same objects from the same row).
    """
    cached = _spec_cache.get(bundle_sha256)
    if cached is not None:
        _spec_cache.move_to_end(bundle_sha256)
        return cached
    content = db.session.scalar(select(SpecBundle.content).where(SpecBundle.sha256 == bundle_sha256))
    if content is None:
        raise NotFound(f"spec bundle {bundle_sha256} is missing")
    specs = load_specs(content)
    _spec_cache[bundle_sha256] = specs
    if len(_spec_cache) > _SPEC_CACHE_SIZE:
        _spec_cache.popitem(last=False)
    return specs


_service_specs: dict[str, bool] = {}


def has_service_tasks(bundle_sha256: str) -> bool:
    """Whether a bundle's processes contain service tasks (which write to the database while steps run)."""
    found = _service_specs.get(bundle_sha256)
    if found is None:
        spec, subprocess_specs = specs_of(bundle_sha256)
        found = any(
            isinstance(task_spec, TopicServiceTask)
            for process in (spec, *subprocess_specs.values())
            for task_spec in process.task_specs.values()
        )
        _service_specs[bundle_sha256] = found
    return found
