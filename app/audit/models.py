"""The audit log: facts in the past tense, written in the same transaction as the change.

Append-only and hash-chained (app.audit.chain): every row carries its position ``seq``, the hash of the row before
it and its own hash; on PostgreSQL a trigger refuses UPDATE and DELETE.
"""

from datetime import datetime

from sqlalchemy import DDL, JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import UTCDateTime
from app.extensions import db


class AuditEvent(db.Model):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_case_time", "case_id", "occurred_at"),
        Index("ix_audit_event_instance", "instance_id"),
        Index("ix_audit_event_type_time", "type", "occurred_at"),
        Index("ix_audit_event_seq", "seq", unique=True),
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
    #: Position in the hash chain, 1, 2, 3, ... without gaps; set when the transaction commits.
    seq: Mapped[int | None] = mapped_column(BigInteger)
    #: ``row_hash`` of the row at ``seq - 1`` (64 zeros for the first row).
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    #: SHA-256 of this row's content and ``prev_hash`` (app.audit.chain.row_hash).
    row_hash: Mapped[str | None] = mapped_column(String(64))


class AuditChainHead(db.Model):
    """The one row (id 1) naming the chain's last position and hash; writers lock it to append."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="ck_audit_chain_head_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


#: PostgreSQL: the table is append-only for everyone, the application included (TRUNCATE is not a row event).
APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""
APPEND_ONLY_TRIGGER = """
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
"""

# create_all() (tests, benchmarks) installs the trigger as the migration does.
event.listen(AuditEvent.__table__, "after_create", DDL(APPEND_ONLY_FUNCTION).execute_if(dialect="postgresql"))
event.listen(AuditEvent.__table__, "after_create", DDL(APPEND_ONLY_TRIGGER).execute_if(dialect="postgresql"))
