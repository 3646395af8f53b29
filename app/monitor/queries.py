"""Read models of process monitoring: counts by state and element, incidents, long waits, timers.

Everything here reads the projected rows (work_item, timer, incident, audit_event), never workflow state, and is
limited to instances whose case lies in the user's jurisdiction (a transferred case takes its history along).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select

from app.audit.models import AuditEvent
from app.auth.scope import in_scope
from app.cases.models import Case
from app.engine.models import (
    DefinitionKind,
    Incident,
    IncidentStatus,
    InstanceStatus,
    ProcessDefinition,
    ProcessInstance,
    Timer,
    TimerStatus,
    WorkItem,
    WorkItemStatus,
)
from app.extensions import db

#: Audit events that say an element was passed: its heat-map "completed" count.
PASSED_EVENTS = ("task_completed", "timer_fired")
#: Rows in each table of the definition page.
TABLE_SIZE = 20
#: "Due soon" horizon of the timer table.
DUE_SOON = timedelta(days=7)


def scoped_instances(definition_id: int | None = None) -> Select:
    """SELECT of the ids of instances whose case is in the user's scope (of one definition version if given)."""
    query = (
        select(ProcessInstance.id).join(Case, Case.id == ProcessInstance.case_id).where(in_scope(Case.jurisdiction_id))
    )
    if definition_id is not None:
        query = query.where(ProcessInstance.definition_id == definition_id)
    return query


def instance_in_scope(instance_id: int) -> ProcessInstance | None:
    """The instance if its case is in the user's scope."""
    found = db.session.scalar(scoped_instances().where(ProcessInstance.id == instance_id))
    return db.session.get(ProcessInstance, found) if found is not None else None


def has_instances_in_scope(definition_id: int) -> bool:
    return db.session.scalar(scoped_instances(definition_id).limit(1)) is not None


# --- the overview -----------------------------------------------------------------------------------------------


@dataclass
class VersionRow:
    definition: ProcessDefinition
    #: Instance status value -> count, in the user's scope.
    counts: dict[str, int] = field(default_factory=dict)
    open_incidents: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class ProcessRow:
    key: str
    name: str
    versions: list[VersionRow]

    def total(self, status: str) -> int:
        return sum(v.counts.get(status, 0) for v in self.versions)

    @property
    def open_incidents(self) -> int:
        return sum(v.open_incidents for v in self.versions)


def overview() -> list[ProcessRow]:
    """Every deployed BPMN process with its versions (newest first), instance counts by state and open incidents."""
    definitions = db.session.scalars(
        select(ProcessDefinition)
        .where(ProcessDefinition.kind == DefinitionKind.BPMN)
        .order_by(ProcessDefinition.key, ProcessDefinition.version.desc())
    ).all()
    scoped = scoped_instances()
    counts: dict[int, dict[str, int]] = {}
    for definition_id, status, count in db.session.execute(
        select(ProcessInstance.definition_id, ProcessInstance.status, func.count())
        .where(ProcessInstance.id.in_(scoped))
        .group_by(ProcessInstance.definition_id, ProcessInstance.status)
    ):
        counts.setdefault(definition_id, {})[InstanceStatus(status).value] = count
    incidents = dict(
        db.session.execute(
            select(ProcessInstance.definition_id, func.count())
            .join(Incident, Incident.instance_id == ProcessInstance.id)
            .where(Incident.status == IncidentStatus.OPEN, ProcessInstance.id.in_(scoped))
            .group_by(ProcessInstance.definition_id)
        ).all()
    )
    rows: dict[str, ProcessRow] = {}
    for d in definitions:
        row = rows.setdefault(d.key, ProcessRow(key=d.key, name=d.name or d.key, versions=[]))
        row.versions.append(VersionRow(d, counts.get(d.id, {}), incidents.get(d.id, 0)))
    return list(rows.values())


def definition_version(key: str, version: int) -> ProcessDefinition | None:
    return db.session.scalar(
        select(ProcessDefinition).where(
            ProcessDefinition.key == key,
            ProcessDefinition.version == version,
            ProcessDefinition.kind == DefinitionKind.BPMN,
        )
    )


def versions_of(key: str) -> list[int]:
    """The deployed versions of a process, newest first."""
    return list(
        db.session.scalars(
            select(ProcessDefinition.version)
            .where(ProcessDefinition.key == key, ProcessDefinition.kind == DefinitionKind.BPMN)
            .order_by(ProcessDefinition.version.desc())
        )
    )


# --- one definition version -------------------------------------------------------------------------------------


def heat(definition_id: int) -> dict[str, dict[str, int]]:
    """Element id -> {"active", "completed", "incidents"} over the version's instances in the user's scope.

    active: open work items and waiting timers; completed: task_completed and timer_fired events;
    incidents: open incidents stopped at the element.
    """
    scoped = scoped_instances(definition_id)
    counts: dict[str, dict[str, int]] = {}

    def add(kind: str, rows) -> None:
        for element_id, count in rows:
            if element_id:
                counts.setdefault(element_id, {"active": 0, "completed": 0, "incidents": 0})[kind] += count

    add(
        "active",
        db.session.execute(
            select(WorkItem.element_id, func.count())
            .where(WorkItem.status == WorkItemStatus.OPEN, WorkItem.instance_id.in_(scoped))
            .group_by(WorkItem.element_id)
        ),
    )
    add(
        "active",
        db.session.execute(
            select(Timer.element_id, func.count())
            .where(Timer.status == TimerStatus.WAITING, Timer.instance_id.in_(scoped))
            .group_by(Timer.element_id)
        ),
    )
    element = AuditEvent.payload["element_id"].as_string()
    add(
        "completed",
        db.session.execute(
            select(element, func.count())
            .where(AuditEvent.type.in_(PASSED_EVENTS), AuditEvent.instance_id.in_(scoped))
            .group_by(element)
        ),
    )
    add(
        "incidents",
        db.session.execute(
            select(Incident.element_id, func.count())
            .where(Incident.status == IncidentStatus.OPEN, Incident.instance_id.in_(scoped))
            .group_by(Incident.element_id)
        ),
    )
    return counts


def status_counts(definition_id: int) -> dict[str, int]:
    rows = db.session.execute(
        select(ProcessInstance.status, func.count())
        .where(ProcessInstance.id.in_(scoped_instances(definition_id)))
        .group_by(ProcessInstance.status)
    )
    return {InstanceStatus(status).value: count for status, count in rows}


def _with_case(query: Select, instance_column) -> list:
    """Rows of ``query`` with the instance's status and case reference appended."""
    return db.session.execute(
        query.add_columns(ProcessInstance.status, Case.reference)
        .join(ProcessInstance, ProcessInstance.id == instance_column)
        .join(Case, Case.id == ProcessInstance.case_id)
    ).all()


def open_incidents(definition_id: int) -> list:
    """(Incident, instance status, case reference), oldest first."""
    return _with_case(
        select(Incident)
        .where(Incident.status == IncidentStatus.OPEN, Incident.instance_id.in_(scoped_instances(definition_id)))
        .order_by(Incident.created_at, Incident.id)
        .limit(TABLE_SIZE),
        Incident.instance_id,
    )


def longest_waiting(definition_id: int) -> list:
    """(WorkItem, instance status, case reference) of the oldest open work items."""
    return _with_case(
        select(WorkItem)
        .where(WorkItem.status == WorkItemStatus.OPEN, WorkItem.instance_id.in_(scoped_instances(definition_id)))
        .order_by(WorkItem.created_at, WorkItem.id)
        .limit(TABLE_SIZE),
        WorkItem.instance_id,
    )


def timers(definition_id: int, at: datetime) -> tuple[list, list]:
    """(overdue, due within DUE_SOON) waiting timers as (Timer, instance status, case reference), soonest first.

    A timer is overdue when the worker has not fired it: its instance is suspended or stopped, or the worker is
    behind.
    """
    waiting = select(Timer).where(
        Timer.status == TimerStatus.WAITING, Timer.instance_id.in_(scoped_instances(definition_id))
    )
    overdue = _with_case(
        waiting.where(Timer.due_at < at).order_by(Timer.due_at, Timer.id).limit(TABLE_SIZE), Timer.instance_id
    )
    soon = _with_case(
        waiting.where(Timer.due_at >= at, Timer.due_at < at + DUE_SOON)
        .order_by(Timer.due_at, Timer.id)
        .limit(TABLE_SIZE),
        Timer.instance_id,
    )
    return overdue, soon


# --- one instance -------------------------------------------------------------------------------------------------


def instance_events(instance_id: int, event_type: str | None = None, actor_id: int | None = None) -> list[AuditEvent]:
    """The instance's audit events, oldest first, optionally of one type or one actor."""
    query = select(AuditEvent).where(AuditEvent.instance_id == instance_id)
    if event_type:
        query = query.where(AuditEvent.type == event_type)
    if actor_id:
        query = query.where(AuditEvent.actor_id == actor_id)
    return list(db.session.scalars(query.order_by(AuditEvent.occurred_at, AuditEvent.id)))


def open_incidents_of(instance_id: int) -> list[Incident]:
    return list(
        db.session.scalars(
            select(Incident)
            .where(Incident.instance_id == instance_id, Incident.status == IncidentStatus.OPEN)
            .order_by(Incident.id)
        )
    )


def case_reference(case_id: int) -> str | None:
    return db.session.scalar(select(Case.reference).where(Case.id == case_id))


def case_instances(case_id: int) -> list[ProcessInstance]:
    """The processes a case has run, oldest first (for the case page's process history list)."""
    return list(
        db.session.scalars(
            select(ProcessInstance).where(ProcessInstance.case_id == case_id).order_by(ProcessInstance.id)
        )
    )
