"""The audit hash chain: an untouched chain verifies; an edited, deleted or inserted row is found at its place."""

import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from app import engine
from app.audit.chain import GENESIS, row_hash, verify_chain
from app.audit.log import record
from app.audit.models import AuditChainHead, AuditEvent
from app.core.clock import now
from app.core.db import transaction
from app.extensions import db
from tests.conftest import PG_URL
from tests.engine.test_runtime import open_items, start

FIRST = {"address": "拱北 1 号", "pregnant": "false", "visits": "2", "tier": "red"}


@pytest.fixture
def events(app):
    """Ten committed events, in three transactions (the only events: no fixture before it writes any)."""
    for first, last in ((0, 4), (4, 7), (7, 10)):
        with transaction():
            for n in range(first, last):
                record("thing_happened", payload={"n": n, "名": "张三", "list": (1, 2)})
    return 10


@contextmanager
def tampering():
    """Change the table behind the application's back (on PostgreSQL past the append-only trigger)."""
    db.session.commit()
    if PG_URL:
        db.session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
    yield db.session
    if PG_URL:
        db.session.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
    db.session.commit()


def verify():
    db.session.commit()
    result = verify_chain(db.session, batch=3)  # small batches: the walk crosses batch boundaries
    db.session.rollback()
    return result


def seq_rows():
    return db.session.execute(select(AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.row_hash).order_by(AuditEvent.id))


def test_untouched_chain_verifies_and_links_every_row(events):
    result = verify()
    assert result.ok and result.rows == 10
    rows = seq_rows().all()
    assert [r.seq for r in rows] == list(range(1, 11))
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.row_hash for a, b in zip(rows, rows[1:], strict=False))
    head = db.session.get(AuditChainHead, 1)
    assert (head.last_seq, head.last_hash) == (10, rows[-1].row_hash)


def test_awkward_text_hashes_alike_when_written_and_verified(app):
    """PostgreSQL hashes in SQL as it appends, verify_chain in Python: both must see the same bytes."""
    awkward = 'quote " backslash \\ newline \n tab \t nul \x00 emoji 😀 line sep \u2028 中文'
    with transaction():
        record("thing_happened", payload={awkward: [awkward, 1.5, -0, 10**20, None, True], "nested": {"k": awkward}})
        record("thing_happened", actor_id=None, payload={})
    result = verify()
    assert result.ok and result.rows == 2, str(result.problem)


def test_empty_chain_verifies(app):
    assert verify().ok and verify().rows == 0


def test_edited_row_is_reported_altered_at_its_position(events):
    with tampering() as session:
        session.execute(text("UPDATE audit_event SET payload = '{\"n\": 99}' WHERE seq = 6"))
    result = verify()
    assert (result.problem.kind, result.problem.seq, result.rows) == ("altered", 6, 5)


def test_edited_time_or_actor_is_altered_too(events):
    with tampering() as session:
        session.execute(text("UPDATE audit_event SET occurred_at = '2026-03-02 01:00:01' WHERE seq = 2"))
    assert (verify().problem.kind, verify().problem.seq) == ("altered", 2)


def test_deleted_row_is_reported_at_the_gap(events):
    with tampering() as session:
        session.execute(text("DELETE FROM audit_event WHERE seq = 4"))
    result = verify()
    assert (result.problem.kind, result.problem.seq, result.rows) == ("deleted", 4, 3)
    assert "seq 4 missing" in str(result.problem)


def test_deleted_last_rows_are_found_by_the_head(events):
    with tampering() as session:
        session.execute(text("DELETE FROM audit_event WHERE seq >= 9"))
    result = verify()
    assert (result.problem.kind, result.problem.seq, result.rows) == ("deleted", 9, 8)


def test_deleted_row_with_renumbered_successors_is_altered(events):
    with tampering() as session:
        session.execute(text("DELETE FROM audit_event WHERE seq = 4"))
        for seq in range(5, 11):
            session.execute(text("UPDATE audit_event SET seq = :new WHERE seq = :old"), {"new": seq - 1, "old": seq})
        session.execute(text("UPDATE audit_chain_head SET last_seq = 9"))
    assert (verify().problem.kind, verify().problem.seq) == ("altered", 4)


def _insert(session, seq, prev_hash, hash_, payload='{"forged": true}'):
    session.execute(
        text(
            "INSERT INTO audit_event (type, occurred_at, payload, seq, prev_hash, row_hash)"
            " VALUES ('case_closed', '2026-03-02 01:00:00', :payload, :seq, :prev, :hash)"
        ),
        {"payload": payload, "seq": seq, "prev": prev_hash, "hash": hash_},
    )


def test_forged_row_with_made_up_hashes_is_reported_at_its_position(events):
    with tampering() as session:
        _insert(session, 11, "a" * 64, "b" * 64)
    result = verify()
    assert (result.problem.kind, result.problem.seq, result.rows) == ("altered", 11, 10)


def test_forged_row_with_a_right_hash_of_its_own_is_inserted(events, clock):
    with tampering() as session:
        fake_prev = "c" * 64
        digest = row_hash(
            seq=11,
            type="case_closed",
            actor_id=None,
            occurred_at=clock.now(),
            jurisdiction_id=None,
            case_id=None,
            instance_id=None,
            payload={"forged": True},
            prev_hash=fake_prev,
        )
        session.execute(
            text(
                "INSERT INTO audit_event (type, occurred_at, payload, seq, prev_hash, row_hash)"
                " VALUES ('case_closed', :at, '{\"forged\": true}', 11, :prev, :hash)"
            ),
            {"at": clock.now().replace(tzinfo=None), "prev": fake_prev, "hash": digest},
        )
    result = verify()
    assert (result.problem.kind, result.problem.seq) == ("inserted", 11)


def test_forged_row_that_links_properly_is_beyond_the_head(events, clock):
    last = db.session.get(AuditChainHead, 1).last_hash
    digest = row_hash(
        seq=11,
        type="case_closed",
        actor_id=None,
        occurred_at=clock.now(),
        jurisdiction_id=None,
        case_id=None,
        instance_id=None,
        payload={},
        prev_hash=last,
    )
    with tampering() as session:
        session.execute(
            text(
                "INSERT INTO audit_event (type, occurred_at, payload, seq, prev_hash, row_hash)"
                " VALUES ('case_closed', :at, '{}', 11, :prev, :hash)"
            ),
            {"at": clock.now().replace(tzinfo=None), "prev": last, "hash": digest},
        )
    result = verify()
    assert (result.problem.kind, result.problem.seq, result.rows) == ("inserted", 11, 11)


def test_row_without_a_chain_position_is_inserted(events):
    with tampering() as session:
        _insert(session, None, None, None)
    result = verify()
    assert result.problem.kind == "inserted" and result.problem.seq is None and result.problem.event_id == 11


def test_replaced_row_breaks_the_link_to_the_next(events, clock):
    """A row swapped for one with a right hash of its own: the next row no longer links to it."""
    prev = db.session.scalar(select(AuditEvent.row_hash).where(AuditEvent.seq == 2))
    digest = row_hash(
        seq=3,
        type="thing_happened",
        actor_id=None,
        occurred_at=clock.now(),
        jurisdiction_id=None,
        case_id=None,
        instance_id=None,
        payload={},
        prev_hash=prev,
    )
    with tampering() as session:
        session.execute(text("DELETE FROM audit_event WHERE seq = 3"))
        session.execute(
            text(
                "INSERT INTO audit_event (type, occurred_at, payload, seq, prev_hash, row_hash)"
                " VALUES ('thing_happened', :at, '{}', 3, :prev, :hash)"
            ),
            {"at": clock.now().replace(tzinfo=None), "prev": prev, "hash": digest},
        )
    result = verify()
    assert (result.problem.kind, result.problem.seq) == ("inserted", 4)


def test_verify_command_exit_codes(app, events):
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and "10 rows verified" in ok.output
    with tampering() as session:
        session.execute(text("UPDATE audit_event SET type = 'nothing_happened' WHERE seq = 7"))
    broken = runner.invoke(args=["audit", "verify", "--batch", "4"])
    assert broken.exit_code == 1
    assert "altered at seq 7" in broken.output and "6 rows before it verified" in broken.output


# --- writing ------------------------------------------------------------------------------------------------------


def test_rolled_back_events_take_no_position(app):
    with transaction():
        record("first_happened")
    with pytest.raises(RuntimeError), transaction():
        record("never_happened")
        db.session.flush()
        raise RuntimeError("boom")
    with transaction():
        record("second_happened")
    assert verify().ok
    assert db.session.execute(select(AuditEvent.type, AuditEvent.seq).order_by(AuditEvent.seq)).all() == [
        ("first_happened", 1),
        ("second_happened", 2),
    ]


def test_savepoint_rollback_drops_only_the_events_inside_it(app):
    with transaction():
        record("before_savepoint")
        try:
            with db.session.begin_nested():
                record("inside_savepoint")
                db.session.flush()
                raise ValueError("undo")
        except ValueError:
            pass
        with db.session.begin_nested():
            record("inside_kept_savepoint")
        record("after_savepoint")
    types = db.session.scalars(select(AuditEvent.type).order_by(AuditEvent.seq)).all()
    assert types == ["before_savepoint", "inside_kept_savepoint", "after_savepoint"]
    assert verify().ok


def test_audit_off_writes_nothing(app):
    app.config["AUDIT_ENABLED"] = False
    with transaction():
        assert record("thing_happened") is None
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_head_is_recreated_from_the_last_row_when_missing(events):
    with tampering() as session:
        session.execute(text("DELETE FROM audit_chain_head"))
    with transaction():
        record("later_happened")
    assert db.session.scalar(select(AuditEvent.seq).where(AuditEvent.type == "later_happened")) == 11
    assert verify().ok


def test_engine_work_builds_a_valid_chain(deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    start("three_tasks", case_factory())
    data = FIRST
    for _ in range(3):
        [item] = open_items()
        with transaction():
            engine.complete_work_item(item.id, data)
        data = {}
    result = verify()
    count = db.session.scalar(select(func.count()).select_from(AuditEvent))
    assert result.ok and result.rows == count > 8


def _complete_in_thread(app, item_ids, errors):
    """Run each case's three tasks to the end, one transaction per completion."""
    with app.app_context():
        try:
            for item_id in item_ids:
                items, data = [item_id], FIRST
                while items:
                    with transaction():
                        result = engine.complete_work_item(items[0], data)
                    items, data = result.instance.opened_work_item_ids, {}
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(repr(exc))
        finally:
            db.session.remove()


def test_concurrent_completions_keep_one_valid_chain(app, deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    cases = [case_factory() for _ in range(4)]
    for case in cases:
        start("three_tasks", case)
    firsts = [open_items(case.id)[0].id for case in cases]
    db.session.commit()  # and read nothing more: on SQLite an open transaction holds the write lock
    errors: list[str] = []
    threads = [threading.Thread(target=_complete_in_thread, args=(app, firsts[n::2], errors)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    result = verify()
    assert result.ok, str(result.problem)
    assert result.rows == db.session.scalar(select(func.count()).select_from(AuditEvent))
    seqs = db.session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
    assert seqs == list(range(1, len(seqs) + 1))


# --- PostgreSQL: append-only -----------------------------------------------------------------------------------


@pytest.mark.skipif(not PG_URL, reason="the append-only trigger is PostgreSQL's")
@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_event SET payload = '{}' WHERE seq = 2", "DELETE FROM audit_event WHERE seq = 2"],
)
def test_postgresql_refuses_update_and_delete(events, statement):
    db.session.commit()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text(statement))
    db.session.rollback()
    assert verify().ok


# --- the seal's commit ----------------------------------------------------------------------------------------


def test_failing_seal_keeps_nothing_and_the_session_goes_on(app):
    """A statement of the seal's round trip fails (here a companion row breaking a constraint): no event, no row of
    the transaction is kept, on PostgreSQL although the COMMIT was queued behind it."""
    from app.audit import chain

    def broken(session):
        return AuditChainHead.__table__, [{"id": 2, "last_seq": 0, "last_hash": GENESIS}]  # the head is row 1 only

    chain.insert_at_commit(broken)
    try:
        with pytest.raises(IntegrityError), transaction():
            record("thing_happened")
    finally:
        chain._COMPANIONS.remove(broken)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0
    with transaction():
        record("later_happened")
    result = verify()
    assert result.ok and result.rows == 1


@pytest.mark.skipif(not PG_URL, reason="the seal sends the COMMIT itself on PostgreSQL only")
def test_session_in_an_outer_transaction_leaves_the_commit_to_it(app):
    """A session bound to a Connection whose transaction someone else began must not commit that transaction."""
    from app.audit.chain import hold

    with db.engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        hold(
            session,
            {
                "type": "thing_happened",
                "actor_id": None,
                "occurred_at": now(),
                "case_id": None,
                "instance_id": None,
                "jurisdiction_id": None,
                "payload": {},
            },
        )
        session.commit()
        assert connection.scalar(select(func.count()).select_from(AuditEvent)) == 1
        session.close()
        outer.rollback()
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0
