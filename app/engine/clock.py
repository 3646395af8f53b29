"""One clock for the engine's timer checks: SpiffWorkflow reads ``datetime.now`` with no hook, so we give it one.

The timer module's ``datetime`` is replaced by a subclass whose ``now()`` returns the time set by
:func:`engine_time` for the current context (thread or task), falling back to the real time. Each engine
call runs inside ``engine_time(app clock now)``, so tests that move the app clock move the engine too.
"""

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _timer_module

_engine_now: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("engine_now", default=None)


class EngineDatetime(datetime):
    """``datetime`` whose ``now()`` follows the engine clock; scripts see it as ``datetime`` too."""

    @classmethod
    def now(cls, tz=None):
        current = _engine_now.get()
        if current is None:
            return datetime.now(tz)
        return current.astimezone(tz) if tz is not None else current.astimezone(UTC).replace(tzinfo=None)


_timer_module.datetime = EngineDatetime


def current_time() -> datetime:
    """The engine's notion of now (aware, UTC)."""
    return EngineDatetime.now(UTC)


@contextmanager
def engine_time(when: datetime) -> Iterator[None]:
    """Run engine code as if it were ``when`` (must be timezone-aware)."""
    if when.tzinfo is None:
        raise ValueError("engine_time needs a timezone-aware datetime")
    token = _engine_now.set(when)
    try:
        yield
    finally:
        _engine_now.reset(token)
