"""The one clock every time computation reads, so tests can move time."""

from datetime import UTC, datetime, timedelta

from flask import current_app


class SystemClock:
    """The real time, always timezone-aware (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to: tests and simulations."""

    def __init__(self, start: datetime | None = None):
        start = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._now = when

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now


def get_clock():
    """The current app's clock."""
    return current_app.extensions["clock"]


def now() -> datetime:
    """The current time by the current app's clock."""
    return get_clock().now()


def aware(value: datetime | None) -> datetime | None:
    """Make a datetime read back from the database timezone-aware (SQLite drops the offset; we store UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
