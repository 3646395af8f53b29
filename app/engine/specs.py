"""Definitions: validate BPMN/DMN, deploy immutable versions, and build the runnable spec bundles."""

import dataclasses
import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.exceptions import SpiffWorkflowException
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.audit.log import record
from app.auth.roles import role_for_lane
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
    processes = root.findall("bpmn:process", NS)
    executable = [p for p in processes if p.get("isExecutable", "true") != "false"] or processes
    if len(executable) != 1:
        return None, [Problem(source.name, None, f"one executable process per file, found {len(executable)}")]
    process = executable[0]
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
        name=process.get("name") or process.get("id"),
        dependencies=sorted(deps),
        start_messages=sorted(m for m in start_messages if m),
        root=root,
        user_tasks=user_tasks_of(process),
    )
    return parsed, []


def user_tasks_of(process) -> list[list[str]]:
    """[[id, name], ...] of the user tasks in a <bpmn:process> element, subprocesses included."""
    return [[el.get("id"), el.get("name") or el.get("id")] for el in process.iter(f"{{{BPMN_NS}}}userTask")]


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


def _check_script(problems: list[Problem], file: str, element_id: str | None, source: str | None, mode: str, what: str):
    if not source or not source.strip():
        return
    reason = check_script(source.strip(), mode)
    if reason:
        problems.append(Problem(file, element_id, f"{what}: {reason}"))


#: Elements SpiffWorkflow's Camunda parser reads but cannot store, with what to use instead.
UNSUPPORTED = {
    "receiveTask": "use an intermediate catch event with a message definition",
    "sendTask": "use an intermediate throw event with a message definition",
    "eventBasedGateway": "use boundary events on a user task, or separate processes started by messages",
}


def _check_bpmn(parsed: ParsedSource) -> list[Problem]:
    problems: list[Problem] = []
    file, root = parsed.source.name, parsed.root
    for tag, instead in UNSUPPORTED.items():
        for element in root.iter(f"{{{BPMN_NS}}}{tag}"):
            problems.append(Problem(file, element.get("id"), f"{tag} is not supported: {instead}"))
    lanes = {}
    for lane in root.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.findall("bpmn:flowNodeRef", NS):
            lanes[(ref.text or "").strip()] = lane.get("name") or ""
    for task in root.iter(f"{{{BPMN_NS}}}userTask"):
        task_id = task.get("id")
        groups = task.get(f"{{{CAMUNDA_NS}}}candidateGroups")
        role = role_for_lane(groups) if groups else role_for_lane(lanes.get(task_id))
        if role is None:
            lane_name = lanes.get(task_id)
            reason = f"lane {lane_name!r} names no known role" if lane_name else "user task is in no lane"
            problems.append(Problem(file, task_id, reason + " (caseworker, police, cadre, medical, supervisor, ...)"))
        for field in task.iterfind(".//camunda:formField", NS):
            if field.get("type") not in FIELD_TYPES:
                problems.append(
                    Problem(file, task_id, f"form field {field.get('id')!r} has unknown type {field.get('type')!r}")
                )
            if not field.get("id"):
                problems.append(Problem(file, task_id, "a form field has no id"))
        due = task.get(f"{{{CAMUNDA_NS}}}dueDate")
        if due and not ISO_DURATION.match(due.strip()):
            _check_script(problems, file, task_id, due, "eval", "due date expression")
    for script_task in root.iter(f"{{{BPMN_NS}}}scriptTask"):
        script = script_task.find("bpmn:script", NS)
        _check_script(
            problems, file, script_task.get("id"), script.text if script is not None else "", "exec", "script"
        )
    for flow in root.iter(f"{{{BPMN_NS}}}sequenceFlow"):
        condition = flow.find("bpmn:conditionExpression", NS)
        if condition is not None:
            _check_script(problems, file, flow.get("id"), condition.text, "eval", "condition")
    for definition in root.iter(f"{{{BPMN_NS}}}timerEventDefinition"):
        event_id = definition.getparent().get("id")
        for child in definition:
            _check_timer(problems, file, event_id, child.text)
    for definition in root.iter(f"{{{BPMN_NS}}}messageEventDefinition"):
        expression = definition.get(f"{{{CAMUNDA_NS}}}expression")
        _check_script(problems, file, definition.getparent().get("id"), expression, "eval", "message payload")
    for service_task in root.iter(f"{{{BPMN_NS}}}serviceTask"):
        topic = service_task.get(f"{{{CAMUNDA_NS}}}topic")
        if topic not in known_topics():
            problems.append(Problem(file, service_task.get("id"), f"no service is registered for topic {topic!r}"))
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
            parser.add_bpmn_str(item.source.content.encode("utf-8"), filename=item.source.name)
    return parser


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
                parser.get_spec(item.key)
                parser.get_subprocess_specs(item.key)
    except (ValidationException, SpiffWorkflowException, KeyError, ValueError, SyntaxError) as exc:
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


def latest_definitions(keys: set[str] | None = None) -> list[ProcessDefinition]:
    """The newest version of each key (of every key when ``keys`` is None)."""
    newest = select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version")).group_by(
        ProcessDefinition.key
    )
    if keys is not None:
        if not keys:
            return []
        newest = newest.where(ProcessDefinition.key.in_(keys))
    newest = newest.subquery()
    return list(
        db.session.scalars(
            select(ProcessDefinition)
            .join(newest, (ProcessDefinition.key == newest.c.key) & (ProcessDefinition.version == newest.c.version))
            .order_by(ProcessDefinition.key)
        )
    )


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


def bundle_for(key: str) -> tuple[ProcessDefinition, str]:
    """The newest version of process ``key`` and the sha256 of its runnable bundle (built once per content)."""
    closure = {d.key: d for d in latest_definitions_closure({key})}
    definition = closure.get(key)
    if definition is None:
        raise NotFound(f"no deployed process or decision {key!r}")
    if definition.kind != DefinitionKind.BPMN:
        raise NotFound(f"{key!r} is a decision, not a process")
    digest = hashlib.sha256("|".join(f"{k}:{closure[k].sha256}" for k in sorted(closure)).encode()).hexdigest()
    if db.session.scalar(select(SpecBundle.sha256).where(SpecBundle.sha256 == digest)):
        return definition, digest
    parsed = [_parse_xml(SourceFile(d.file_name, d.xml))[0] for d in closure.values()]
    parser = _build_parser(parsed)
    content = dump_specs(parser.get_spec(key), parser.get_subprocess_specs(key))
    try:
        with db.session.begin_nested():
            db.session.add(SpecBundle(sha256=digest, content=content, created_at=now()))
    except IntegrityError:  # another process stored the same bundle first
        pass
    return definition, digest


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
