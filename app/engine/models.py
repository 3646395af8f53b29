"""Tables the engine owns: definitions, spec bundles, instances and their read models."""

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import UTCDateTime
from app.extensions import db


class DefinitionKind(enum.StrEnum):
    BPMN = "bpmn"
    DMN = "dmn"


class ProcessDefinition(db.Model):
    """One immutable deployed version of one BPMN process or DMN decision (one per file)."""

    __tablename__ = "process_definition"
    __table_args__ = (UniqueConstraint("key", "version"), Index("ix_process_definition_key_sha", "key", "sha256"))

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The process id (BPMN) or decision id (DMN).
    key: Mapped[str] = mapped_column(String(100))
    kind: Mapped[DefinitionKind] = mapped_column(db.Enum(DefinitionKind, native_enum=False, length=10))
    name: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(200))
    #: The file's content; deferred: loaded only when a spec bundle is built or the file is downloaded.
    xml: Mapped[str] = mapped_column(Text, deferred=True)
    #: Keys this definition needs at run time: called processes and decisions.
    dependencies: Mapped[list] = mapped_column(JSON, default=list)
    #: Message names that start this process (message start events).
    start_messages: Mapped[list] = mapped_column(JSON, default=list)
    #: [[element id, name], ...] of its user tasks (BPMN): the inbox's task filter lists these.
    user_tasks: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deployed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class SpecBundle(db.Model):
    """A serialized, ready-to-run spec with its called processes and decisions, stored once per content."""

    __tablename__ = "spec_bundle"

    #: sha256 over the sha256s of the definition versions it was built from.
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InstanceStatus(enum.StrEnum):
    RUNNING = "running"  # waiting for people, timers or messages
    INCIDENT = "incident"  # stopped at its last good state by a failing step; retry continues it
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ProcessInstance(db.Model):
    """One run of one definition version for one case; its state is small because specs live in SpecBundle."""

    __tablename__ = "process_instance"
    __table_args__ = (Index("ix_process_instance_case_status", "case_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("rehab_case.id"))
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"), index=True)
    bundle_sha256: Mapped[str] = mapped_column(ForeignKey("spec_bundle.sha256"))
    process_key: Mapped[str] = mapped_column(String(100))
    jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdiction_node.id"))
    status: Mapped[InstanceStatus] = mapped_column(db.Enum(InstanceStatus, native_enum=False, length=20))
    #: Serialized workflow without its spec (see app.engine.serialization).
    state: Mapped[str] = mapped_column(Text)
    #: Optimistic-concurrency counter: every save checks and bumps it.
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    #: The instance whose message started this one, if any.
    parent_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id"))

    definition: Mapped[ProcessDefinition] = relationship(lazy="joined", innerjoin=True)

    __mapper_args__ = {"version_id_col": lock_version}


class WorkItemStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class WorkItem(db.Model):
    """A READY user task, projected so inboxes never deserialize workflows."""

    __tablename__ = "work_item"
    __table_args__ = (
        UniqueConstraint("instance_id", "task_id"),
        # Claimable pages sorted by due date; "mine" pages sorted by due date (bench/inbox.py).
        Index("ix_work_item_open_role_node", "status", "candidate_role", "jurisdiction_id", "due_at"),
        Index("ix_work_item_assignee_status", "assignee_id", "status", "due_at"),
        Index("ix_work_item_status_due", "status", "due_at"),
        Index("ix_work_item_case_status", "case_id", "status"),
        # Inbox: overdue / due-soon counts and pages within a jurisdiction; "recently completed by me".
        Index("ix_work_item_status_node_due", "status", "jurisdiction_id", "due_at"),
        Index("ix_work_item_completed_by", "completed_by_id", "completed_at"),
        # KPIs count one kind of task by when it was due, opened or done (bench/kpi.py).
        Index("ix_work_item_element_due", "element_id", "due_at"),
        Index("ix_work_item_element_created", "element_id", "created_at"),
        Index("ix_work_item_element_completed", "element_id", "completed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("rehab_case.id"))
    #: SpiffWorkflow task uuid (stable for the life of the task).
    task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    process_key: Mapped[str] = mapped_column(String(100))
    lane: Mapped[str | None] = mapped_column(String(100))
    candidate_role: Mapped[str | None] = mapped_column(String(32))
    jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdiction_node.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    status: Mapped[WorkItemStatus] = mapped_column(db.Enum(WorkItemStatus, native_enum=False, length=20))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The article that sets the deadline, e.g. "条例14".
    legal_basis: Mapped[str | None] = mapped_column(String(100))
    #: Form fields as plain data (id, label, type, required, options, constraints).
    form: Mapped[list] = mapped_column(JSON, default=list)
    documentation: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class TimerStatus(enum.StrEnum):
    WAITING = "waiting"
    FIRED = "fired"
    CANCELLED = "cancelled"


class Timer(db.Model):
    """A waiting timer event, projected with an indexed due time so workers wake only due instances."""

    __tablename__ = "timer"
    __table_args__ = (
        UniqueConstraint("instance_id", "task_id"),
        Index("ix_timer_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("rehab_case.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(100))
    #: "intermediate" or "boundary".
    kind: Mapped[str] = mapped_column(String(20))
    interrupting: Mapped[bool] = mapped_column(default=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[TimerStatus] = mapped_column(db.Enum(TimerStatus, native_enum=False, length=20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MessageSubscription(db.Model):
    """A waiting message catch event (intermediate or boundary) of a running instance."""

    __tablename__ = "message_subscription"
    __table_args__ = (
        UniqueConstraint("instance_id", "task_id"),
        Index("ix_message_subscription_case_name", "case_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("rehab_case.id"))
    task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MessageStatus(enum.StrEnum):
    PENDING = "pending"  # nobody was waiting for it yet; the worker tries again
    DELIVERED = "delivered"
    EXPIRED = "expired"  # nobody took it within REHABFLOW_MESSAGE_TTL_DAYS


class Message(db.Model):
    """Outbox of messages between instances of the same case, correlated by case id."""

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_status_case", "status", "case_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("rehab_case.id"))
    name: Mapped[str] = mapped_column(String(100))
    #: The serialized SpiffWorkflow event (name, payload, correlations).
    event: Mapped[dict] = mapped_column(JSON)
    source_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id"))
    target_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id"))
    status: Mapped[MessageStatus] = mapped_column(db.Enum(MessageStatus, native_enum=False, length=20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Incident(db.Model):
    """A step that failed; its instance waits at its last good state until someone retries."""

    __tablename__ = "incident"
    __table_args__ = (Index("ix_incident_status_instance", "status", "instance_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("rehab_case.id"))
    element_id: Mapped[str | None] = mapped_column(String(100))
    #: What was running: start, complete, timer, message, retry.
    job: Mapped[str] = mapped_column(String(20))
    error: Mapped[str] = mapped_column(Text)
    status: Mapped[IncidentStatus] = mapped_column(db.Enum(IncidentStatus, native_enum=False, length=20))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
