"""Cases a transaction changed, kept until it commits, when app.audit.kpi_model inserts them as kpi_dirty rows.

A module of its own, light to import: the engine notes the cases it changes with statements of its own.
"""

from collections.abc import Iterable

from sqlalchemy.orm import Session

from app.core.db import keep_until_commit, kept

_MARKS = "kpi_marks"  # app.core.db.kept: sets of case ids (None: unknown cases, count everything again)


def mark_cases(session: Session, case_ids: Iterable[int | None]) -> None:
    """Note cases this transaction changed; one kpi_dirty insert at the commit names them all.

    Flushes and statements sent through the session are noted by themselves (app.audit.kpi_model); callers
    writing through the session's connection directly note their cases here.
    """
    keep_until_commit(session, _MARKS, set(case_ids))


def marked_cases(session: Session) -> set[int | None]:
    """The cases noted in the current transaction so far."""
    return {case_id for ids in kept(session, _MARKS) for case_id in ids}
