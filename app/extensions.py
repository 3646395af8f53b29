"""Flask extensions, created unbound and bound to the app in create_app()."""

import sqlite3
import time

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base, session_options={"autoflush": False})
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
#: No default limits: only sign-in is throttled (app.auth.views); counters live in RATELIMIT_STORAGE_URI.
limiter = Limiter(key_func=get_remote_address)


@event.listens_for(Engine, "connect")
def _sqlite_connect(dbapi_connection, connection_record):
    """SQLite: WAL, foreign keys, a busy timeout, and transactions we begin ourselves (see _sqlite_begin)."""
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    """SQLite: take the write lock when a transaction begins.

    A deferred transaction that reads and later writes fails with SQLITE_BUSY when another writer got in
    between; BEGIN IMMEDIATE makes writers queue instead, so an optimistic-concurrency loser sees the
    winner's commit and gets a clean conflict error.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled server connection before use only if it sat idle for ``idle_seconds`` or more.

    SQLAlchemy's ``pool_pre_ping`` pings before every transaction: one more round trip for each of them. A
    connection used moments ago is as good as the ping would show; one idle for longer (the server restarted, a
    firewall dropped it) is pinged, and a dead one is replaced before the transaction starts. SQLite files need none.
    """
    if engine.dialect.name == "sqlite":
        return

    @event.listens_for(engine, "checkin")
    def _idle_from(dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, proxy):
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # just connected, or used moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure means: do not use this connection
            raise DisconnectionError("the pooled connection failed its ping; the pool opens a new one") from exc
