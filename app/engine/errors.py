"""Errors the engine facade raises; the rest of the app catches these, never SpiffWorkflow's."""

from dataclasses import dataclass


class EngineError(Exception):
    """Base class of every error the engine reports."""


@dataclass(frozen=True)
class Problem:
    """One reason a file cannot be deployed, pinned to a file and an element."""

    file: str
    element_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}#{self.element_id}" if self.element_id else self.file
        return f"{where}: {self.message}"


class InvalidDefinition(EngineError):
    """A deploy was refused; nothing from it was stored."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class NotFound(EngineError):
    """No such definition, instance or work item."""


class Conflict(EngineError):
    """Someone else changed the item first; nothing was changed by this call."""


class InvalidSubmission(EngineError):
    """Submitted form data failed the form's rules; ``errors`` maps field id to message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class NotRunnable(EngineError):
    """The instance is not in a state that allows this (suspended, in incident, finished)."""
