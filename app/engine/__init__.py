"""The workflow engine facade: the only package that imports SpiffWorkflow.

The rest of the app calls these functions and gets plain dataclasses back.
"""

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
    "DeployResult",
    "EngineError",
    "InstanceInfo",
    "InstancePath",
    "InvalidDefinition",
    "InvalidSubmission",
    "NotFound",
    "ParsedSource",
    "NotRunnable",
    "Problem",
    "SourceFile",
    "complete_work_item",
    "deliver_pending_messages",
    "deploy",
    "fire_due_timers",
    "instance_path",
    "latest_definition",
    "latest_definitions",
    "resume_instance",
    "retry_incident",
    "send_message",
    "start_process",
    "suspend_instance",
    "validate",
    "workflow_files",
]
