"""The workflow engine facade: the only package that imports SpiffWorkflow.

The rest of the app calls these functions and gets plain dataclasses back.
"""

from app.engine.diff import DefinitionDiff, diff_definitions
from app.engine.dto import CompletionResult, InstanceInfo
from app.engine.errors import (
    Conflict,
    EngineError,
    InvalidDefinition,
    InvalidSubmission,
    NotFound,
    NotRunnable,
    Problem,
)
from app.engine.history import MAX_REASON_LENGTH, InstancePath, instance_path, resume_instance, suspend_instance
from app.engine.migration import (
    MigrationCheck,
    check_migration,
    instances_of,
    migrate_instance,
    migrate_instances,
)
from app.engine.runtime import (
    complete_work_item,
    deliver_pending_messages,
    fire_due_timers,
    retry_incident,
    send_message,
    start_process,
)
from app.engine.specs import (
    DeployResult,
    ParsedSource,
    SourceFile,
    deploy,
    latest_definition,
    latest_definitions,
    validate,
    workflow_files,
)

__all__ = [
    "MAX_REASON_LENGTH",
    "CompletionResult",
    "Conflict",
    "DefinitionDiff",
    "DeployResult",
    "EngineError",
    "InstanceInfo",
    "InstancePath",
    "InvalidDefinition",
    "InvalidSubmission",
    "MigrationCheck",
    "NotFound",
    "ParsedSource",
    "NotRunnable",
    "Problem",
    "SourceFile",
    "check_migration",
    "complete_work_item",
    "deliver_pending_messages",
    "deploy",
    "diff_definitions",
    "fire_due_timers",
    "instance_path",
    "instances_of",
    "latest_definition",
    "latest_definitions",
    "migrate_instance",
    "migrate_instances",
    "resume_instance",
    "retry_incident",
    "send_message",
    "start_process",
    "suspend_instance",
    "validate",
    "workflow_files",
]
