"""Hot statements run straight on the driver connection: compiled once per dialect, batched into one round trip.

A statement sent through SQLAlchemy's execution path costs about 100-140 µs of CPU on the 2-core reference machine
(execution context, result metadata, events, cache lookup; an ORM query loading objects twice that) where the same
statement costs 45-65 µs on the bare driver, and several statements share one round trip in a pipeline
(measured 2026-11-24; bench/engine.py shows the effect). The engine's statements per step are few, fixed and
simple, so they are built once as Core statements, compiled here per dialect (SQLAlchemy still renders the SQL and
converts every value with the column types' own bind processors: enums, JSON, timezone-aware datetimes), and sent
together: through libpq's pipeline on PostgreSQL (one write and one round trip, the transaction's BEGIN included:
app.core.pipeline), one after another on SQLite (in process).

What this skips, callers do themselves: ORM events (``do_orm_execute``, flush hooks) do not see these statements
(note KPI marks with app.audit.marks) and Python-side column defaults are not applied (give every column). The rows
of a SELECT come back converted by its columns' result processors (enums, JSON on SQLite, UTC datetimes); RETURNING
values come back as the driver gives them (use it for ids). They run in the session's current transaction, on its
connection.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Select, Table, bindparam, insert
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql import Executable

from app.core import pipeline


class Direct:
    """A Core statement (no expanding ``IN`` parameters) to be run with :func:`run`."""

    def __init__(self, statement: Executable):
        self.statement = statement
        self._by_dialect: dict[tuple, _Compiled] = {}

    def compiled_for(self, dialect: Dialect) -> "_Compiled":
        key = (dialect.name, dialect.driver, dialect.server_version_info)
        compiled = self._by_dialect.get(key)
        if compiled is None:
            compiled = self._by_dialect[key] = _Compiled(self.statement, dialect)
        return compiled


class _Compiled:
    def __init__(self, statement: Executable, dialect: Dialect):
        compiled = statement.compile(dialect=dialect)
        self._compiled = compiled
        self.sql = compiled.string
        self.order = list(compiled.positiontup) if compiled.positional else None
        self.processors = [
            (name, processor)
            for bind, name in compiled.bind_names.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        # Without the driver's type codes (not known before a run): fine for the column types used here.
        readers = (
            [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in statement.selected_columns]
            if isinstance(statement, Select)
            else []
        )
        self.readers = readers if any(readers) else None

    def read(self, outcome: "Outcome") -> "Outcome":
        if self.readers is None:
            return outcome
        rows = [
            tuple(value if read is None else read(value) for read, value in zip(self.readers, row, strict=True))
            for row in outcome.rows
        ]
        return Outcome(outcome.rowcount, rows)

    def parameters(self, values: dict):
        params = self._compiled.construct_params(values)
        for name, processor in self.processors:
            params[name] = processor(params[name])
        return tuple(params[name] for name in self.order) if self.order is not None else params


_INSERTS: dict[tuple, Direct] = {}  # insert_of's statements, built on first use


def insert_of(table: Table, names: Iterable[str], returning: Column | None = None) -> Direct:
    """The INSERT into ``table`` of the columns ``names`` (e.g. a row dict's keys), with ``returning`` back."""
    key = (table, tuple(names), returning)
    statement = _INSERTS.get(key)
    if statement is None:
        built = insert(table).values({name: bindparam(name) for name in key[1]})
        # inline(): no implicit RETURNING of the primary key, which nobody reads
        statement = _INSERTS[key] = Direct(built.inline() if returning is None else built.returning(returning))
    return statement


@dataclass(frozen=True)
class Call:
    """One statement with its values: a dict, or a list of dicts with ``many`` (executemany; nothing returned).

    ``expect``: the number of rows the statement must change; any other count raises StaleDataError (a row was
    changed or removed meanwhile), as the ORM's own version check does.
    """

    direct: Direct
    values: dict | list[dict]
    many: bool = False
    expect: int | None = None


@dataclass(frozen=True)
class Outcome:
    rowcount: int
    rows: list[tuple]


def run(connection: Connection, calls: Sequence[Call]) -> list[Outcome]:
    """Run ``calls`` in order in the connection's transaction; one round trip on PostgreSQL.

    A failing statement raises SQLAlchemy's wrapper of the driver's error, as a session would (IntegrityError,
    OperationalError, ...; on PostgreSQL the statements after it are not run either); the transaction is then to be
    rolled back, as after any failed statement.
    """
    dialect = connection.dialect
    pooled = connection.connection
    driver = pooled.driver_connection
    compileds = [call.direct.compiled_for(dialect) for call in calls]
    batch = [
        (compiled.sql, [compiled.parameters(values) for values in (call.values if call.many else [call.values])])
        for call, compiled in zip(calls, compileds, strict=True)
    ]
    try:
        if dialect.name == "postgresql" and pipeline.supported:
            outcomes = [Outcome(*outcome) for outcome in pipeline.run(pooled.info, driver, batch)]
        else:
            outcomes = [_execute(_cursor(pooled.info, driver), sql, rows) for sql, rows in batch]
    except dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy reports it, and a lost connection leaves the pool
        lost = dialect.is_disconnect(exc, driver, None)
        if lost:
            connection.invalidate(exc)
        error = DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost)
        raise error from exc
    for call, outcome in zip(calls, outcomes, strict=True):
        if call.expect is not None and outcome.rowcount != call.expect:
            raise StaleDataError(f"{outcome.rowcount} rows changed instead of {call.expect}: changed meanwhile")
    return [compiled.read(outcome) for compiled, outcome in zip(compileds, outcomes, strict=True)]


_CURSOR = "app.core.direct.cursor"  # key in the pooled connection's info: its cursor, kept while it lives


def _cursor(info: dict, driver):
    """A cursor of the driver connection, kept with it in the pool (``info`` is the pool's dictionary for it,
    emptied when the connection is replaced)."""
    cursor = info.get(_CURSOR)
    if cursor is None:
        cursor = info[_CURSOR] = driver.cursor()
    return cursor


def _execute(cursor, sql: str, rows: list) -> Outcome:
    """SQLite (and a PostgreSQL client library without pipelines): one statement, run for each of ``rows``."""
    if len(rows) == 1:
        cursor.execute(sql, rows[0])
    else:
        cursor.executemany(sql, rows)
    read = cursor.fetchall() if cursor.description is not None else []
    return Outcome(cursor.rowcount if cursor.rowcount >= 0 else len(read), read)


def columns_of(cls) -> dict[str, Column]:
    """The columns a query for the mapped class ``cls`` loads (not deferred ones), by attribute name."""
    return {attr.key: attr.columns[0] for attr in cls.__mapper__.column_attrs if not attr.deferred}


def loaded(session: Session, cls, row: dict):
    """The session's ``cls`` object for a row read with :func:`run` (every attribute of :func:`columns_of`), as a
    query with ``populate_existing`` gives it: the object already in the session, with the row's values, or else a
    new one, persistent without any SQL."""
    mapper = cls.__mapper__
    key = Session.identity_key(cls, tuple(row[mapper.get_property_by_column(c).key] for c in mapper.primary_key))
    existing = session.identity_map.get(key)
    if existing is None:
        return persistent(session, cls, row)
    for name, value in row.items():
        set_committed_value(existing, name, value)
    return existing


def persistent(session: Session, cls, row: dict):
    """A new ``cls`` object for a row in the database (every column of :func:`columns_of` given), in the session as
    a query would load it: built without its constructor and values set as SQLAlchemy's loader sets them, without
    attribute events (half the CPU of ``attach(session, cls(**row))``)."""
    obj = cls.__mapper__.class_manager.new_instance()
    obj.__dict__.update(row)
    return attach(session, obj)


def attach(session: Session, obj):
    """Make ``obj`` persistent without SQL: a new ORM object whose row :func:`run` has just inserted (every column
    given, the primary key set from RETURNING), as if the session had flushed it."""
    make_transient_to_detached(obj)
    session.add(obj)
    return obj
