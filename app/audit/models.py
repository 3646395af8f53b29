"""The audit log: facts in the past tense, written in the same transaction as the change."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import UTCDateTime
from app.extensions import db


class AuditEvent(db.Model):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_case_time", "case_id", "occurred_at"),
        Index("ix_audit_event_instance", "instance_id"),
        Index("ix_audit_event_type_time", "type", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"), primary_key=True)
    #: Past tense: case_created, task_completed, timer_fired, message_delivered, incident_raised, ...
    type: Mapped[str] = mapped_column(String(50))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    jurisdiction_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdiction_node.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("rehab_case.id"))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id"))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
