"""What one instance has done and where its tokens are now, and suspending or resuming it.

``instance_path`` deserializes one instance's stored state: it is for the single-instance history page, never for
lists (those read the projected rows, see app.engine.projection).
"""

from dataclasses import dataclass, field

from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import CallActivity
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from app.core.clock import now
from app.engine import specs
from app.engine.dto import InstanceInfo
from app.engine.errors import Conflict, InvalidSubmission, NotFound
from app.engine.models import Incident, IncidentStatus, InstanceStatus, ProcessInstance
from app.engine.projection import audit
from app.engine.runtime import _info, _lock_instance
from app.engine.serialization import load_state
from app.extensions import db

#: Longest reason kept with a suspension (the audit payload is for people, not documents).
MAX_REASON_LENGTH = 500


@dataclass(frozen=True)
class InstancePath:
    """The element ids of one instance's diagram: where it has been and where its tokens are."""

    instance_id: int
    #: Element id -> how many times it completed (a loop counts every pass), in the order first completed.
    completed: dict[str, int] = field(default_factory=dict)
    #: Elements holding a token that people or the engine act on next: READY or STARTED tasks.
    active: list[str] = field(default_factory=list)
    #: Elements waiting for something outside: timers and message catch events (WAITING).
    waiting: list[str] = field(default_factory=list)

    @property
    def current(self) -> list[str]:
        """Every element that holds a token now."""
        return list(dict.fromkeys([*self.active, *self.waiting]))


def _diagram_tasks(workflow):
    """Tasks drawn on this instance's diagram: its own and those of embedded subprocesses (not called processes,
    which are separate definitions with diagrams of their own)."""
    yield from workflow.tasks.values()
    for task_id, sub in workflow.subprocesses.items():
        owner = workflow.get_task_from_id(task_id)
        if owner is not None and not isinstance(owner.task_spec, CallActivity):
            yield from sub.tasks.values()


def instance_path(instance_id: int) -> InstancePath:
    """The completed elements and current tokens of one instance, read from its stored state.

    Raises:
        NotFound: no such instance.
    """
    instance = db.session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"no process instance {instance_id}")
    workflow = load_state(instance.state, specs.specs_of(instance.bundle_sha256))
    finished: list[tuple[float, str]] = []
    active: list[str] = []
    waiting: list[str] = []
    # workflow.tasks holds every task (get_tasks() stops at depth 1,000 and misses some completed ones).
    for task in _diagram_tasks(workflow):
        element_id = task.task_spec.bpmn_id  # SpiffWorkflow's own helper specs have none
        if not element_id:
            continue
        if task.state == TaskState.COMPLETED:
            finished.append((task.last_state_change, element_id))
        elif task.state in (TaskState.READY, TaskState.STARTED, TaskState.ERROR):
            active.append(element_id)
        elif task.state == TaskState.WAITING:
            waiting.append(element_id)
    completed: dict[str, int] = {}
    for _, element_id in sorted(finished, key=lambda pair: pair[0]):
        completed[element_id] = completed.get(element_id, 0) + 1
    return InstancePath(
        instance_id=instance.id,
        completed=completed,
        active=list(dict.fromkeys(active)),
        waiting=list(dict.fromkeys(waiting)),
    )


# --- suspending -----------------------------------------------------------------------------------------------


def _clean_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidSubmission({"reason": "a reason is required"})
    return text[:MAX_REASON_LENGTH]


def suspend_instance(instance_id: int, reason: str, actor_id: int | None = None) -> InstanceInfo:
    """Stop an instance where it is: its tasks cannot be completed, its timers do not fire, messages wait.

    Flushes; the caller commits. The reason is kept in the ``instance_suspended`` audit event.

    Raises:
        InvalidSubmission: no reason was given (``errors["reason"]``).
        NotFound: no such instance.
        Conflict: the instance is already suspended, completed or cancelled.
    """
    text = _clean_reason(reason)
    instance = _lock_instance(instance_id)
    if instance.status not in (InstanceStatus.RUNNING, InstanceStatus.INCIDENT):
        raise Conflict(f"the process is {instance.status.value}; it cannot be suspended")
    previous = instance.status
    instance.status = InstanceStatus.SUSPENDED
    instance.updated_at = now()
    audit("instance_suspended", instance, actor_id, reason=text, previous_status=previous.value)
    db.session.flush()
    return _info(instance)


def resume_instance(instance_id: int, reason: str, actor_id: int | None = None) -> InstanceInfo:
    """Let a suspended instance go on: timers that fell due meanwhile fire on the worker's next pass.

    An instance suspended while stopped at an incident goes back to that incident. Flushes; the caller commits.

    Raises:
        InvalidSubmission: no reason was given (``errors["reason"]``).
        NotFound: no such instance.
        Conflict: the instance is not suspended.
    """
    text = _clean_reason(reason)
    instance = _lock_instance(instance_id)
    if instance.status != InstanceStatus.SUSPENDED:
        raise Conflict(f"the process is {instance.status.value}, not suspended")
    open_incident = db.session.scalar(
        select(Incident.id).where(Incident.instance_id == instance.id, Incident.status == IncidentStatus.OPEN).limit(1)
    )
    instance.status = InstanceStatus.INCIDENT if open_incident is not None else InstanceStatus.RUNNING
    instance.updated_at = now()
    audit("instance_resumed", instance, actor_id, reason=text, status=instance.status.value)
    db.session.flush()
    return _info(instance)
