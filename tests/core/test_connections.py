"""Pooled PostgreSQL connections: pinged before use only after sitting idle (app.extensions.ping_when_idle)."""

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app import create_app
from app.extensions import db
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(not PG_URL, reason="pooled server connections: PostgreSQL")


def _app(idle_seconds: float):
    return create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": PG_URL, "DATABASE_PING_AFTER_IDLE_SECONDS": idle_seconds}
    )


def _backend_pid() -> int:
    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    db.session.commit()  # the connection goes back to the pool
    return pid


def _kill(pid: int) -> None:
    with psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]  # waits for its exit


def _count_pings(monkeypatch) -> list:
    pings, ping = [], db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection))
    return pings


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(app, monkeypatch):
    with _app(0).app_context():
        pings = _count_pings(monkeypatch)
        pid = _backend_pid()
        _kill(pid)
        assert _backend_pid() != pid  # no error: the ping found it dead and the pool opened another
        assert pings == [1]
        db.engine.dispose()


def test_a_connection_used_moments_ago_is_not_pinged(app, monkeypatch):
    with _app(3600).app_context():
        pings = _count_pings(monkeypatch)
        first = _backend_pid()
        assert _backend_pid() == first and pings == []  # the same connection, no extra round trip
        _kill(first)  # the price: a connection killed within the idle time fails its next transaction once ...
        with pytest.raises(OperationalError):
            _backend_pid()
        db.session.rollback()
        assert _backend_pid() != first  # ... and the pool, told of the disconnect, replaces it
        db.engine.dispose()


def test_a_connection_lost_under_a_direct_statement_is_replaced(app):
    from sqlalchemy import select

    from app.core import direct

    one = direct.Direct(select(text("1")))
    with _app(3600).app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()  # in a transaction, not pooled
        _kill(pid)
        with pytest.raises(OperationalError) as lost:
            direct.run(db.session.connection(), [direct.Call(one, {})])
        assert lost.value.connection_invalidated
        db.session.rollback()
        assert _backend_pid() != pid  # the next transaction runs on a new connection, without an error
        db.engine.dispose()
