"""The hash chain over audit_event: every row carries the SHA-256 of its content and of the previous row's hash.

Writing. :func:`hold` keeps a transaction's audit events (plain rows, not ORM objects) in the session until it
commits; then, after the transaction's last flush, the chain head (the one row of audit_chain_head) is locked, each
event gets the next ``seq``, the previous hash and its own hash, they are inserted together, and the head moves on.
On PostgreSQL all of that is one statement, the database function audit_chain_append (app.audit.models), sent as
the transaction's last one, so the head's ``FOR UPDATE`` lock is held from there to the commit with no round trip
to the application in between; on SQLite the transaction already holds the write lock and the same steps run here.
So a row is complete when it is inserted (it is never updated), and the head is the last lock a transaction takes:
concurrent writers queue on it at the very end of their work, and no writer ever waits for another lock while
holding it (no deadlock with the instance locks of app.engine.runtime).

Events recorded inside a savepoint that is rolled back are dropped with it, as the session drops its own objects.

Verifying. verify_chain() walks the rows in ``seq`` order in batches (flat memory for millions of rows),
recomputes every hash and reports the first altered, deleted or inserted row.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Table, bindparam, event, insert, select, text, update
from sqlalchemy.orm import Session, scoped_session

from app.audit.models import AuditChainHead, AuditEvent
from app.core import direct
from app.core.db import keep_until_commit, kept

#: prev_hash of the first row.
GENESIS = "0" * 64
_HELD = "audit_events"  # app.core.db.kept: the rows waiting for the commit


_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_json(value) -> str:
    """Sorted keys, no spaces, UTF-8 text as is: the same bytes for the same content on every database."""
    return _CANONICAL.encode(value)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(*, seq: int, prev_hash: str, **content) -> str:
    """SHA-256 (hex) of a row's canonical JSON content followed by ``prev_hash``; ``content``: the row's other
    columns but its hashes (those :func:`content_around_seq` takes)."""
    before, after = content_around_seq(**content)
    return chained_hash(before, seq, after, prev_hash)


def content_around_seq(
    *,
    type: str,  # noqa: A002 - the column's name
    actor_id: int | None,
    occurred_at: datetime,
    jurisdiction_id: int | None,
    case_id: int | None,
    instance_id: int | None,
    payload,
) -> tuple[str, str]:
    """A row's canonical JSON content (all its columns but the hashes, seq included) as the text before and after
    the seq's digits: the seq is known only once the chain's head is locked, the rest before.

    Sorted keys put ``seq`` right after ``payload`` and before ``type``.
    """
    fields = canonical_json(
        {
            "actor_id": actor_id,
            "case_id": case_id,
            "instance_id": instance_id,
            "jurisdiction_id": jurisdiction_id,
            "occurred_at": _iso(occurred_at),
            "payload": payload,
        }
    )
    return fields[:-1] + ',"seq":', ',"type":' + canonical_json(type) + "}"


def chained_hash(before: str, seq: int, after: str, prev_hash: str) -> str:
    """The row hash from :func:`content_around_seq`'s two parts (app.audit.models.CHAIN_APPEND_FUNCTION computes the
    same in SQL)."""
    return hashlib.sha256((before + str(seq) + after + prev_hash).encode("utf-8")).hexdigest()


# --- writing ------------------------------------------------------------------------------------------------------


def hold(session: Session, row: dict) -> None:
    """Keep one audit event (the audit_event columns but seq and hashes) for the commit of the current transaction."""
    keep_until_commit(session, _HELD, row)


def held_rows(session: Session) -> list[dict]:
    """The events the current transaction will append when it commits."""
    return kept(session, _HELD)


#: Functions of a session giving (table, rows) to insert as it commits, together with its audit events.
_COMPANIONS: list[Callable[[Session], tuple[Table, list[dict]]]] = []


def insert_at_commit(provider: Callable[[Session], tuple[Table, list[dict]]]):
    """Register ``provider``: what it gives is inserted after a transaction's last flush, with its audit events."""
    _COMPANIONS.append(provider)
    return provider


@event.listens_for(Session, "before_commit")
def _seal(session: Session) -> None:
    """Append the transaction's audit events to the chain, as the last thing before the commit."""
    if session.in_nested_transaction():
        return  # releasing a savepoint: the events wait for the outer commit
    session.flush()  # everything else first
    rows = held_rows(session)
    calls = [_insert_call(table, extra) for table, extra in (provide(session) for provide in _COMPANIONS) if extra]
    if rows or calls:
        connection = session.connection()
        direct.run(connection, [*calls, *chain_calls(connection, rows), *_commit_along(session, connection)])


def _commit_along(session: Session, connection: Connection) -> list[direct.Call]:
    """PostgreSQL: the COMMIT itself, sent in the seal's round trip, when the session began the transaction (not one
    it joined on a Connection it was bound to).

    The chain head's lock then ends inside the database, with no wait on this process in between, which on a busy
    machine can stretch to a time slice while every other writer queues (measured: four writers on two cores gained
    about 8%). SQLAlchemy's own commit comes next and finds no transaction open: psycopg then sends nothing. So
    nothing may change the session after this listener, and no call before the COMMIT may check a row count.
    """
    if connection.dialect.name != "postgresql" or isinstance(session.bind, Connection):
        return []
    return [direct.Call(_COMMIT, {})]


_HEAD = AuditChainHead.__table__
_EVENTS = AuditEvent.__table__
_READ_HEAD = direct.Direct(select(_HEAD.c.last_seq, _HEAD.c.last_hash).where(_HEAD.c.id == 1))
_APPEND = direct.Direct(text("SELECT audit_chain_append(CAST(:events AS json))"))  # models.CHAIN_APPEND_FUNCTION
_COMMIT = direct.Direct(text("COMMIT"))
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_MOVE_HEAD = direct.Direct(
    update(_HEAD).where(_HEAD.c.id == 1).values(last_seq=bindparam("last_seq"), last_hash=bindparam("last_hash"))
)


def _insert_call(table: Table, rows: list[dict]) -> direct.Call:
    """An executemany insert of ``rows`` (dicts with the same keys) into ``table``."""
    return direct.Call(direct.insert_of(table, rows[0]), rows, many=True)


def _lock_head(connection) -> tuple[int, str]:
    """(last_seq, last_hash) of the chain (SQLite: the transaction holds the database's write lock)."""
    (head,) = direct.run(connection, [direct.Call(_READ_HEAD, {})])
    if not head.rows:  # a fresh database, or the head lost: start it at the table's last row
        tail = connection.execute(
            select(_EVENTS.c.seq, _EVENTS.c.row_hash)
            .where(_EVENTS.c.seq.is_not(None))
            .order_by(_EVENTS.c.seq.desc())
            .limit(1)
        ).first()
        values = {"id": 1, "last_seq": tail[0] if tail else 0, "last_hash": tail[1] if tail else GENESIS}
        connection.execute(insert(_HEAD).values(values))
        return values["last_seq"], values["last_hash"]
    return head.rows[0][0], head.rows[0][1]


def chain_calls(connection: Connection, rows: list[dict]) -> list[direct.Call]:
    """The statements that give ``rows`` (audit_event columns, not yet inserted) the next chain positions and
    hashes, insert them and move the head.

    PostgreSQL: one call of audit_chain_append, which locks the head, hashes, inserts and moves it; sent last, its
    lock is held from there to the commit only. SQLite (one writer at a time): the head is read here and the rows are
    hashed here.
    """
    if not rows:
        return []
    parts = []
    for row in rows:
        # Hash what the database will give back: the payload after a JSON round trip (tuples become lists, ...).
        stored = json.dumps(row["payload"] if row["payload"] is not None else {})
        row["payload"] = json.loads(stored)
        parts.append((stored, *content_around_seq(**row)))
    if connection.dialect.name == "postgresql":
        events = [
            {**row, "occurred_at": _iso(row["occurred_at"]), "payload": stored, "before": before, "after": after}
            for row, (stored, before, after) in zip(rows, parts, strict=True)
        ]
        return [direct.Call(_APPEND, {"events": _COMPACT.encode(events)})]
    last_seq, last_hash = _lock_head(connection)
    for row, (_, before, after) in zip(rows, parts, strict=True):
        last_seq += 1
        row["seq"], row["prev_hash"] = last_seq, last_hash
        row["row_hash"] = last_hash = chained_hash(before, last_seq, after, last_hash)
    return [_insert_call(_EVENTS, rows), direct.Call(_MOVE_HEAD, {"last_seq": last_seq, "last_hash": last_hash})]


# --- verifying ----------------------------------------------------------------------------------------------------

ALTERED, DELETED, INSERTED = "altered", "deleted", "inserted"


@dataclass(frozen=True)
class Problem:
    """The first place the chain does not hold."""

    kind: str  #: altered, deleted or inserted
    seq: int | None  #: chain position (None for a row outside the chain)
    event_id: int | None  #: audit_event.id of the row concerned (the row after the gap for ``deleted``)
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "no seq"
        row = f", id {self.event_id}" if self.event_id is not None else ""
        return f"{self.kind} at {where}{row}: {self.detail}"


@dataclass(frozen=True)
class VerifyResult:
    rows: int  #: rows checked in chain order
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


_COLUMNS = (
    AuditEvent.id,
    AuditEvent.seq,
    AuditEvent.type,
    AuditEvent.actor_id,
    AuditEvent.occurred_at,
    AuditEvent.jurisdiction_id,
    AuditEvent.case_id,
    AuditEvent.instance_id,
    AuditEvent.payload,
    AuditEvent.prev_hash,
    AuditEvent.row_hash,
)


def verify_chain(session: Session | scoped_session, batch: int = 5000) -> VerifyResult:
    """Walk the chain in ``seq`` order and report the first altered, deleted or inserted row.

    - altered: a row's content no longer gives its stored hash;
    - deleted: a position is missing (a gap in ``seq``, or rows missing after the last one the head names);
    - inserted: a row outside the chain (no ``seq``, a repeated ``seq``, beyond the head) or one whose
      ``prev_hash`` is not the hash of the row before it.

    Reads in one transaction (a snapshot); the caller ends it.
    """
    if isinstance(session, scoped_session):
        session = session()
    if session.get_transaction() is None and session.get_bind().dialect.name == "postgresql":
        # One snapshot for the whole walk: a commit meanwhile must not look like a row beyond the head.
        # (SQLite: the transaction holds the write lock, so writers wait until the walk ends.)
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    expected_seq, prev_hash, rows, after = 1, GENESIS, 0, 0
    while True:
        chunk = session.execute(
            select(*_COLUMNS).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(batch)
        ).all()
        for row in chunk:
            problem = _check_row(row, expected_seq, prev_hash)
            if problem is not None:
                return VerifyResult(rows, problem)
            rows += 1
            expected_seq, prev_hash = row.seq + 1, row.row_hash
        if len(chunk) < batch:
            break
        after = chunk[-1].seq  # plain rows, not ORM objects: nothing is kept between batches
    outside = session.execute(
        select(AuditEvent.id).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id).limit(1)
    ).scalar()
    if outside is not None:
        return VerifyResult(rows, Problem(INSERTED, None, outside, "row without a chain position"))
    head = session.execute(select(AuditChainHead.last_seq, AuditChainHead.last_hash)).first()
    last_seq = expected_seq - 1
    if head is not None and (head.last_seq, head.last_hash) != (last_seq, prev_hash):
        if head.last_seq > last_seq:
            detail = f"the chain ends at seq {last_seq} but its head names seq {head.last_seq}"
            return VerifyResult(rows, Problem(DELETED, last_seq + 1, None, detail))
        if head.last_seq < last_seq:
            detail = f"rows after seq {head.last_seq}, the last one the chain head names"
            return VerifyResult(rows, Problem(INSERTED, head.last_seq + 1, None, detail))
        detail = "the chain head names this position with another hash"
        return VerifyResult(rows, Problem(ALTERED, last_seq, None, detail))
    if head is None and rows:
        return VerifyResult(rows, Problem(DELETED, None, None, "the chain head row is missing"))
    return VerifyResult(rows, None)


def _check_row(row, expected_seq: int, prev_hash: str) -> Problem | None:
    if row.seq < expected_seq:  # only possible without the unique index
        return Problem(INSERTED, row.seq, row.id, "a second row at this position")
    if row.seq > expected_seq:
        missing = f"seq {expected_seq}" if row.seq == expected_seq + 1 else f"seq {expected_seq}-{row.seq - 1}"
        return Problem(DELETED, expected_seq, row.id, f"{missing} missing before this row")
    if row.prev_hash is None or row.row_hash is None:
        return Problem(ALTERED, row.seq, row.id, "hashes missing")
    computed = row_hash(
        seq=row.seq,
        type=row.type,
        actor_id=row.actor_id,
        occurred_at=row.occurred_at,
        jurisdiction_id=row.jurisdiction_id,
        case_id=row.case_id,
        instance_id=row.instance_id,
        payload=row.payload,
        prev_hash=row.prev_hash,
    )
    if computed != row.row_hash:
        return Problem(ALTERED, row.seq, row.id, "content does not match its hash")
    if row.prev_hash != prev_hash:  # both rows hash right: one of them was put there whole
        return Problem(INSERTED, row.seq, row.id, f"does not link to the row before it (seq {row.seq - 1})")
    return None
