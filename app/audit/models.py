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

#: PostgreSQL: append a transaction's events to the chain in one statement (app.audit.chain.chain_calls), so
#: the head's lock is taken and released without a round trip to the application in between. ``events``: a JSON
#: array of the rows' columns but seq and hashes (``payload`` as JSON text: a json field would be decoded on the way,
#: and a ``\u0000`` in it refused), each with ``before`` and ``after``, its canonical content around the seq
#: (app.audit.chain.content_around_seq); the hashes are those app.audit.chain.chained_hash gives.
CHAIN_APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_chain_append(events json) RETURNS bigint AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    next_hash text;
    e record;
BEGIN
    SELECT last_seq, last_hash INTO head_seq, head_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN  -- a fresh database, or the head lost: start it at the table's last row
        INSERT INTO audit_chain_head (id, last_seq, last_hash)
        SELECT 1, coalesce(max(seq), 0),
               coalesce((SELECT row_hash FROM audit_event WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1),
                        repeat('0', 64))
        FROM audit_event
        ON CONFLICT DO NOTHING;
        SELECT last_seq, last_hash INTO head_seq, head_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE;
    END IF;
    FOR e IN
        SELECT * FROM json_to_recordset(events) AS x(
            type text, actor_id integer, occurred_at timestamptz, jurisdiction_id integer, case_id integer,
            instance_id integer, payload text, before text, after text)
    LOOP
        head_seq := head_seq + 1;
        next_hash := encode(sha256(convert_to(e.before || head_seq::text || e.after || head_hash, 'UTF8')), 'hex');
        INSERT INTO audit_event (type, actor_id, occurred_at, jurisdiction_id, case_id, instance_id, payload,
                                 seq, prev_hash, row_hash)
        VALUES (e.type, e.actor_id, e.occurred_at, e.jurisdiction_id, e.case_id, e.instance_id, e.payload::json,
                head_seq, head_hash, next_hash);
        head_hash := next_hash;
    END LOOP;
    UPDATE audit_chain_head SET last_seq = head_seq, last_hash = head_hash WHERE id = 1;
    RETURN head_seq;
END;
$$ LANGUAGE plpgsql
"""

# create_all() (tests, benchmarks) installs the trigger and the function as the migrations do.
event.listen(AuditEvent.__table__, "after_create", DDL(APPEND_ONLY_FUNCTION).execute_if(dialect="postgresql"))
event.listen(AuditEvent.__table__, "after_create", DDL(APPEND_ONLY_TRIGGER).execute_if(dialect="postgresql"))
event.listen(AuditChainHead.__table__, "after_create", DDL(CHAIN_APPEND_FUNCTION).execute_if(dialect="postgresql"))
