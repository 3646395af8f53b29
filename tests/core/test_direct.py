"""app.core.direct: statements run on the driver keep the column types' conversions, checks and transactions."""

import re
import tempfile
from datetime import UTC, datetime, timedelta, timezone

import pytest
from psycopg import pq
from sqlalchemy import bindparam, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError, ProgrammingError
from sqlalchemy.orm.exc import StaleDataError

from app import engine
from app.core import direct
from app.core.db import transaction
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db
from tests.conftest import PG_URL

_TABLE = WorkItem.__table__
_COLUMNS = ("instance_id", "case_id", "task_id", "element_id", "name", "process_key", "jurisdiction_id")
_INSERT = direct.Direct(
    insert(_TABLE)
    .values({name: bindparam(name) for name in (*_COLUMNS, "status", "form", "due_at", "created_at")})
    .returning(_TABLE.c.id)
)
_READ = direct.Direct(select(_TABLE.c.status, _TABLE.c.form, _TABLE.c.due_at).where(_TABLE.c.id == bindparam("id")))
_CLAIM = direct.Direct(update(_TABLE).where(_TABLE.c.id == bindparam("id")).values(assignee_id=bindparam("user")))
SHANGHAI = timezone(timedelta(hours=8))
DUE = datetime(2026, 3, 9, 17, 30, tzinfo=SHANGHAI)
FORM = [{"id": "place", "label": "地点", "type": "string", "required": True}]


@pytest.fixture
def opened(deploy_fixtures, case_factory, tree):
    """An open work item of a running three_tasks instance."""
    deploy_fixtures("three_tasks.bpmn")
    case = case_factory()
    with transaction():
        info = engine.start_process("three_tasks", case_id=case.id, jurisdiction_id=tree["a"].id)
    return db.session.get(WorkItem, info.opened_work_item_ids[0])


def _row(item: WorkItem, task_id: str) -> dict:
    row = {name: getattr(item, name) for name in _COLUMNS}
    return {**row, "task_id": task_id, "status": WorkItemStatus.OPEN, "form": FORM, "due_at": DUE, "created_at": DUE}


def test_values_go_in_through_the_column_types_and_come_back_typed(opened, clock):
    with transaction():
        (inserted,) = direct.run(db.session.connection(), [direct.Call(_INSERT, _row(opened, "t-1"))])
    new_id = inserted.rows[0][0]
    db.session.expunge_all()
    stored = db.session.get(WorkItem, new_id)  # read by the ORM: the enum, JSON and UTC datetime as it stores them
    assert (stored.status, stored.form, stored.due_at) == (WorkItemStatus.OPEN, FORM, DUE)
    assert stored.due_at.tzinfo is not None and stored.due_at.utcoffset() == timedelta(0)
    (read,) = direct.run(db.session.connection(), [direct.Call(_READ, {"id": new_id})])
    assert read.rows == [(WorkItemStatus.OPEN, FORM, DUE.astimezone(UTC))]
    assert isinstance(read.rows[0][0], WorkItemStatus)


def test_a_row_count_other_than_expected_raises_and_nothing_is_kept(opened, users):
    item_id, user_id = opened.id, users["caseworker"].id
    calls = [
        direct.Call(_CLAIM, {"id": item_id, "user": user_id}, expect=1),
        direct.Call(_CLAIM, {"id": item_id + 1000, "user": user_id}, expect=1),
    ]
    with pytest.raises(StaleDataError, match="0 rows changed instead of 1"), transaction():
        direct.run(db.session.connection(), calls)
    db.session.expunge_all()
    assert db.session.get(WorkItem, item_id).assignee_id is None


def test_a_failing_statement_fails_its_batch_and_the_transaction_keeps_nothing(opened, users):
    item_id = opened.id
    calls = [
        direct.Call(_CLAIM, {"id": item_id, "user": users["caseworker"].id}),
        direct.Call(_INSERT, _row(opened, opened.task_id)),  # (instance_id, task_id) is unique
    ]
    with pytest.raises(IntegrityError), transaction():
        direct.run(db.session.connection(), calls)
    db.session.expunge_all()
    assert db.session.get(WorkItem, item_id).assignee_id is None
    assert db.session.scalar(select(db.func.count()).select_from(_TABLE)) == 1


def test_an_attached_object_is_persistent_without_sql_and_tracks_changes(opened, users):
    user_id, values, statements = users["caseworker"].id, _row(opened, "t-2"), []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with transaction():
        (inserted,) = direct.run(db.session.connection(), [direct.Call(_INSERT, values)])
        every_column = {column.key: None for column in _TABLE.c} | values | {"id": inserted.rows[0][0]}
        item = direct.attach(db.session(), WorkItem(**every_column))
        db.session.flush()
        assert statements == [] and db.session.get(WorkItem, item.id) is item  # nothing to write, nothing to load
        item.assignee_id = user_id
        item_id = item.id
    assert any(sql.startswith("UPDATE work_item") for sql in statements)
    db.session.expunge_all()
    assert db.session.get(WorkItem, item_id).assignee_id == user_id


def test_a_row_read_for_an_object_in_the_session_refreshes_that_object(opened):
    item_id = opened.id
    mine = db.session.get(WorkItem, item_id)
    columns = direct.columns_of(WorkItem)
    read = direct.Direct(select(*columns.values()).where(_TABLE.c.id == bindparam("id")))
    db.session.execute(update(_TABLE).where(_TABLE.c.id == item_id).values(name="renamed"))  # behind the object
    (found,) = direct.run(db.session.connection(), [direct.Call(read, {"id": item_id})])
    same = direct.loaded(db.session(), WorkItem, dict(zip(columns, found.rows[0], strict=True)))
    assert same is mine and mine.name == "renamed" and mine not in db.session.dirty


def _traced(connection):
    """Start libpq's protocol trace of ``connection``; :func:`_messages` ends it."""
    pgconn = connection.connection.driver_connection.pgconn
    trace = tempfile.TemporaryFile("w+")
    pgconn.trace(trace.fileno())
    pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
    return pgconn, trace


def _messages(pgconn, trace) -> list[str]:
    """The traced messages as "F Parse ..." (frontend) and "B ReadyForQuery ..." (backend)."""
    pgconn.untrace()
    trace.seek(0)
    return [f"{side} {rest}" for side, rest in re.findall(r"^([FB])\t\d+\t(.*)$", trace.read(), re.MULTILINE)]


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL pipelines only")
def test_a_batch_opening_a_transaction_sends_its_begin_and_statements_with_one_sync(app):
    """One write and one round trip: the BEGIN, each statement's Parse (the first time only) and Bind/Execute, one
    Sync; the server answers with one ReadyForQuery, the transaction open."""
    calls = [direct.Call(_READ, {"id": -1}), direct.Call(direct.Direct(select(text("41 + 1"))), {})]
    with db.engine.connect() as connection:
        connection.begin()  # as Session.connection() does: SQLAlchemy's begin sends nothing to PostgreSQL
        pgconn, trace = _traced(connection)
        missing, answer = direct.run(connection, calls)
        messages = _messages(pgconn, trace)
        assert (missing.rows, answer.rows) == ([], [(42,)])
        sent = [m.split()[1] for m in messages if m.startswith("F")]
        assert sent.count("Sync") == 1 and sent[-1] == "Sync" and sent.count("Execute") == 3
        assert [m for m in messages if m.startswith("F Parse")][0].startswith('F Parse\t "" "BEGIN"')
        assert [m for m in messages if m.startswith("B ReadyForQuery")] == ["B ReadyForQuery\t T"]

        pgconn, trace = _traced(connection)  # again, inside the transaction: no BEGIN, nothing parsed again
        direct.run(connection, calls)
        sent = [m.split()[1] for m in _messages(pgconn, trace) if m.startswith("F")]
        assert (sent.count("Parse"), sent.count("Execute"), sent.count("Sync")) == (0, 2, 1)
        connection.rollback()
        assert pgconn.transaction_status == pq.TransactionStatus.IDLE  # psycopg ended the transaction it sees


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL pipelines only")
def test_the_begin_sent_keeps_the_connections_isolation_level(app):
    with db.engine.connect().execution_options(isolation_level="SERIALIZABLE") as connection:
        connection.begin()
        pgconn, trace = _traced(connection)
        direct.run(connection, [direct.Call(direct.Direct(select(text("1"))), {})])
        parsed = [m for m in _messages(pgconn, trace) if m.startswith("F Parse")]
        assert parsed[0].startswith('F Parse\t "" "BEGIN ISOLATION LEVEL SERIALIZABLE"')
        assert connection.exec_driver_sql("SHOW transaction_isolation").scalar() == "serializable"
        connection.rollback()


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL prepared statements")
def test_prepared_statements_outlive_savepoint_rollbacks_and_deallocation(opened, users):
    """psycopg would DEALLOCATE ALL after a ROLLBACK TO SAVEPOINT once it had prepared a statement itself; it
    prepares none, so the engine's stay. If one goes anyway (DEALLOCATE), one transaction fails and the next
    prepares them again, under new names (the others may still be there)."""
    read = direct.Call(_READ, {"id": opened.id})
    direct.run(db.session.connection(), [read])
    for _ in range(6):  # enough for psycopg's own preparing, were it on
        db.session.execute(select(WorkItem.id).where(WorkItem.id == opened.id))
    with pytest.raises(IntegrityError):
        with db.session.begin_nested():
            db.session.execute(insert(_TABLE).values(_row(opened, opened.task_id)))  # (instance_id, task_id) unique
    (again,) = direct.run(db.session.connection(), [read])
    assert again.rows[0][0] == WorkItemStatus.OPEN
    db.session.commit()

    (name,) = db.session.execute(
        text("SELECT name FROM pg_prepared_statements WHERE statement LIKE 'SELECT work_item.status, work_item.form%'")
    ).one()
    db.session.execute(text(f"DEALLOCATE {name}"))
    with pytest.raises(ProgrammingError, match="does not exist"):
        direct.run(db.session.connection(), [read])
    db.session.rollback()
    after, claimed = direct.run(db.session.connection(), [read, direct.Call(_CLAIM, {"id": opened.id, "user": None})])
    assert (after.rows[0][0], claimed.rowcount) == (WorkItemStatus.OPEN, 1)


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL pipelines only")
def test_a_value_the_driver_cannot_take_sends_nothing_and_keeps_the_connection(opened):
    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with pytest.raises(ProgrammingError, match="cannot adapt"):
        direct.run(db.session.connection(), [direct.Call(_READ, {"id": object()})])
    assert db.session.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid  # same transaction, same backend
    db.session.rollback()
