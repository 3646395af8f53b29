"""Plain data the engine hands to the rest of the app (never SpiffWorkflow objects)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class InstanceInfo:
    id: int
    case_id: int
    process_key: str
    definition_version: int
    status: str
    lock_version: int
    #: Work items opened by the call that returned this.
    opened_work_item_ids: list[int] = field(default_factory=list)
    #: The open incident, if the call stopped at one.
    incident_id: int | None = None


@dataclass(frozen=True)
class CompletionResult:
    work_item_id: int
    instance: InstanceInfo
