"""Revision 0004 chains the audit rows written before it, and the chain verifies."""

from sqlalchemy import create_engine, text

from tests.conftest import PG_URL
from tests.test_migrations import empty_database, flask  # noqa: F401  (the fixture)


def test_0004_chains_existing_rows_and_verifies(empty_database):  # noqa: F811
    assert flask(empty_database, "db", "upgrade", "0003").returncode == 0
    engine = create_engine(empty_database)
    with engine.begin() as conn:
        for n, type_ in enumerate(["case_created", "task_completed", "case_closed"]):
            conn.execute(
                text("INSERT INTO audit_event (type, occurred_at, payload) VALUES (:type, :at, :payload)"),
                {"type": type_, "at": f"2026-01-0{n + 1} 08:00:00.123456", "payload": f'{{"n": {n}, "名": "张三"}}'},
            )
    upgraded = flask(empty_database, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT seq FROM audit_event ORDER BY id")).scalars().all() == [1, 2, 3]
        assert conn.execute(text("SELECT last_seq FROM audit_chain_head")).scalar_one() == 3
    verified = flask(empty_database, "audit", "verify")
    assert verified.returncode == 0 and "3 rows verified" in verified.stdout, verified.stdout + verified.stderr

    if PG_URL:  # the trigger is installed: even the owner cannot rewrite history
        with engine.connect() as conn:
            refused = conn.execute(text("SELECT count(*) FROM pg_trigger WHERE tgname = 'audit_event_append_only'"))
            assert refused.scalar_one() == 1
    else:
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_event SET payload = '{}' WHERE seq = 2"))
        broken = flask(empty_database, "audit", "verify")
        assert broken.returncode == 1 and "altered at seq 2" in broken.stderr, broken.stdout + broken.stderr
    engine.dispose()

    downgraded = flask(empty_database, "db", "downgrade", "0003")
    assert downgraded.returncode == 0, downgraded.stderr
