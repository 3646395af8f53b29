"""app.core.direct: statements run on the driver keep the column types' conversions, checks and transactions."""

import socket
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError
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


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL pipelines only")
@pytest.mark.parametrize("first", [True, False], ids=["opening the transaction", "inside it"])
def test_a_batch_leaves_the_socket_sending_at_once(opened, users, first):
    """A batch's statements are held back on the TCP socket while written and sent together; afterwards (and when
    it opens the transaction, whose BEGIN psycopg syncs on its own) nothing stays held."""
    db.session.commit()
    connection = db.session.connection()
    if not first:
        direct.run(connection, [direct.Call(_READ, {"id": opened.id})])
    calls = [
        direct.Call(_CLAIM, {"id": opened.id, "user": users["caseworker"].id}),
        direct.Call(_READ, {"id": opened.id}),
    ]
    claimed, read = direct.run(connection, calls)
    assert (claimed.rowcount, read.rows[0][0]) == (1, WorkItemStatus.OPEN)
    sock = socket.socket(fileno=connection.connection.driver_connection.pgconn.socket)
    try:
        if sock.family != socket.AF_UNIX:  # a Unix-domain socket (DATABASE_URL with host=/path) holds nothing back
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0
    finally:
        sock.detach()
    db.session.rollback()
