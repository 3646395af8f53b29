"""The background worker's unit of work: fire due timers and deliver queued messages, one transaction each."""

from app import engine
from app.core.db import transaction


def run_once(batch: int) -> tuple[int, int]:
    """One pass: up to ``batch`` instances with due timers, then up to ``batch`` queued messages."""
    with transaction():
        fired = engine.fire_due_timers(batch)
    with transaction():
        delivered = engine.deliver_pending_messages(batch)
    return fired, delivered


def drain(batch: int = 100) -> int:
    """Pass until nothing is due or deliverable; returns how many timers fired."""
    fired_total = 0
    while True:
        fired, delivered = run_once(batch)
        fired_total += fired
        if fired == 0 and delivered == 0:
            return fired_total
