"""Transactions: one commit per request or job, in one place."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import DateTime, TypeDecorator, event
from sqlalchemy.orm import Session, SessionTransaction

from app.extensions import db


@contextmanager
def transaction() -> Iterator[Session]:
    """Run a block as one transaction: commit on success, roll back on any error.

    Operations below this only ``flush()``; the commit happens here (or in the request teardown).
    """
    session = db.session
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


_KEPT = "kept_until_commit"  # session.info: {key: [(item, transaction it was kept in)]}


def keep_until_commit(session: Session, key: str, item) -> None:
    """Keep ``item`` under ``key`` for the session's current transaction, to be written as it commits.

    Items kept inside a savepoint that rolls back are dropped with it, as the session drops its own objects;
    all are forgotten when the transaction ends.
    """
    transaction = session.get_nested_transaction() or session.get_transaction() or session.begin()
    session.info.setdefault(_KEPT, {}).setdefault(key, []).append((item, transaction))


def kept(session: Session, key: str) -> list:
    """The items kept under ``key`` in the current transaction, in the order they were kept."""
    return [item for item, _ in session.info.get(_KEPT, {}).get(key, ())]


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    for key, entries in session.info.get(_KEPT, {}).items():
        session.info[_KEPT][key] = [(item, tx) for item, tx in entries if not _within(tx, previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_KEPT, None)


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    """Whether ``transaction`` is ``ancestor`` or (a savepoint) inside it."""
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


class UTCDateTime(TypeDecorator):
    """A timezone-aware datetime stored as UTC on every database (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: use app.core.clock")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow_default() -> datetime:
    """Default for created_at columns when no clock value is given (the clock is preferred)."""
    return datetime.now(UTC)
