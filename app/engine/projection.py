"""Read models kept in step with the engine: READY user tasks -> work_item, waiting events -> timer/subscription.

Called inside the same transaction as the state change, so lists never need to deserialize a workflow.
"""

import re
from datetime import datetime
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from app.audit.log import record
from app.auth.roles import role_for_lane
from app.engine.forms import describe_form
from app.engine.models import (
    MessageSubscription,
    ProcessInstance,
    Timer,
    TimerStatus,
    WorkItem,
    WorkItemStatus,
)
from app.extensions import db

_ISO_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")


def _due_at(task, created: datetime) -> datetime | None:
    """A user task's due time from its ``dueDate``: an ISO duration from creation, or an expression."""
    expression = task.task_spec.extensions.get("dueDate")
    if not expression:
        return None
    if _ISO_DURATION.match(expression.strip()):  # months and years count calendar months, as timers do
        parsed = TimerEventDefinition.parse_iso_duration(expression.strip())
        return created + TimerEventDefinition.get_timedelta_from_start(parsed, start=created)
    value = task.workflow.script_engine.evaluate(task, expression)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"due date expression {expression!r} must give a timezone-aware datetime")
    return value


def _legal_basis(task_spec) -> str | None:
    extensions = task_spec.extensions
    return extensions.get("legalBasis") or extensions.get("article")


def _candidate_role(task_spec) -> str | None:
    groups = task_spec.extensions.get("candidateGroups")
    return role_for_lane(groups) if groups else role_for_lane(task_spec.lane)


def project(instance: ProcessInstance, workflow, at: datetime, actor_id: int | None = None) -> tuple[list, int]:
    """Bring work items, timers and message subscriptions of ``instance`` in line with ``workflow``.

    Returns the work items opened by this call and the number of timers that fired.
    """
    opened = _project_work_items(instance, workflow, at, actor_id)
    fired = _project_waiting_events(instance, workflow, at)
    return opened, fired


def _project_work_items(instance, workflow, at, actor_id) -> list[WorkItem]:
    ready = {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}
    existing = {
        item.task_id: item
        for item in db.session.scalars(
            select(WorkItem).where(WorkItem.instance_id == instance.id, WorkItem.status == WorkItemStatus.OPEN)
        )
    }
    opened = []
    for task_id, task in ready.items():
        if task_id in existing:
            continue
        spec = task.task_spec
        item = WorkItem(
            instance_id=instance.id,
            case_id=instance.case_id,
            task_id=task_id,
            element_id=spec.bpmn_id or spec.name,
            name=spec.bpmn_name or spec.bpmn_id or spec.name,
            process_key=instance.process_key,
            lane=spec.lane,
            candidate_role=_candidate_role(spec),
            jurisdiction_id=instance.jurisdiction_id,
            status=WorkItemStatus.OPEN,
            due_at=_due_at(task, at),
            legal_basis=_legal_basis(spec),
            form=describe_form(spec),
            documentation=spec.documentation,
            created_at=at,
        )
        db.session.add(item)
        opened.append(item)
    if opened:
        db.session.flush()
        for item in opened:
            record(
                "task_created",
                actor_id=actor_id,
                case_id=instance.case_id,
                instance_id=instance.id,
                jurisdiction_id=instance.jurisdiction_id,
                payload={"work_item_id": item.id, "element_id": item.element_id, "role": item.candidate_role},
            )
    for task_id, item in existing.items():
        if task_id not in ready:  # interrupted (boundary event, cancel) without being completed
            item.status = WorkItemStatus.CANCELLED
            record(
                "task_cancelled",
                actor_id=actor_id,
                case_id=instance.case_id,
                instance_id=instance.id,
                jurisdiction_id=instance.jurisdiction_id,
                payload={"work_item_id": item.id, "element_id": item.element_id},
            )
    return opened


def _waiting_event_tasks(workflow):
    for task in workflow.get_tasks(state=TaskState.WAITING):
        definition = getattr(task.task_spec, "event_definition", None)
        if definition is not None:
            yield task, definition


def _project_waiting_events(instance, workflow, at) -> int:
    timers, messages = {}, {}
    for task, definition in _waiting_event_tasks(workflow):
        if isinstance(definition, TimerEventDefinition):
            value = task._get_internal_data("event_value")
            if isinstance(value, dict):  # cycle timers keep {"next": ...}
                value = value.get("next")
            if value:
                timers[str(task.id)] = (task, datetime.fromisoformat(value))
        elif isinstance(definition, MessageEventDefinition):
            messages[str(task.id)] = (task, definition.name)

    existing_timers = {
        t.task_id: t
        for t in db.session.scalars(
            select(Timer).where(Timer.instance_id == instance.id, Timer.status == TimerStatus.WAITING)
        )
    }
    for task_id, (task, due_at) in timers.items():
        row = existing_timers.pop(task_id, None)
        if row is not None:
            row.due_at = due_at  # cycle timers move on
            continue
        spec = task.task_spec
        db.session.add(
            Timer(
                instance_id=instance.id,
                case_id=instance.case_id,
                task_id=task_id,
                element_id=spec.bpmn_id or spec.name,
                kind="boundary" if hasattr(spec, "cancel_activity") else "intermediate",
                interrupting=bool(getattr(spec, "cancel_activity", True)),
                due_at=due_at,
                status=TimerStatus.WAITING,
                created_at=at,
            )
        )
    fired_count = 0
    for task_id, row in existing_timers.items():
        task = workflow.get_task_from_id(UUID(task_id))
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
            record(
                "timer_fired",
                case_id=instance.case_id,
                instance_id=instance.id,
                jurisdiction_id=instance.jurisdiction_id,
                payload={"timer_id": row.id, "element_id": row.element_id, "due_at": row.due_at.isoformat()},
            )

    existing_subs = {
        s.task_id: s
        for s in db.session.scalars(select(MessageSubscription).where(MessageSubscription.instance_id == instance.id))
    }
    for task_id, (task, name) in messages.items():
        if existing_subs.pop(task_id, None) is None:
            spec = task.task_spec
            db.session.add(
                MessageSubscription(
                    instance_id=instance.id,
                    case_id=instance.case_id,
                    task_id=task_id,
                    element_id=spec.bpmn_id or spec.name,
                    name=name,
                    created_at=at,
                )
            )
    for row in existing_subs.values():
        db.session.delete(row)
    return fired_count
