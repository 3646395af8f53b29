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
from app.engine.runtime import (
    complete_work_item,
    deliver_pending_messages,
    fire_due_timers,
    retry_incident,
    send_message,
    start_process,
)
from app.engine.specs import DeployResult, SourceFile, deploy, latest_definitions, validate, workflow_files

__all__ = [
    "CompletionResult",
    "Conflict",
    "DeployResult",
    "EngineError",
    "InstanceInfo",
    "InvalidDefinition",
    "InvalidSubmission",
    "NotFound",
    "NotRunnable",
    "Problem",
    "SourceFile",
    "complete_work_item",
    "deliver_pending_messages",
    "deploy",
    "fire_due_timers",
    "latest_definitions",
    "retry_incident",
    "send_message",
    "start_process",
    "validate",
    "workflow_files",
]
