"""Writing audit events."""

from flask import current_app

from app.audit.chain import hold
from app.core.clock import now
from app.extensions import db


def record(
    type_: str,
    *,
    actor_id: int | None = None,
    case_id: int | None = None,
    instance_id: int | None = None,
    jurisdiction_id: int | None = None,
    payload: dict | None = None,
) -> None:
    """Add one audit event to the current transaction (inserted when it commits, gone if it rolls back)."""
    if not current_app.config.get("AUDIT_ENABLED", True):
        return
    hold(
        db.session(),
        {
            "type": type_,
            "actor_id": actor_id,
            "occurred_at": now(),
            "case_id": case_id,
            "instance_id": instance_id,
            "jurisdiction_id": jurisdiction_id,
            "payload": payload or {},
        },
    )
