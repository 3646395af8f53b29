"""Read models kept in step with the engine: READY user tasks -> work_item, waiting events -> timer/subscription.

Called inside the same transaction as the state change, so lists never need to deserialize a workflow.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import delete, select, update

from app.audit.log import record
from app.audit.marks import mark_cases
from app.auth.roles import role_for_lane
from app.core import direct
from app.engine.forms import describe_form
from app.engine.models import (
    MessageSubscription,
    ProcessInstance,
    Timer,
    TimerStatus,
    WorkItem,
    WorkItemStatus,
)
from app.engine.specs import ISO_DURATION
from app.extensions import db


def _due_at(task, created: datetime) -> datetime | None:
    """A user task's due time from its ``dueDate``: an ISO duration from creation, or an expression."""
    expression = task.task_spec.extensions.get("dueDate")
    if not expression:
        return None
    if ISO_DURATION.match(expression.strip()):  # months and years count calendar months, as timers do
        parsed = TimerEventDefinition.parse_iso_duration(expression.strip())
        return created + TimerEventDefinition.get_timedelta_from_start(parsed, start=created)
    value = task.workflow.script_engine.evaluate(task, expression)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"due date expression {expression!r} must give a timezone-aware datetime")
    return value


def _element_id(task_spec) -> str:
    """The BPMN element id (SpiffWorkflow's own helper specs have only a name)."""
    return task_spec.bpmn_id or task_spec.name


def _legal_basis(task_spec) -> str | None:
    extensions = task_spec.extensions
    return extensions.get("legalBasis") or extensions.get("article")


def _candidate_role(task_spec) -> str | None:
    groups = task_spec.extensions.get("candidateGroups")
    return role_for_lane(groups) if groups else role_for_lane(task_spec.lane)


@dataclass
class Snapshot:
    """What of a workflow is projected: READY user tasks, waiting timers (with due times), waiting messages.

    The rows in work_item/timer/message_subscription always mirror the snapshot of the last saved state, so a
    job that knows the snapshot before it ran only touches the rows that changed, without reading them first.
    """

    ready: dict[str, object] = field(default_factory=dict)
    timers: dict[str, tuple[object, datetime]] = field(default_factory=dict)
    messages: dict[str, tuple[object, str]] = field(default_factory=dict)


def snapshot(workflow) -> Snapshot:
    """The projected parts of a workflow, keyed by task id."""
    shot = Snapshot()
    for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING):  # one walk of the tree
        if task.state == TaskState.READY:
            if task.task_spec.manual:
                shot.ready[str(task.id)] = task
            continue
        definition = getattr(task.task_spec, "event_definition", None)
        if isinstance(definition, TimerEventDefinition):
            value = task._get_internal_data("event_value")
            if isinstance(value, dict):  # cycle timers keep {"next": ...}
                value = value.get("next")
            if value:
                shot.timers[str(task.id)] = (task, datetime.fromisoformat(value))
        elif isinstance(definition, MessageEventDefinition):
            shot.messages[str(task.id)] = (task, definition.name)
    return shot


def _snapshot_from_rows(instance: ProcessInstance) -> Snapshot:
    """The snapshot the rows describe (when the caller does not know the state before the job)."""
    db.session.flush()  # autoflush is off: rows changed earlier in this transaction must be visible
    shot = Snapshot()
    shot.ready = dict.fromkeys(
        db.session.scalars(
            select(WorkItem.task_id).where(WorkItem.instance_id == instance.id, WorkItem.status == WorkItemStatus.OPEN)
        )
    )
    for task_id, due_at in db.session.execute(
        select(Timer.task_id, Timer.due_at).where(Timer.instance_id == instance.id, Timer.status == TimerStatus.WAITING)
    ):
        shot.timers[task_id] = (None, due_at)
    for task_id, name in db.session.execute(
        select(MessageSubscription.task_id, MessageSubscription.name).where(
            MessageSubscription.instance_id == instance.id
        )
    ):
        shot.messages[task_id] = (None, name)
    return shot


def project(
    instance: ProcessInstance,
    workflow,
    at: datetime,
    actor_id: int | None = None,
    before: Snapshot | None = None,
    send_with: Sequence[direct.Call] = (),
) -> tuple[list[int], int]:
    """Bring work items, timers and message subscriptions of ``instance`` in line with ``workflow``.

    ``before`` is the snapshot of the state the rows currently mirror (read from the rows when not given).
    Everything that can fail (due-date expressions) is evaluated before the first row is written.
    ``send_with``: the caller's own writes, sent in the same round trip as the new work items (before them).
    Returns the ids of the work items opened by this call and the number of timers that fired.
    """
    before = before if before is not None else _snapshot_from_rows(instance)
    after = snapshot(workflow)
    new_items = [_new_work_item(instance, task, at) for tid, task in after.ready.items() if tid not in before.ready]
    opened = _write_work_items(instance, new_items, set(before.ready) - set(after.ready), actor_id, send_with)
    fired = _write_timers(instance, workflow, before, after, at)
    _write_subscriptions(instance, before, after, at)
    return opened, fired


def _new_work_item(instance: ProcessInstance, task, at: datetime) -> dict:
    """The columns of a READY user task's new work_item row."""
    spec = task.task_spec
    return {
        "instance_id": instance.id,
        "case_id": instance.case_id,
        "task_id": str(task.id),
        "element_id": _element_id(spec),
        "name": spec.bpmn_name or _element_id(spec),
        "process_key": instance.process_key,
        "lane": spec.lane,
        "candidate_role": _candidate_role(spec),
        "jurisdiction_id": instance.jurisdiction_id,
        "status": WorkItemStatus.OPEN,
        "due_at": _due_at(task, at),
        "legal_basis": _legal_basis(spec),
        "form": describe_form(spec),
        "documentation": spec.documentation,
        "created_at": at,
    }


def audit(type_: str, instance: ProcessInstance, actor_id: int | None = None, **payload) -> None:
    """Record an event about an instance (its case, jurisdiction) in the current transaction."""
    record(
        type_,
        actor_id=actor_id,
        case_id=instance.case_id,
        instance_id=instance.id,
        jurisdiction_id=instance.jurisdiction_id,
        payload=payload,
    )


_WORK_ITEMS = WorkItem.__table__


def _write_work_items(
    instance, new_rows: list[dict], gone: set[str], actor_id, send_with: Sequence[direct.Call] = ()
) -> list[int]:
    calls = [*send_with, *(direct.Call(direct.insert_of(_WORK_ITEMS, row, _WORK_ITEMS.c.id), row) for row in new_rows)]
    outcomes = direct.run(db.session.connection(), calls) if calls else []
    new_ids = [outcome.rows[0][0] for outcome in outcomes[len(send_with) :]]
    if new_ids:
        mark_cases(db.session(), [instance.case_id])  # the statements bypass the session's own marking
        for row, item_id in zip(new_rows, new_ids, strict=True):
            audit(
                "task_created",
                instance,
                actor_id,
                work_item_id=item_id,
                element_id=row["element_id"],
                role=row["candidate_role"],
            )
    if gone:  # interrupted (boundary event, cancel) without being completed
        for item in db.session.scalars(
            select(WorkItem).where(
                WorkItem.instance_id == instance.id, WorkItem.task_id.in_(gone), WorkItem.status == WorkItemStatus.OPEN
            )
        ):
            item.status = WorkItemStatus.CANCELLED
            audit("task_cancelled", instance, actor_id, work_item_id=item.id, element_id=item.element_id)
    return new_ids


def _write_timers(instance, workflow, before: Snapshot, after: Snapshot, at: datetime) -> int:
    for task_id, (task, due_at) in after.timers.items():
        if task_id not in before.timers:
            spec = task.task_spec
            db.session.add(
                Timer(
                    instance_id=instance.id,
                    case_id=instance.case_id,
                    task_id=task_id,
                    element_id=_element_id(spec),
                    kind="boundary" if hasattr(spec, "cancel_activity") else "intermediate",
                    interrupting=bool(getattr(spec, "cancel_activity", True)),
                    due_at=due_at,
                    status=TimerStatus.WAITING,
                    created_at=at,
                )
            )
        elif before.timers[task_id][1] != due_at:  # cycle timers move on
            db.session.execute(
                update(Timer)
                .where(Timer.instance_id == instance.id, Timer.task_id == task_id, Timer.status == TimerStatus.WAITING)
                .values(due_at=due_at)
            )
    vanished = set(before.timers) - set(after.timers)
    if not vanished:
        return 0
    fired_count = 0
    for row in db.session.scalars(
        select(Timer)
        .where(Timer.instance_id == instance.id, Timer.task_id.in_(vanished), Timer.status == TimerStatus.WAITING)
        .order_by(Timer.due_at, Timer.id)  # audited in the order they fell due
    ):
        task = workflow.get_task_from_id(UUID(row.task_id))
        if task is None:  # a fired non-interrupting boundary timer leaves the tree; a cancelled one stays in it
            fired = row.due_at < at
        else:
            # a non-interrupting timer resets event_fired once it has run, so its state tells
            fired = task.state in (TaskState.READY, TaskState.COMPLETED) or task._get_internal_data(
                "event_fired", False
            )
        row.status = TimerStatus.FIRED if fired else TimerStatus.CANCELLED
        if fired:
            fired_count += 1
            row.fired_at = at
            audit(
                "timer_fired", instance, None, timer_id=row.id, element_id=row.element_id, due_at=row.due_at.isoformat()
            )
    return fired_count


def _write_subscriptions(instance, before: Snapshot, after: Snapshot, at: datetime) -> None:
    for task_id, (task, name) in after.messages.items():
        if task_id not in before.messages:
            spec = task.task_spec
            db.session.add(
                MessageSubscription(
                    instance_id=instance.id,
                    case_id=instance.case_id,
                    task_id=task_id,
                    element_id=_element_id(spec),
                    name=name,
                    created_at=at,
                )
            )
    vanished = set(before.messages) - set(after.messages)
    if vanished:
        db.session.execute(
            delete(MessageSubscription).where(
                MessageSubscription.instance_id == instance.id, MessageSubscription.task_id.in_(vanished)
            )
        )
