"""Moving running instances of one deployed version onto another version of the same process.

A dry run (:func:`check_migration`) moves each instance in memory and reports whether it can move and what would
change; :func:`migrate_instance` does the same inside the caller's transaction and saves it. How an instance moves:

- Elements are matched by their BPMN id; an element the target lacks is matched only through ``mapping`` (old
  element id -> new element id). SpiffWorkflow's ``diff_workflow`` is not used for matching: it pairs a removed
  task with a new one at the same place in the flow, so a token would silently move to a different task.
- Open user tasks keep their SpiffWorkflow task id (``migrate_workflow`` resets READY tasks in place), so their
  work item, claim and drafts stay as they are; the item's name, form, role and documentation follow the target.
  Only when the boundary events around an open task appear (or it moves to an element that has them) is the
  task rebuilt with a new task id; its work item is then re-keyed to the new task, claim and drafts included.
- Waiting timers keep their due time when their definition did not change (a legal deadline does not restart
  because the diagram was redeployed). A changed timer is evaluated again as if it had started when the old one
  did; a timer new in the target (an added boundary event) starts at the migration. The same holds for the
  due date of open tasks.
- Completed steps the target no longer has are cut out of the stored state (their audit events remain); waiting
  boundary events the target no longer has are cancelled; a token waiting at a removed element blocks the move.
- Called processes move to their latest deployed versions, as the target's bundle resolves them.
"""

import json
import logging
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import CallActivity, SubWorkflowTask
from SpiffWorkflow.bpmn.util.diff import migrate_workflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select, update
from sqlalchemy.orm.exc import StaleDataError

from app.core.clock import now
from app.core.db import transaction
from app.engine import specs
from app.engine.clock import engine_time
from app.engine.errors import Conflict, EngineError, NotFound, NotRunnable
from app.engine.models import (
    DefinitionKind,
    InstanceStatus,
    MessageSubscription,
    ProcessDefinition,
    ProcessInstance,
    Timer,
    TimerStatus,
    WorkItem,
    WorkItemStatus,
)
from app.engine.projection import _new_work_item, audit, project, snapshot
from app.engine.runtime import _lock_instance, _script_engine, _send, _StepGuard
from app.engine.serialization import dump_state, load_state, registry
from app.extensions import db

log = logging.getLogger(__name__)

#: Instances read per query by a dry run.
CHECK_CHUNK = 200
#: Work item columns that follow the target's definition of the task.
ITEM_FIELDS = ("element_id", "name", "lane", "candidate_role", "legal_basis", "form", "documentation")

_SPLIT = ".BoundaryEventSplit"
_PREDICTED = TaskState.MAYBE | TaskState.LIKELY | TaskState.FUTURE
_PAST = TaskState.COMPLETED | TaskState.CANCELLED
_OPEN = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR


@dataclass(frozen=True)
class MigrationCheck:
    """Whether one instance can move to the target version, and what moving it changes (or changed)."""

    instance_id: int
    case_id: int
    can_move: bool
    #: Why it cannot move (one sentence per obstacle); None when it can.
    reason: str | None = None
    #: Short lines for people: "open task b kept", "timer report_late kept, due ...", "task b mapped to b2".
    changes: list[str] = field(default_factory=list)
    #: Element ids the instance waits at now (open tasks, waiting events, running call activities).
    waiting: list[str] = field(default_factory=list)
    #: Element ids it waits at that the target lacks and the mapping does not cover.
    missing: list[str] = field(default_factory=list)
    from_version: int | None = None
    to_version: int | None = None


class _Blocked(Exception):
    def __init__(self, reasons: list[str], missing: list[str]):
        self.reasons = reasons
        self.missing = missing
        super().__init__("; ".join(reasons))


class _Alignment:
    """What ``migrate_workflow`` reads from a WorkflowDiff: task -> task spec in the new version."""

    def __init__(self, alignment: dict):
        self.alignment = alignment


@dataclass
class _Moved:
    workflow: object
    changes: list[str]
    #: Old task id -> new task id, for open tasks and timers rebuilt under new boundary events.
    rekeyed: dict[str, str]
    #: Waiting event task ids removed without a successor (their timer rows are cancelled).
    dropped: set[str]
    #: New task ids of open tasks whose due date follows a changed definition.
    due_changed: set[str]
    #: Messages thrown by engine steps that had to run after the move (a changed timer already due).
    events: list


# --- moving a workflow (no database) --------------------------------------------------------------------------


def _label(task) -> str:
    return task.task_spec.bpmn_id or task.task_spec.name


def _kind(spec) -> str:
    if isinstance(spec, BoundaryEvent) or hasattr(spec, "event_definition"):
        definition = spec.event_definition
        if isinstance(definition, TimerEventDefinition):
            return "timer"
        if isinstance(definition, MessageEventDefinition):
            return "message event"
        return "event"
    if isinstance(spec, SubWorkflowTask):
        return "call activity"
    return "task" if spec.manual else "step"


def _definition_json(spec) -> str:
    return json.dumps(registry.convert(spec.event_definition), sort_keys=True, default=str)


def _due_date(spec) -> str | None:
    return getattr(spec, "extensions", {}).get("dueDate")


def _due(task) -> str:
    return _due_value(task._get_internal_data("event_value"))


def _due_value(value) -> str:
    if isinstance(value, dict):  # cycle timers keep {"next": ...}
        value = value.get("next")
    if not value:
        return "?"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M %Z").strip()


def _waiting_tokens(workflow) -> list:
    """Tasks that hold a token: open user tasks, waiting events, running call activities and subprocesses."""
    found = []
    for level in (workflow, *workflow.subprocesses.values()):
        for task in level.tasks.values():
            if not task.task_spec.bpmn_id:
                continue
            if (task.state == TaskState.READY and task.task_spec.manual) or task.state == TaskState.WAITING:
                found.append(task)
            elif task.state == TaskState.STARTED and isinstance(task.task_spec, SubWorkflowTask):
                found.append(task)
    return found


def _waiting_elements(workflow) -> list[str]:
    return list(dict.fromkeys(task.task_spec.bpmn_id for task in _waiting_tokens(workflow)))


def _splice(level, task) -> None:
    """Cut a finished task out of the tree, its children taking its place under its parent."""
    parent = task.parent
    children = list(task._children)
    if parent is not None:
        index = parent._children.index(task.id)
        parent._children[index : index + 1] = children
    for child in task.children:
        child._parent = parent.id if parent is not None else None
    if level.task_tree is task and len(children) == 1:
        level.task_tree = level.tasks[children[0]]
    level.tasks.pop(task.id)
    top = level.top_workflow if hasattr(level, "top_workflow") else level
    if task.id in top.subprocesses:
        top.delete_subprocess(task)


def _remove(level, task) -> None:
    """Remove a task and everything below it (predicted paths, cancelled waiting events)."""
    if task.id not in level.tasks:
        return
    top = getattr(level, "top_workflow", level)
    for each in list(task):
        if each.id in top.subprocesses:
            top.delete_subprocess(each)
        top.event_manager.remove_task(each)
    level._remove_task(task.id)


class _Move:
    """One instance's move; collects everything that blocks it before changing anything."""

    def __init__(self, workflow, new_spec, new_deps, mapping, version: int, at: datetime, start_of):
        self.workflow = workflow
        self.new_spec = new_spec
        self.new_deps = new_deps
        self.mapping = mapping or {}
        self.version = version
        self.at = at
        #: task id -> when its timer started waiting (the projected row's created_at), or None.
        self.start_of = start_of
        self.changes: list[str] = []
        self.reasons: list[str] = []
        self.missing: list[str] = []
        self.rekeyed: dict[str, str] = {}
        self.dropped: set[str] = set()
        self.due_changed: set[str] = set()
        #: task id -> (event definition json, event value) of waiting timers before the move.
        self.timers_before: dict = {}
        self.messages_before: dict = {}
        self.tokens_before: dict = {}
        #: new boundary event task id -> the old one it replaces (rebuilt around a task).
        self.carried_to: dict = {}
        #: boundary event task ids added around an open task.
        self.added: set = set()

    # -- planning ---------------------------------------------------------------------------------------------

    def _block(self, reason: str, element: str | None = None) -> None:
        self.reasons.append(reason)
        if element:
            self.missing.append(element)

    def _target(self, task, new, prefix: str, what: str):
        spec = task.task_spec
        element = spec.bpmn_id
        if element and element in self.mapping:
            target = new.task_specs.get(self.mapping[element])
            if target is None:
                self._block(
                    f"{prefix}the mapping sends '{element}' to '{self.mapping[element]}', which {what} does not have",
                    element,
                )
                return False
            return target
        return new.task_specs.get(spec.name)

    def _levels(self):
        """(workflow or subprocess, its spec in the target, prefix for change lines, what the target is called)."""
        here = f"version {self.version}"
        levels = [(self.workflow, self.new_spec, "", here)]
        for owner_id, sub in list(self.workflow.subprocesses.items()):
            owner = self.workflow.get_task_from_id(owner_id)
            label = owner.task_spec.bpmn_id if owner is not None else sub.spec.name
            new = self.new_deps.get(sub.spec.name)
            if new is None:
                kept = owner is not None and self.new_spec.task_specs.get(self.mapping.get(label, label)) is not None
                if not sub.completed and kept:
                    self._block(
                        f"'{label}' calls another process in {here}; let the work inside it finish first", label
                    )
                continue  # a finished one is dropped below; a removed owner blocks by itself
            called = owner is not None and isinstance(owner.task_spec, CallActivity)
            what = f"the deployed version of '{sub.spec.name}'" if called else here
            levels.append((sub, new, f"in {label}: ", what))
        return levels

    def _plan(self, level, new, prefix, what):
        align, splice, remove, drop, relocate = {}, [], [], [], []
        for task in list(level.tasks.values()):
            target = self._target(task, new, prefix, what)
            spec = task.task_spec
            if target is False:
                continue
            if target is not None:
                align[task] = target
                if task.state & _OPEN and type(target) is not type(spec) and spec.bpmn_id:
                    self._block(
                        f"{prefix}'{spec.bpmn_id}' is a {_kind(spec)} here and '{target.name}' a {_kind(target)} "
                        f"in {what}; map it to an element of the same kind",
                        spec.bpmn_id,
                    )
                continue
            parent = task.parent
            if task.state & _PAST:
                splice.append(task)
            elif task.state & _PREDICTED and (parent is None or not parent.state & _PAST):
                remove.append(task)
            elif task.state == TaskState.WAITING and isinstance(spec, BoundaryEvent):
                drop.append(task)
            elif spec.bpmn_id:
                self._block(
                    f"{prefix}waiting at '{spec.bpmn_id}', which {what} does not have; map it to an element of {what}",
                    spec.bpmn_id,
                )
            else:
                owner = spec.name.split(".")[0]
                self._block(
                    f"{prefix}a path around '{owner}' is still open and {what} changed that part of the diagram; "
                    "let the open work there finish first",
                    owner,
                )
        for task, target in align.items():
            unit = self._relocation_unit(task, target, new, prefix)
            if unit is not None:
                relocate.append((task, target, unit))
        return align, splice, remove, drop, relocate

    def _relocation_unit(self, task, target, new, prefix):
        """The subtree to rebuild when the boundary events around an open task do not fit the target; else None."""
        if not task.state & _OPEN or isinstance(task.task_spec, BoundaryEvent) or not task.task_spec.bpmn_id:
            return None
        wants = new.task_specs.get(target.name + _SPLIT)
        parent = task.parent
        under = parent is not None and isinstance(parent.task_spec, BoundaryEventSplit)
        if under and parent.task_spec.name == target.name + _SPLIT and wants is not None:
            return None  # same boundary split: events added or removed around the task in place
        if not under and wants is None:
            return None
        if under and wants is None and parent.task_spec.name not in new.task_specs:
            return None  # the split leaves the tree and its events are cancelled; the task stays where it is
        element = task.task_spec.bpmn_id
        if task.state not in (TaskState.READY, TaskState.WAITING):
            self._block(
                f"{prefix}the boundary events around '{element}' changed while it runs; "
                "it can move once it has finished",
                element,
            )
            return None
        unit = parent if under else task
        for other in unit:
            if other is task or other.state & (_PREDICTED | _PAST):
                continue
            if other.parent is unit and other.state == TaskState.WAITING and isinstance(other.task_spec, BoundaryEvent):
                continue
            self._block(
                f"{prefix}the boundary events around '{element}' changed and '{_label(other)}', started by one of "
                "them, is still open; let it finish first",
                element,
            )
            return None
        return unit

    # -- moving -----------------------------------------------------------------------------------------------

    def run(self):
        self._remember()
        levels = self._levels()
        plans = [(level, new, prefix, self._plan(level, new, prefix, what)) for level, new, prefix, what in levels]
        if self.reasons:
            raise _Blocked(list(dict.fromkeys(self.reasons)), list(dict.fromkeys(self.missing)))
        for owner_id, sub in list(self.workflow.subprocesses.items()):
            if sub.spec.name not in self.new_deps and sub.completed:
                owner = self.workflow.get_task_from_id(owner_id)
                if owner is not None:
                    self.workflow.delete_subprocess(owner)
        rebuilt = []
        for level, new, prefix, (align, splice, remove, drop, relocate) in plans:
            rebuilt.extend(self._apply(level, new, prefix, align, splice, remove, drop, relocate))
        self.workflow.subprocess_specs = self.new_deps
        for level, _new, prefix, (align, *_rest) in plans:
            self._describe_tokens(level, prefix, align)
        for args in rebuilt:
            self._rebuild(*args)
        for level, new, prefix, _plan in plans:
            self._add_boundary_events(level, new, prefix)
        self._settle_timers()
        self._check(levels)

    def _remember(self):
        for task in _waiting_tokens(self.workflow):
            definition = getattr(task.task_spec, "event_definition", None)
            if isinstance(definition, TimerEventDefinition):
                self.timers_before[task.id] = (
                    _definition_json(task.task_spec),
                    deepcopy(task._get_internal_data("event_value")),
                    task.task_spec.bpmn_id,
                )
            elif isinstance(definition, MessageEventDefinition):
                self.messages_before[task.id] = definition.name
        self.tokens_before = {task.id: task.task_spec for task in _waiting_tokens(self.workflow)}

    def _apply(self, level, new, prefix, align, splice, remove, drop, relocate):
        inside = {each.id for _task, _target, unit in relocate for each in unit}
        history = []
        for task in splice:
            if task.id in inside or task.id not in level.tasks:
                continue
            if task.task_spec.bpmn_id:
                history.append(task.task_spec.bpmn_id)
            _splice(level, task)
        for element in dict.fromkeys(history):
            self.changes.append(
                f"{prefix}finished step {element} is not in version {self.version}: "
                "it leaves the stored state (its audit events remain)"
            )
        rebuilt = []
        for task, target, unit in relocate:
            rebuilt.append(self._take_out(level, task, target, unit, new, prefix))
        for task in drop:
            if task.id in inside or task.id not in level.tasks:
                continue
            self.dropped.add(str(task.id))
            self.changes.append(
                f"{prefix}{_kind(task.task_spec)} {_label(task)} removed (not in version {self.version})"
            )
            _remove(level, task)
        for task in remove:
            _remove(level, task)
        migrate_workflow(_Alignment(align), level, new, reset_mask=TaskState.READY)
        return rebuilt

    def _take_out(self, level, task, target, unit, new, prefix):
        """Remove an open task (with the boundary events around it) so it can be rebuilt around the target."""
        anchor = unit.parent
        carried = {}
        if unit is not task:
            for event in unit.children:
                if event.state == TaskState.WAITING and isinstance(event.task_spec, BoundaryEvent):
                    carried[event.task_spec.bpmn_id] = event.id
        data = deepcopy(task.data)
        old_id = task.id
        _remove(level, unit)
        for event_id in carried.values():
            if event_id in self.timers_before or event_id in self.messages_before:
                self.dropped.add(str(event_id))
        return level, new, prefix, anchor, old_id, task.task_spec, target, data, carried

    def _rebuild(self, level, new, prefix, anchor, old_id, old_spec, target, data, carried):
        split = new.task_specs.get(target.name + _SPLIT)
        entry = split if split is not None else target
        child = anchor._add_child(entry, TaskState.FUTURE)
        child.data = data
        entry._predict(child, mask=TaskState.PREDICTED_MASK | TaskState.FUTURE)  # as Task.reset_branch does
        entry._update(child)
        main = child
        if split is not None:
            child.run()
            main = next(c for c in child.children if c.task_spec is target)
            if main.state & _PREDICTED:
                target._update(main)
            for event in child.children:
                previous = carried.get(event.task_spec.bpmn_id)
                if previous is not None and event.state == TaskState.WAITING:
                    self.rekeyed[str(previous)] = str(event.id)
                    self.dropped.discard(str(previous))
                    self.carried_to[event.id] = previous
        self.rekeyed[str(old_id)] = str(main.id)
        if _due_date(old_spec) != _due_date(target):
            self.due_changed.add(str(main.id))
        moved = f" moved to {target.bpmn_id}" if old_spec.bpmn_id != target.bpmn_id else ""
        self.changes.append(
            f"{prefix}open {_kind(target)} {old_spec.bpmn_id}{moved} rebuilt with the boundary events of version "
            f"{self.version} (its work item and claim are kept)"
        )

    def _describe_tokens(self, level, prefix, align):
        for task, target in align.items():
            if task.id not in level.tasks or task.id not in self.tokens_before:
                continue
            old = self.tokens_before[task.id]
            if isinstance(getattr(old, "event_definition", None), TimerEventDefinition):
                continue  # timers are described once settled
            kind = _kind(old)
            if old.bpmn_id != target.bpmn_id:
                self.changes.append(f"{prefix}{kind} {old.bpmn_id} mapped to {target.bpmn_id}")
            else:
                self.changes.append(f"{prefix}open {kind} {old.bpmn_id} kept")
            if task.state == TaskState.READY and _due_date(old) != _due_date(target):
                self.due_changed.add(str(task.id))
            name = self.messages_before.get(task.id)
            definition = getattr(target, "event_definition", None)
            if name is not None and isinstance(definition, MessageEventDefinition) and definition.name != name:
                self.changes.append(f"{prefix}{target.bpmn_id} now waits for message '{definition.name}'")

    def _add_boundary_events(self, level, new, prefix):
        for split in list(level.tasks.values()):
            if not isinstance(split.task_spec, BoundaryEventSplit) or split.state != TaskState.COMPLETED:
                continue
            if split.task_spec is not new.task_specs.get(split.task_spec.name):
                continue
            main = next((c for c in split.children if not isinstance(c.task_spec, BoundaryEvent)), None)
            if main is None or not main.state & _OPEN:
                continue
            present = {c.task_spec for c in split.children}
            for spec in split.task_spec.outputs:
                if isinstance(spec, BoundaryEvent) and spec not in present:
                    event = split._add_child(spec, TaskState.MAYBE)
                    spec._update(event)
                    if event.state == TaskState.WAITING:
                        self.added.add(event.id)
                        if not isinstance(spec.event_definition, TimerEventDefinition):
                            self.changes.append(
                                f"{prefix}{_kind(spec)} {spec.bpmn_id} added (new in version {self.version})"
                            )

    def _settle_timers(self):
        carried_to = self.carried_to
        for level in (self.workflow, *self.workflow.subprocesses.values()):
            prefix = "" if level is self.workflow else f"in {self._owner_label(level)}: "
            for task in list(level.tasks.values()):
                definition = getattr(task.task_spec, "event_definition", None)
                if task.state != TaskState.WAITING or not isinstance(definition, TimerEventDefinition):
                    continue
                before_id = carried_to.get(task.id, task.id)
                element = task.task_spec.bpmn_id
                before = self.timers_before.get(before_id)
                if before is None:
                    if task._get_internal_data("event_value") is None:
                        self._evaluate(task, self.at)
                    self.changes.append(
                        f"{prefix}timer {element} started (new in version {self.version}), due {_due(task)}"
                    )
                    continue
                old_json, old_value, old_element = before
                moved = f" (was {old_element})" if old_element != element else ""
                if old_json == _definition_json(task.task_spec):
                    task.internal_data.pop("event_fired", None)
                    task._set_internal_data(event_value=deepcopy(old_value))
                    self.changes.append(f"{prefix}timer {element}{moved} kept, due {_due(task)}")
                    continue
                was = _due_value(old_value)
                self._evaluate(task, self.start_of(str(before_id)) or self.at)
                self.changes.append(f"{prefix}timer {element}{moved} changed: due {was} -> {_due(task)}")

    def _owner_label(self, level) -> str:
        owner = self.workflow.get_task_from_id(level.parent_task_id)
        return owner.task_spec.bpmn_id if owner is not None else level.spec.name

    def _evaluate(self, task, start: datetime):
        """Compute a timer's due time as if it had started waiting at ``start``."""
        task.internal_data.pop("event_value", None)
        task.internal_data.pop("event_fired", None)
        with engine_time(start):
            task.task_spec._update(task)

    def _check(self, levels):
        for level, new, prefix, _what in levels:
            if level is not self.workflow and level.parent_task_id not in self.workflow.subprocesses:
                continue
            for task in level.tasks.values():
                if task.task_spec is not new.task_specs.get(task.task_spec.name):
                    raise _Blocked([f"{prefix}'{_label(task)}' could not be matched to version {self.version}"], [])


def _move_workflow(workflow, new_specs, mapping, version: int, at: datetime, start_of) -> _Moved:
    """Move a loaded workflow onto ``new_specs`` in memory and return it reloaded from its stored form.

    Raises:
        _Blocked: something stops the move; the reasons are sentences for people.
    """
    new_spec, new_deps = new_specs
    move = _Move(workflow, new_spec, new_deps, mapping, version, at, start_of)
    events = []
    with engine_time(at):
        move.run()
        if any(not t.task_spec.manual for t in workflow.get_tasks(state=TaskState.READY)):
            # a changed timer that is already due: let the engine take the steps it now can
            guard = _StepGuard()
            workflow.do_engine_steps(will_complete_task=guard)
            events = workflow.get_events()
            move.changes.append(f"engine steps ran after the move, up to {guard.element_id}")
    try:
        moved = load_state(dump_state(workflow), new_specs)
    except Exception as exc:  # noqa: BLE001 - an unforeseen shape of the tree: refuse rather than store it
        raise _Blocked([f"the moved state could not be stored ({exc.__class__.__name__}: {exc})"], []) from exc
    moved.script_engine = _script_engine()
    return _Moved(moved, move.changes, move.rekeyed, move.dropped, move.due_changed, events)


# --- instances -----------------------------------------------------------------------------------------------

_STATUS_REASONS = {
    InstanceStatus.SUSPENDED: "it is suspended; resume it before moving it",
    InstanceStatus.INCIDENT: "it is stopped at an incident; retry or resolve the incident before moving it",
    InstanceStatus.COMPLETED: "it has completed; only running instances move",
    InstanceStatus.CANCELLED: "it was cancelled; only running instances move",
}


def _target(target_definition_id: int) -> ProcessDefinition:
    target = db.session.get(ProcessDefinition, target_definition_id)
    if target is None:
        raise NotFound(f"no deployed version {target_definition_id}")
    return target


def _refusal(instance: ProcessInstance, target: ProcessDefinition) -> tuple[str, type[EngineError]] | None:
    """Why the instance cannot move to ``target`` at all (before looking at where it waits), and the error to raise."""
    if target.kind != DefinitionKind.BPMN or target.key != instance.process_key:
        return f"version {target.version} of '{target.key}' is not a version of '{instance.process_key}'", Conflict
    if target.id == instance.definition_id:
        return f"it already runs on version {target.version}", Conflict
    if instance.status != InstanceStatus.RUNNING:
        return _STATUS_REASONS.get(instance.status, f"it is {instance.status.value}"), NotRunnable
    return None


def _load(instance: ProcessInstance):
    workflow = load_state(instance.state, specs.specs_of(instance.bundle_sha256))
    workflow.script_engine = _script_engine()
    return workflow


def _timer_starts(instance_ids: list[int]) -> dict[int, dict[str, datetime]]:
    """instance id -> task id -> when each waiting timer started (its row's created_at)."""
    starts: dict[int, dict[str, datetime]] = {}
    for instance_id, task_id, created_at in db.session.execute(
        select(Timer.instance_id, Timer.task_id, Timer.created_at).where(
            Timer.instance_id.in_(instance_ids), Timer.status == TimerStatus.WAITING
        )
    ):
        starts.setdefault(instance_id, {})[task_id] = created_at
    return starts


def _open_items(instance_ids: list[int]) -> dict[int, list[WorkItem]]:
    items: dict[int, list[WorkItem]] = {}
    for item in db.session.scalars(
        select(WorkItem).where(WorkItem.instance_id.in_(instance_ids), WorkItem.status == WorkItemStatus.OPEN)
    ):
        items.setdefault(item.instance_id, []).append(item)
    return items


def _item_updates(instance, item: WorkItem, task, due_changed: bool) -> tuple[dict, list[str]]:
    """Columns an open work item takes from the target's definition of its task, and a line saying which."""
    fresh = _new_work_item(instance, task, item.created_at)  # the row's columns, never written as such
    values = {name: fresh[name] for name in ITEM_FIELDS if fresh[name] != getattr(item, name)}
    if due_changed and fresh["due_at"] != item.due_at:
        values["due_at"] = fresh["due_at"]  # a changed due date counts from when the task opened
    shown = sorted(set(values) - {"element_id"})  # a moved task has a line of its own
    lines = [f"task {fresh['element_id']}: {', '.join(shown)} updated from the new version"] if shown else []
    return values, lines


def _item_lines(instance, moved: _Moved, items: list[WorkItem]) -> list[str]:
    lines = []
    for item in items:
        task_id = moved.rekeyed.get(item.task_id, item.task_id)
        task = moved.workflow.get_task_from_id(UUID(task_id))
        if task is not None and task.state == TaskState.READY:
            lines.extend(_item_updates(instance, item, task, task_id in moved.due_changed)[1])
    return lines


def _check_one(instance, target, new_specs, mapping, starts: dict, items: list[WorkItem]) -> MigrationCheck:
    known = {
        "instance_id": instance.id,
        "case_id": instance.case_id,
        "from_version": instance.definition.version,
        "to_version": target.version,
    }
    refused = _refusal(instance, target)
    if refused is not None:
        return MigrationCheck(**known, can_move=False, reason=refused[0])
    waiting = []
    try:
        workflow = _load(instance)
        waiting = _waiting_elements(workflow)
        moved = _move_workflow(workflow, new_specs, mapping, target.version, now(), starts.get)
        changes = moved.changes + _item_lines(instance, moved, items)
    except _Blocked as blocked:
        return MigrationCheck(**known, can_move=False, reason=str(blocked), waiting=waiting, missing=blocked.missing)
    except Exception as exc:  # noqa: BLE001 - e.g. a due-date expression of the target fails on this case's data
        return MigrationCheck(**known, can_move=False, reason=f"the move fails: {exc}", waiting=waiting)
    return MigrationCheck(**known, can_move=True, changes=changes, waiting=waiting)


def check_migration(
    instance_ids: list[int], target_definition_id: int, mapping: dict[str, str] | None = None
) -> list[MigrationCheck]:
    """Dry run: whether each instance can move to the target version and what would change. Writes nothing.

    Each instance is moved in memory exactly as :func:`migrate_instance` would move it.

    Raises:
        NotFound: no such target version.
    """
    target = _target(target_definition_id)
    new_specs = None
    if target.kind == DefinitionKind.BPMN:
        new_specs = specs.specs_of(specs.bundle_for_definition(target, store=False))
    checks = []
    for first in range(0, len(instance_ids), CHECK_CHUNK):
        chunk = instance_ids[first : first + CHECK_CHUNK]
        instances = {i.id: i for i in db.session.scalars(select(ProcessInstance).where(ProcessInstance.id.in_(chunk)))}
        starts, items = _timer_starts(chunk), _open_items(chunk)
        for instance_id in chunk:
            instance = instances.get(instance_id)
            if instance is None:
                checks.append(MigrationCheck(instance_id, 0, False, f"no process instance {instance_id}"))
                continue
            found = _check_one(
                instance, target, new_specs, mapping, starts.get(instance_id, {}), items.get(instance_id, [])
            )
            checks.append(found)
    return checks


def migrate_instance(
    instance_id: int,
    target_definition_id: int,
    mapping: dict[str, str] | None = None,
    actor_id: int | None = None,
    expected_version: int | None = None,
) -> MigrationCheck:
    """Move one running instance to another version of its process, in the caller's transaction (flushes).

    Work items, timers and message subscriptions are brought in line in the same transaction, and the move is
    audited as ``instance_migrated``. When it cannot move it raises before changing anything the caller's rollback
    would not undo (one instance per transaction).

    Raises:
        NotFound: no such instance or target version.
        NotRunnable: the instance is not running (suspended, at an incident, finished).
        Conflict: it cannot move (it waits at an element the target lacks and the mapping does not cover, the
            target belongs to another process or is its current version), ``expected_version`` is stale, or
            someone changed it meanwhile.
    """
    return _migrate(instance_id, _target(target_definition_id), None, mapping, actor_id, expected_version)


def _migrate(instance_id, target, bundle, mapping, actor_id, expected_version) -> MigrationCheck:
    instance = _lock_instance(instance_id)
    if expected_version is not None and instance.lock_version != expected_version:
        raise Conflict("the instance changed since it was checked; check it again")
    refused = _refusal(instance, target)
    if refused is not None:
        reason, error = refused
        raise error(f"instance {instance.id} cannot move: {reason}")
    bundle = bundle or specs.bundle_for_definition(target)
    at = now()
    source = instance.definition
    workflow = _load(instance)
    before = snapshot(workflow)  # what the rows mirror now
    waiting = _waiting_elements(workflow)
    items = _open_items([instance.id]).get(instance.id, [])

    def start_of(task_id: str) -> datetime | None:  # read only for a timer whose definition changed
        return _timer_starts([instance.id]).get(instance.id, {}).get(task_id)

    try:
        moved = _move_workflow(workflow, specs.specs_of(bundle), mapping, target.version, at, start_of)
        with engine_time(at):
            changes = moved.changes + _update_rows(instance, moved, before, items)
            project(instance, moved.workflow, at, actor_id, before)
        _rename_subscriptions(instance, before, moved.workflow)
    except _Blocked as blocked:
        raise Conflict(f"instance {instance.id} cannot move: {blocked}") from None
    except (EngineError, StaleDataError):
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a due-date expression of the target fails on this case's data
        raise Conflict(f"instance {instance.id} cannot move: {exc}") from exc
    instance.state = dump_state(moved.workflow)
    instance.definition = target
    instance.bundle_sha256 = bundle
    instance.updated_at = at
    audit(
        "instance_migrated",
        instance,
        actor_id,
        from_version=source.version,
        to_version=target.version,
        from_definition_id=source.id,
        to_definition_id=target.id,
        mapping=mapping or {},
        changes=changes,
    )
    if moved.workflow.is_completed():
        instance.status = InstanceStatus.COMPLETED
        instance.completed_at = at
        audit("instance_completed", instance, actor_id, process_key=instance.process_key)
    try:
        db.session.flush()  # bumps lock_version; a concurrent save makes this fail instead of overwriting it
    except StaleDataError as exc:
        raise Conflict("someone else changed this instance at the same time; nothing was changed") from exc
    for event in moved.events:
        _send(instance, event, at, actor_id, 0)
    return MigrationCheck(
        instance.id,
        instance.case_id,
        True,
        changes=changes,
        waiting=waiting,
        from_version=source.version,
        to_version=target.version,
    )


def _update_rows(instance, moved: _Moved, before, items: list[WorkItem]) -> list[str]:
    """Re-key rows of rebuilt tasks, cancel timers of removed events and refresh open work items.

    ``before`` (the snapshot the rows mirror) is adjusted to match, so :func:`project` then only adds what is new.
    """
    for old, new in moved.rekeyed.items():
        for model, mirrored in (
            (WorkItem, before.ready),
            (Timer, before.timers),
            (MessageSubscription, before.messages),
        ):
            db.session.execute(
                update(model).where(model.instance_id == instance.id, model.task_id == old).values(task_id=new)
            )
            if old in mirrored:
                mirrored[new] = mirrored.pop(old)
    if moved.dropped:
        db.session.execute(
            update(Timer)
            .where(
                Timer.instance_id == instance.id, Timer.task_id.in_(moved.dropped), Timer.status == TimerStatus.WAITING
            )
            .values(status=TimerStatus.CANCELLED)
        )
        for task_id in moved.dropped:
            before.timers.pop(task_id, None)  # cancelled here; project would take a vanished timer for fired
    lines = []
    for item in items:
        item.task_id = moved.rekeyed.get(item.task_id, item.task_id)
        task = moved.workflow.get_task_from_id(UUID(item.task_id))
        if task is None or task.state != TaskState.READY:
            continue
        values, said = _item_updates(instance, item, task, item.task_id in moved.due_changed)
        for name, value in values.items():
            setattr(item, name, value)
        lines.extend(said)
    db.session.flush()
    return lines


def _rename_subscriptions(instance, before, workflow) -> None:
    """A kept message catch event whose message name changed in the target waits for the new name."""
    for task_id, (_task, name) in snapshot(workflow).messages.items():
        if task_id in before.messages and before.messages[task_id][1] != name:
            db.session.execute(
                update(MessageSubscription)
                .where(MessageSubscription.instance_id == instance.id, MessageSubscription.task_id == task_id)
                .values(name=name)
            )


def migrate_instances(
    instance_ids: list[int], target_definition_id: int, mapping: dict[str, str] | None = None, actor_id=None
) -> list[MigrationCheck]:
    """Move instances one transaction each (this commits: call it from a job or a command, not from a request
    that has its own transaction). One that cannot move is reported with its reason and left untouched."""
    target = _target(target_definition_id)
    target_id = target.id
    bundle = specs.bundle_for_definition(target) if target.kind == DefinitionKind.BPMN else None
    db.session.commit()  # the bundle, stored once for all of them
    results = []
    for instance_id in instance_ids:
        try:
            with transaction():
                target = db.session.get(ProcessDefinition, target_id)
                results.append(_migrate(instance_id, target, bundle, mapping, actor_id, None))
        except Exception as exc:  # noqa: BLE001 - reported on the instance, which the rollback left untouched
            if not isinstance(exc, EngineError):
                log.exception("moving instance %s failed", instance_id)
            case_id = db.session.scalar(select(ProcessInstance.case_id).where(ProcessInstance.id == instance_id))
            reason = str(exc) or exc.__class__.__name__
            results.append(MigrationCheck(instance_id, case_id or 0, False, reason=reason))
    return results


def instances_of(
    definition_id: int,
    *,
    statuses: tuple[InstanceStatus, ...] = (InstanceStatus.RUNNING,),
    jurisdiction_ids: list[int] | None = None,
    waiting_at: str | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    limit: int | None = None,
) -> list[int]:
    """Ids of one version's instances, oldest first, chosen by status, jurisdiction (the ids of a subtree, e.g.
    ``app.auth.scope.scope_node_ids()``), the element they wait at (an open task, a waiting timer or message)
    and start time. Reads only the projected rows."""
    query = select(ProcessInstance.id).where(
        ProcessInstance.definition_id == definition_id, ProcessInstance.status.in_(statuses)
    )
    if jurisdiction_ids is not None:
        query = query.where(ProcessInstance.jurisdiction_id.in_(jurisdiction_ids))
    if waiting_at:
        at_task = select(WorkItem.instance_id).where(
            WorkItem.status == WorkItemStatus.OPEN, WorkItem.element_id == waiting_at
        )
        at_timer = select(Timer.instance_id).where(Timer.status == TimerStatus.WAITING, Timer.element_id == waiting_at)
        at_message = select(MessageSubscription.instance_id).where(MessageSubscription.element_id == waiting_at)
        query = query.where(ProcessInstance.id.in_(at_task.union(at_timer, at_message)))
    if started_after is not None:
        query = query.where(ProcessInstance.started_at >= started_after)
    if started_before is not None:
        query = query.where(ProcessInstance.started_at < started_before)
    query = query.order_by(ProcessInstance.id)
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query))
