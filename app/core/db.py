"""Transactions: one commit per request or job, in one place."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import DateTime, TypeDecorator
from sqlalchemy.orm import Session

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
