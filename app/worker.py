"""The background worker's unit of work: fire due timers, deliver queued messages and move instances of migration
jobs, one transaction each."""

from app import engine
from app.core.db import transaction


def run_once(batch: int) -> tuple[int, int]:
    """One pass: up to ``batch`` instances with due timers, then up to ``batch`` queued messages, then up to
    ``batch`` instances of migration jobs. Returns (timers fired, messages delivered + instances migrated)."""
    from app.audit import kpi_model
    from app.designer import jobs  # the designer's tables; imported here to keep the worker's imports light

    with transaction():
        fired = engine.fire_due_timers(batch)
    with transaction():
        delivered = engine.deliver_pending_messages(batch)
    migrated = jobs.run_batch(batch)
    kpi_model.worker_refresh()  # the KPI read model catches up (one worker at a time; the others skip)
    return fired, delivered + migrated


def drain(batch: int = 100) -> int:
    """Pass until nothing is due or deliverable; returns how many timers fired."""
    fired_total = 0
    while True:
        fired, delivered = run_once(batch)
        fired_total += fired
        if fired == 0 and delivered == 0:
            return fired_total
