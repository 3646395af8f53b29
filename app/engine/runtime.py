"""Running instances: start, complete work, fire timers, deliver messages, retry incidents.

Every public function changes the session and flushes; the caller commits (one transaction per request or
job). Each engine change locks its instance row first (``FOR UPDATE`` on PostgreSQL; SQLite serializes
writers), saves under an optimistic version check, and writes its audit events in the same transaction.
"""

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from flask import current_app
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition as CamundaMessage
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import lazyload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from app.audit.log import record
from app.audit.marks import mark_cases
from app.cases.models import Case
from app.core import direct
from app.core.clock import now
from app.engine import specs
from app.engine.clock import EngineDatetime, current_time, engine_time
from app.engine.dto import CompletionResult, InstanceInfo
from app.engine.errors import Conflict, NotFound, NotRunnable
from app.engine.forms import clean_submission
from app.engine.models import (
    Incident,
    IncidentStatus,
    InstanceStatus,
    Message,
    MessageStatus,
    MessageSubscription,
    ProcessDefinition,
    ProcessInstance,
    Timer,
    TimerStatus,
    WorkItem,
    WorkItemStatus,
)
from app.engine.projection import Snapshot, audit, project, snapshot
from app.engine.script_env import make_script_engine
from app.engine.serialization import dump_event, dump_state, load_event, load_state
from app.extensions import db

#: Engine steps one call may run before it is taken for an endless loop (a gateway cycle with no wait state).
MAX_STEPS_PER_CALL = 5_000
#: Wall-clock limit for one call's engine steps, in seconds (each script also has its own limit).
MAX_SECONDS_PER_CALL = 20.0
#: How deep messages are delivered inline (a cycle that starts the next cycle); deeper ones wait for the worker.
MAX_INLINE_DELIVERY_DEPTH = 8

_script_engines: dict[float, object] = {}


class StepLimitExceeded(Exception):
    pass


def _script_engine():
    limit = current_app.config.get("SCRIPT_TIME_LIMIT", 2.0)
    engine = _script_engines.get(limit)
    if engine is None:
        engine = make_script_engine(extra_globals={"datetime": EngineDatetime, "now": current_time}, time_limit=limit)
        _script_engines[limit] = engine
    return engine


def _load(instance: ProcessInstance, state: str | None = None) -> BpmnWorkflow:
    """The instance's workflow, from its stored state (or ``state``)."""
    workflow = load_state(state or instance.state, specs.specs_of(instance.bundle_sha256))
    workflow.script_engine = _script_engine()
    return workflow


def _info(
    instance: ProcessInstance, opened=(), incident: Incident | None = None, version: int | None = None
) -> InstanceInfo:
    """What callers learn about an instance after a change (``version``: its definition's, when already known)."""
    return InstanceInfo(
        id=instance.id,
        case_id=instance.case_id,
        process_key=instance.process_key,
        definition_version=instance.definition.version if version is None else version,
        status=instance.status.value,
        lock_version=instance.lock_version,
        opened_work_item_ids=list(opened),
        incident_id=incident.id if incident else None,
    )


class _StepGuard:
    """Stops a call that runs too many steps or too long: endless loops in the diagram become incidents."""

    def __init__(self):
        self.count = 0
        self.deadline = time.monotonic() + MAX_SECONDS_PER_CALL
        self.element_id: str | None = None

    def __call__(self, task) -> None:
        self.count += 1
        self.element_id = task.task_spec.bpmn_id or task.task_spec.name
        if self.count > MAX_STEPS_PER_CALL or time.monotonic() > self.deadline:
            raise StepLimitExceeded(
                f"stopped after {self.count} steps: the diagram loops without waiting (last element {self.element_id})"
            )


def _error_text(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return text[:4000]


def _advance(
    instance: ProcessInstance,
    workflow: BpmnWorkflow,
    job: str,
    at: datetime,
    actor_id: int | None,
    depth: int = 0,
    before: Snapshot | None = None,
    redo: Callable[[], BpmnWorkflow] | None = None,
    send_with: Sequence[direct.Call] = (),
    inserted: bool = True,
) -> tuple[list[int], Incident | None, int]:
    """Run engine steps until the instance waits, then save and project; a failure leaves the last good state.

    The state before the steps is kept; if a script, service or condition fails (or the diagram loops), the
    instance is saved in that state with an open incident, and nothing the steps did is kept. With ``redo`` that
    state is not copied up front (steps rarely fail): ``redo()`` builds it again on failure. ``send_with``: the
    caller's writes, sent with the step's own (on failure they are sent alone). ``inserted=False``: the instance's
    row is not in the database yet; the save inserts it (on failure, with the state before the steps).
    Returns the ids of the work items opened, the incident raised (if any) and the number of timers that fired.
    """
    saved = dump_state(workflow) if redo is None else None
    guard = _StepGuard()
    events = []
    # Only service tasks write to the database while steps run; without them every failure of user-authored
    # logic (scripts, conditions, unstorable data, due dates) happens before the first write, so no savepoint.
    savepoint = db.session.begin_nested() if specs.has_service_tasks(instance.bundle_sha256) else nullcontext()
    try:
        with savepoint, engine_time(at):
            workflow.do_engine_steps(will_complete_task=guard)
            events = workflow.get_events()
            state = dump_state(workflow)  # fails on data a script left that cannot be stored: before any write
            db.session.flush()  # the instance's own pending changes first: the save checks the version they give
            # The new state goes in the same round trip as the new work items; no user-authored logic runs after it.
            saving = _save_values(instance, state, at, workflow.is_completed())
            save = _save(instance, saving, inserted)
            opened, fired = project(instance, workflow, at, actor_id, before, send_with=[*send_with, save])
            db.session.flush()
    except StaleDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of user-authored logic becomes an incident
        if saved is None:
            with engine_time(at):
                saved = dump_state(redo())
        unsent = [*send_with] if inserted else [_insert(_row_of(instance) | {"state": saved}), *send_with]
        if unsent:  # not sent: everything that can fail here fails before the step's writes
            direct.run(db.session.connection(), unsent)
        return [], _raise_incident(instance, saved, job, at, actor_id, guard.element_id, exc), 0

    _saved(instance, saving)
    if instance.status == InstanceStatus.COMPLETED:
        audit("instance_completed", instance, actor_id, process_key=instance.process_key)
    db.session.flush()
    for event in events:
        _send(instance, event, at, actor_id, depth)
    return opened, None, fired


_SAVE_STATE = direct.Direct(
    update(ProcessInstance.__table__)
    .where(
        ProcessInstance.__table__.c.id == bindparam("instance_id"),
        ProcessInstance.__table__.c.lock_version == bindparam("expected"),
    )
    .values(
        state=bindparam("state"),
        updated_at=bindparam("at"),
        lock_version=bindparam("expected") + 1,
        status=bindparam("status"),
        completed_at=bindparam("completed_at"),
    )
)


def _save(instance: ProcessInstance, values: dict, inserted: bool) -> direct.Call:
    """The statement saving :func:`_save_values`: an UPDATE under the version check, or the INSERT of a new
    instance's row as the UPDATE would leave it."""
    if inserted:
        return direct.Call(_SAVE_STATE, values, expect=1)
    return _insert(_row_of(instance) | _saved_columns(values))


def _row_of(instance: ProcessInstance) -> dict:
    return {name: getattr(instance, name) for name in _INSTANCE_COLUMNS}


def _insert(row: dict) -> direct.Call:
    return direct.Call(direct.insert_of(ProcessInstance.__table__, row), row, expect=1)


def _save_values(instance: ProcessInstance, state: str, at: datetime, completed: bool) -> dict:
    """_SAVE_STATE's values: the instance's new state (and end, if it ``completed``) under its version check."""
    return {
        "instance_id": instance.id,
        "expected": instance.lock_version,
        "state": state,
        "at": at,
        "status": InstanceStatus.COMPLETED if completed else instance.status,
        "completed_at": at if completed else instance.completed_at,
    }


def _saved_columns(values: dict) -> dict:
    """The instance's columns as _SAVE_STATE leaves them, from :func:`_save_values`."""
    return {
        "state": values["state"],
        "status": values["status"],
        "completed_at": values["completed_at"],
        "updated_at": values["at"],
        "lock_version": values["expected"] + 1,
    }


def _saved(instance: ProcessInstance, values: dict) -> None:
    """Make the ORM object match what the save wrote: nothing for the unit of work to do."""
    for name, value in _saved_columns(values).items():
        set_committed_value(instance, name, value)


def _raise_incident(instance, saved, job, at, actor_id, element_id, exc) -> Incident:
    workflow = load_state(saved, specs.specs_of(instance.bundle_sha256))
    with engine_time(at):
        project(instance, workflow, at, actor_id)
    instance.state = saved
    instance.status = InstanceStatus.INCIDENT
    instance.updated_at = at
    incident = db.session.scalars(
        select(Incident).where(Incident.instance_id == instance.id, Incident.status == IncidentStatus.OPEN)
    ).first()
    if incident is None:
        incident = Incident(
            instance_id=instance.id,
            case_id=instance.case_id,
            element_id=element_id,
            job=job,
            error=_error_text(exc),
            status=IncidentStatus.OPEN,
            attempts=1,
            created_at=at,
        )
        db.session.add(incident)
    else:
        incident.attempts += 1
        incident.error = _error_text(exc)
        incident.element_id = element_id
    db.session.flush()
    audit(
        "incident_raised",
        instance,
        actor_id,
        incident_id=incident.id,
        element_id=element_id,
        job=job,
        error=incident.error,
    )
    return incident


# --- starting ---------------------------------------------------------------------------------------------------


def start_process(
    key: str,
    *,
    case_id: int,
    jurisdiction_id: int,
    data: dict | None = None,
    actor_id: int | None = None,
    message=None,
    parent_instance_id: int | None = None,
    depth: int = 0,
) -> InstanceInfo:
    """Start the newest version of process ``key`` for a case and run it until it waits."""
    at = now()
    connection = db.session.connection()
    # PostgreSQL: the instance's id is drawn with the lookup, and its row goes in once, with the state the steps
    # leave: a round trip and an UPDATE of the fresh row less. SQLite has no sequence to draw from, and service
    # tasks may write about the case's instances while the steps run: there the row goes in first.
    reserve = [direct.Call(_NEXT_INSTANCE_ID, {})] if connection.dialect.name == "postgresql" else []
    definition_id, version, bundle_sha256, reserved = specs.bundle_for(key, along=reserve)
    late = bool(reserved) and not specs.has_service_tasks(bundle_sha256)
    start_data = {"case_id": case_id, **(data or {})}

    def fresh() -> BpmnWorkflow:
        spec, subprocess_specs = specs.specs_of(bundle_sha256)
        workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=_script_engine())
        for task in workflow.get_tasks(state=TaskState.READY):
            task.set_data(**start_data)
        return workflow

    workflow = fresh()
    values = {
        "case_id": case_id,
        "definition_id": definition_id,
        "bundle_sha256": bundle_sha256,
        "process_key": key,
        "jurisdiction_id": jurisdiction_id,
        "status": InstanceStatus.RUNNING,
        "state": None if late else dump_state(workflow),  # late: written by the save, the steps' state
        "lock_version": 1,
        "started_at": at,
        "updated_at": at,
        "completed_at": None,
        "started_by_id": actor_id,
        "parent_instance_id": parent_instance_id,
    }
    if reserved:
        values["id"] = reserved[0].rows[0][0]
    if not late:
        table = ProcessInstance.__table__
        (inserted,) = direct.run(connection, [direct.Call(direct.insert_of(table, values, table.c.id), values)])
        values["id"] = inserted.rows[0][0]
    instance = direct.persistent(db.session(), ProcessInstance, values)
    audit(
        "instance_started",
        instance,
        actor_id,
        process_key=key,
        version=version,
        message=message.event_definition.name if message is not None else None,
    )
    if message is not None:
        with engine_time(at):
            workflow.do_engine_steps()  # reach the message start event
            if not _catch(workflow, message):
                raise NotRunnable(f"{key!r} does not start on message {message.event_definition.name!r}")
    # Without a message the state before the steps is a fresh workflow: built again if they fail.
    redo = None if message is not None else fresh
    opened, incident, _ = _advance(
        instance, workflow, "start", at, actor_id, depth, before=Snapshot(), redo=redo, inserted=not late
    )
    return _info(instance, opened, incident, version)


_NEXT_INSTANCE_ID = direct.Direct(select(func.nextval(func.pg_get_serial_sequence("process_instance", "id"))))


# --- completing work --------------------------------------------------------------------------------------------


# Hot statements are built once: building a select costs more than PostgreSQL takes to answer it.
# The definition is not joined into the locking queries: after waiting for a lock, PostgreSQL re-checks a join
# against the row's new definition_id (a migration changes it) and would find no row. A correlated subquery in the
# select list is evaluated for the row as locked.
_DEFINITION_VERSION = (
    select(ProcessDefinition.version)
    .where(ProcessDefinition.id == ProcessInstance.definition_id)
    .correlate(ProcessInstance)
    .scalar_subquery()
)
_LOCK_INSTANCE = (
    select(ProcessInstance)
    .where(ProcessInstance.id == bindparam("instance_id"))
    .options(lazyload(ProcessInstance.definition))
    .with_for_update(of=ProcessInstance)
    .execution_options(populate_existing=True)
)
_INSTANCE_COLUMNS = direct.columns_of(ProcessInstance)
_ITEM_COLUMNS = ("id", "status", "form", "task_id", "element_id", "case_id", "completed_by_id")
_LOCK_WITH_WORK_ITEM = direct.Direct(
    select(*_INSTANCE_COLUMNS.values(), *(WorkItem.__table__.c[name] for name in _ITEM_COLUMNS), _DEFINITION_VERSION)
    .join_from(ProcessInstance.__table__, WorkItem.__table__, WorkItem.instance_id == ProcessInstance.id)
    .where(WorkItem.id == bindparam("work_item_id"))
    .with_for_update(of=ProcessInstance.__table__)
)


@dataclass(frozen=True)
class _Item:
    """A work item's row as read with its instance's lock (no ORM object: completing needs only these)."""

    id: int
    status: WorkItemStatus
    form: list | None
    task_id: str
    element_id: str
    case_id: int
    completed_by_id: int | None


def _lock_instance(instance_id: int) -> ProcessInstance:
    instance = db.session.scalars(_LOCK_INSTANCE, {"instance_id": instance_id}).first()
    if instance is None:
        raise NotFound(f"no process instance {instance_id}")
    return instance


def _lock_with_work_item(work_item_id: int) -> tuple[ProcessInstance, _Item, int]:
    """The work item, its instance locked, and the instance's definition version, in one statement.

    Only the instance row is locked and read again after a wait for its lock; the work item's row may be as it
    was before the wait, so callers check the task in the locked instance's state (and read the item again if
    it is not waiting any more).
    """
    (found,) = direct.run(db.session.connection(), [direct.Call(_LOCK_WITH_WORK_ITEM, {"work_item_id": work_item_id})])
    if not found.rows:
        raise NotFound(f"no work item {work_item_id}")
    row, split = found.rows[0], len(_INSTANCE_COLUMNS)
    instance = direct.loaded(db.session(), ProcessInstance, dict(zip(_INSTANCE_COLUMNS, row[:split], strict=True)))
    return instance, _Item(*row[split:-1]), row[-1]


def _check_still_open(item: _Item) -> None:
    """Raise Conflict if the work item is done, reading it as it is now (the row read with the instance's lock may
    predate the wait for that lock)."""
    current = db.session.get(WorkItem, item.id, populate_existing=True)
    if current.status != WorkItemStatus.OPEN:
        who = f" by user {current.completed_by_id}" if current.completed_by_id else ""
        raise Conflict(f"this task was already {current.status.value}{who}; nothing was changed")


_COMPLETE_ITEM = direct.Direct(
    update(WorkItem.__table__)
    .where(WorkItem.__table__.c.id == bindparam("item_id"))
    .values(status=WorkItemStatus.COMPLETED, completed_at=bindparam("at"), completed_by_id=bindparam("actor_id"))
)


def _complete_item(item: _Item, at: datetime, actor_id: int | None) -> direct.Call:
    """The statement marking a work item completed (the instance's lock keeps anyone else from changing it); an
    ORM object of the item in the session is updated to match now, the row when the statement is sent with the
    step's writes."""
    session = db.session()
    loaded = session.identity_map.get(session.identity_key(WorkItem, (item.id,)))
    if loaded is not None:
        for name, value in (("status", WorkItemStatus.COMPLETED), ("completed_at", at), ("completed_by_id", actor_id)):
            set_committed_value(loaded, name, value)
    mark_cases(session, [item.case_id])
    return direct.Call(_COMPLETE_ITEM, {"item_id": item.id, "at": at, "actor_id": actor_id}, expect=1)


def complete_work_item(
    work_item_id: int, data: dict | None, actor_id: int | None = None, expected_version: int | None = None
) -> CompletionResult:
    """Complete a READY user task with submitted data; exactly one of two concurrent completions wins.

    Raises:
        NotFound: no such work item.
        Conflict: it was completed or cancelled meanwhile, or ``expected_version`` is stale.
        InvalidSubmission: the data fails the task's form; nothing changed.
        NotRunnable: the instance is suspended or stopped at an incident.
    """
    instance, item, version = _lock_with_work_item(work_item_id)  # lock order: instance, then its rows
    stale = expected_version is not None and instance.lock_version != expected_version
    if item.status != WorkItemStatus.OPEN or stale or instance.status != InstanceStatus.RUNNING:
        _check_still_open(item)
        if stale:
            raise Conflict("the case changed since you opened this task; reload it and try again")
        if instance.status != InstanceStatus.RUNNING:
            raise NotRunnable(f"the process is {instance.status.value}; this task cannot be completed now")
    cleaned = clean_submission(item.form or [], data or {})

    at = now()
    workflow = _load(instance)
    task = workflow.get_task_from_id(UUID(item.task_id))
    if task is None or task.state != TaskState.READY:  # task.run() does not check this itself
        _check_still_open(item)
        raise Conflict("this task is no longer waiting; nothing was changed")
    before = snapshot(workflow)
    before.ready.pop(item.task_id)  # its row is completed here, not by the projection

    def run_task(workflow: BpmnWorkflow) -> BpmnWorkflow:
        task = workflow.get_task_from_id(UUID(item.task_id))
        task.set_data(**cleaned)
        task.run()
        return workflow

    stored = instance.state

    def before_steps() -> BpmnWorkflow:  # built again only if the steps fail
        return run_task(_load(instance, stored))

    with engine_time(at):
        run_task(workflow)
    completed = _complete_item(item, at, actor_id)
    audit("task_completed", instance, actor_id, work_item_id=item.id, element_id=item.element_id, data=cleaned)
    try:
        opened, incident, _ = _advance(
            instance, workflow, "complete", at, actor_id, before=before, redo=before_steps, send_with=[completed]
        )
        db.session.flush()
    except StaleDataError as exc:
        raise Conflict("someone else changed this case at the same time; nothing was changed") from exc
    return CompletionResult(work_item_id=item.id, instance=_info(instance, opened, incident, version))


# --- timers -------------------------------------------------------------------------------------------------------


def fire_due_timers(limit: int = 50) -> int:
    """Fire timers that are due by the app clock, for up to ``limit`` instances; returns timers fired.

    On PostgreSQL the instances are taken with ``FOR UPDATE SKIP LOCKED``, so any number of workers share the
    work and no timer fires twice; a worker killed mid-batch commits nothing and its timers stay due.
    """
    at = now()
    instance_ids = db.session.scalars(
        select(Timer.instance_id)
        .join(ProcessInstance, ProcessInstance.id == Timer.instance_id)
        .where(Timer.status == TimerStatus.WAITING, Timer.due_at < at, ProcessInstance.status == InstanceStatus.RUNNING)
        .order_by(Timer.due_at)
        .limit(limit)
        .with_for_update(of=ProcessInstance, skip_locked=True)
    ).all()
    fired = 0
    for instance_id in dict.fromkeys(instance_ids):
        instance = db.session.get(ProcessInstance, instance_id)
        workflow = _load(instance)
        before = snapshot(workflow)
        with engine_time(at):
            workflow.refresh_timers()
        _, _, count = _advance(instance, workflow, "timer", at, None, before=before)
        fired += count
    return fired


# --- messages -------------------------------------------------------------------------------------------------------


def _catch(workflow: BpmnWorkflow, event) -> bool:
    """Hand a message to a workflow waiting for it; False if nothing waits for that name."""
    name = event.event_definition.name
    for task in workflow.get_tasks(state=TaskState.WAITING):
        definition = getattr(task.task_spec, "event_definition", None)
        if isinstance(definition, MessageEventDefinition) and definition.name == name:
            payload = event.payload
            if isinstance(payload, dict) and "result_var" in payload and not payload["result_var"]:
                # The Camunda parser takes the variable from the thrower; the catcher's is the one modelers set.
                payload["result_var"] = getattr(definition, "result_var", None)
            workflow.send_event(event)
            return True
    return False


def _send(source: ProcessInstance, event, at: datetime, actor_id: int | None, depth: int) -> None:
    if not isinstance(event.event_definition, MessageEventDefinition):
        return
    message = Message(
        case_id=source.case_id,
        name=event.event_definition.name,
        event=dump_event(event),
        source_instance_id=source.id,
        status=MessageStatus.PENDING,
        created_at=at,
    )
    db.session.add(message)
    db.session.flush()
    audit("message_sent", source, actor_id, message_id=message.id, name=message.name)
    if depth < MAX_INLINE_DELIVERY_DEPTH:
        _deliver(message, at, actor_id, depth + 1, source.jurisdiction_id)


def _deliver(message: Message, at: datetime, actor_id: int | None, depth: int, jurisdiction_id: int) -> bool:
    """Deliver a message to a waiting instance of its case, or start a process that begins with it."""
    subscription = db.session.scalars(
        select(MessageSubscription)
        .where(MessageSubscription.case_id == message.case_id, MessageSubscription.name == message.name)
        .order_by(MessageSubscription.id)
        .limit(1)
    ).first()
    if subscription is not None:
        target = _lock_instance(subscription.instance_id)
        if target.status != InstanceStatus.RUNNING:
            return False
        workflow = _load(target)
        before = snapshot(workflow)
        with engine_time(at):
            caught = _catch(workflow, load_event(message.event))
        if not caught:
            return False
        _mark_delivered(message, target, at, actor_id)
        _advance(target, workflow, "message", at, actor_id, depth, before=before)
        return True
    starters = specs.processes_started_by(message.name)
    if not starters:
        return False
    for definition in starters:
        info = start_process(
            definition.key,
            case_id=message.case_id,
            jurisdiction_id=jurisdiction_id,
            actor_id=actor_id,
            message=load_event(message.event),
            parent_instance_id=message.source_instance_id,
            depth=depth,
        )
        target = db.session.get(ProcessInstance, info.id)
    _mark_delivered(message, target, at, actor_id)
    return True


def _mark_delivered(message: Message, target: ProcessInstance, at: datetime, actor_id: int | None) -> None:
    message.status = MessageStatus.DELIVERED
    message.delivered_at = at
    message.target_instance_id = target.id
    audit(
        "message_delivered",
        target,
        actor_id,
        message_id=message.id,
        name=message.name,
        source_instance_id=message.source_instance_id,
    )


def deliver_pending_messages(limit: int = 50) -> int:
    """Retry messages nobody was waiting for when they were sent; returns how many were delivered."""
    at = now()
    messages = db.session.scalars(
        select(Message)
        .where(Message.status == MessageStatus.PENDING)
        .order_by(Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    delivered = 0
    expire_before = at - timedelta(days=current_app.config.get("MESSAGE_TTL_DAYS", 30))
    for message in messages:
        if message.created_at < expire_before:
            message.status = MessageStatus.EXPIRED
            record("message_expired", case_id=message.case_id, payload={"message_id": message.id, "name": message.name})
            continue
        jurisdiction_id = db.session.scalar(select(Case.jurisdiction_id).where(Case.id == message.case_id))
        if _deliver(message, at, None, 1, jurisdiction_id):
            delivered += 1
    return delivered


def send_message(
    case_id: int, jurisdiction_id: int, name: str, payload: dict | None = None, actor_id: int | None = None
) -> bool:
    """Send a message from outside any process (e.g. a caseworker records a violation) to the case's processes."""
    at = now()
    event = BpmnEvent(CamundaMessage(name), payload={"payload": payload or {}, "result_var": None})
    message = Message(case_id=case_id, name=name, event=dump_event(event), status=MessageStatus.PENDING, created_at=at)
    db.session.add(message)
    db.session.flush()
    record(
        "message_sent",
        actor_id=actor_id,
        case_id=case_id,
        jurisdiction_id=jurisdiction_id,
        payload={"message_id": message.id, "name": name},
    )
    return _deliver(message, at, actor_id, 1, jurisdiction_id)


# --- incidents ---------------------------------------------------------------------------------------------------


def retry_incident(incident_id: int, actor_id: int | None = None, data: dict | None = None) -> InstanceInfo:
    """Run the failed steps again from the last good state, optionally with corrected data."""
    incident = db.session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    instance = _lock_instance(incident.instance_id)
    db.session.refresh(incident)
    if incident.status != IncidentStatus.OPEN:
        raise Conflict(f"incident {incident_id} is already resolved")
    if instance.status == InstanceStatus.SUSPENDED:
        raise NotRunnable("the process is suspended; resume it before retrying")
    at = now()
    workflow = _load(instance)
    before = snapshot(workflow)
    if data:
        for task in workflow.get_tasks(state=TaskState.READY | TaskState.ERROR):
            if not task.task_spec.manual:
                task.set_data(**data)
    for task in workflow.get_tasks(state=TaskState.ERROR):
        task._set_state(TaskState.READY)
    instance.status = InstanceStatus.RUNNING
    audit("incident_retried", instance, actor_id, incident_id=incident.id, data=data or {})
    opened, again, _ = _advance(instance, workflow, "retry", at, actor_id, before=before)
    if again is None:
        incident.status = IncidentStatus.RESOLVED
        incident.resolved_at = at
        audit("incident_resolved", instance, actor_id, incident_id=incident.id)
    db.session.flush()
    return _info(instance, opened, again)
