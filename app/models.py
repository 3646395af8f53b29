"""Imports every model so metadata is complete (Alembic autogenerate, tests' create_all)."""

from app.audit.kpi_model import KpiCase, KpiCount, KpiDirty, KpiState
from app.audit.models import AuditEvent
from app.auth.models import JurisdictionNode, User, UserRole
from app.cases.models import Case, Document
from app.designer.models import DefinitionDraft, DeployRequest, MigrationJob, MigrationJobItem
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
    "DefinitionDraft",
    "DeployRequest",
    "Document",
    "Incident",
    "JurisdictionNode",
    "KpiCase",
    "KpiCount",
    "KpiDirty",
    "KpiState",
    "Message",
    "MigrationJob",
    "MigrationJobItem",
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
