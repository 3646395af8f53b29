"""Imports every model so metadata is complete (Alembic autogenerate, tests' create_all)."""

from app.audit.models import AuditEvent
from app.auth.models import JurisdictionNode, User, UserRole
from app.cases.models import Case
from app.engine.models import (
    Incident,
    Message,
    MessageSubscription,
    ProcessDefinition,
    ProcessInstance,
    SpecBundle,
    Timer,
    WorkItem,
)

__all__ = [
    "AuditEvent",
    "Case",
    "Incident",
    "JurisdictionNode",
    "Message",
    "MessageSubscription",
    "ProcessDefinition",
    "ProcessInstance",
    "SpecBundle",
    "Timer",
    "User",
    "UserRole",
    "WorkItem",
]
