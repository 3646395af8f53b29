"""What policy designers keep besides deployed versions: drafts, deploy requests awaiting approval, and migration
jobs that move running instances from one version to another."""

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import UTCDateTime
from app.engine.models import DefinitionKind
from app.extensions import db


class DefinitionDraft(db.Model):
    """A BPMN or DMN file a designer is editing; private to its owner until deployed."""

    __tablename__ = "definition_draft"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    kind: Mapped[DefinitionKind] = mapped_column(db.Enum(DefinitionKind, native_enum=False, length=10))
    #: The process or decision id read from the XML at the last save (None while it cannot be read).
    key: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200), default="")
    file_name: Mapped[str] = mapped_column(String(200))
    xml: Mapped[str] = mapped_column(Text)
    #: The deployed version this draft started from, if any.
    base_definition_id: Mapped[int | None] = mapped_column(ForeignKey("process_definition.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    DEPLOYED = "deployed"
    REJECTED = "rejected"
    FAILED = "failed"  # approved, but no longer valid against what was deployed meanwhile: nothing deployed
    WITHDRAWN = "withdrawn"


class DeployRequest(db.Model):
    """Files a designer asked to deploy; a second designer or a supervisor approves (or rejects) them."""

    __tablename__ = "deploy_request"
    __table_args__ = (Index("ix_deploy_request_status", "status", "requested_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[RequestStatus] = mapped_column(db.Enum(RequestStatus, native_enum=False, length=20))
    #: [{"name": file name, "content": xml}, ...] exactly as they will be deployed.
    files: Mapped[list] = mapped_column(JSON)
    #: [{"key", "kind", "name", "file_name", "base_version"}, ...] for lists, without reading the files.
    summary: Mapped[list] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    draft_id: Mapped[int | None] = mapped_column(Integer)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(Text)
    #: Validation problems when approval found the files no longer deployable.
    problems: Mapped[list] = mapped_column(JSON, default=list)
    #: [{"key", "version", "id"}, ...] of the versions the approval created.
    deployed: Mapped[list] = mapped_column(JSON, default=list)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class MigrationJob(db.Model):
    """Running instances of one version to move to another; the worker moves them in batches."""

    __tablename__ = "migration_job"
    __table_args__ = (Index("ix_migration_job_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(String(100))
    source_definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"))
    target_definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"))
    #: Old element id -> new element id for tasks the new version does not have.
    mapping: Mapped[dict] = mapped_column(JSON, default=dict)
    #: The filter that chose the instances (shown on the job page).
    filters: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[JobStatus] = mapped_column(db.Enum(JobStatus, native_enum=False, length=20))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ItemStatus(enum.StrEnum):
    PENDING = "pending"
    MOVED = "moved"
    FAILED = "failed"


class MigrationJobItem(db.Model):
    """One instance of a migration job: moved in its own transaction, or failed and left as it was."""

    __tablename__ = "migration_job_item"
    __table_args__ = (Index("ix_migration_job_item_job_status", "job_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("migration_job.id", ondelete="CASCADE"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("rehab_case.id"))
    status: Mapped[ItemStatus] = mapped_column(db.Enum(ItemStatus, native_enum=False, length=20))
    message: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[list] = mapped_column(JSON, default=list)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
