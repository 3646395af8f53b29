"""Imports every model so metadata is complete (Alembic autogenerate, tests' create_all)."""

from app.audit.models import AuditEvent
from app.auth.models import JurisdictionNode, User, UserRole
from app.cases.models import Case, Document
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
from app.inbox.models import SavedFilter, TaskDraft

__all__ = [
    "AuditEvent",
    "Case",
    "Document",
    "Incident",
    "JurisdictionNode",
    "Message",
    "MessageSubscription",
    "ProcessDefinition",
    "ProcessInstance",
    "SavedFilter",
    "SpecBundle",
    "TaskDraft",
    "Timer",
    "User",
    "UserRole",
    "WorkItem",
]
