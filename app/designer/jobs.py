"""Migration jobs: move chosen running instances of one version to another, one instance per transaction.

A job lists its instances as items. Whoever runs a batch (the request that started the job, for a few seconds, then
any `flask worker` on any host) takes pending items one at a time with SKIP LOCKED, moves the instance and marks the
item in the same transaction; an instance that cannot move is rolled back untouched and its item marked failed with
the reason in a transaction of its own. Progress is read from the items, so no process keeps any state.
"""

import logging
import time

from sqlalchemy import exists, func, select, update

from app import engine
from app.audit.log import record
from app.auth.models import User
from app.core.clock import now
from app.core.db import transaction
from app.designer.models import ItemStatus, JobStatus, MigrationJob, MigrationJobItem
from app.engine.models import ProcessDefinition, ProcessInstance
from app.extensions import db

log = logging.getLogger(__name__)


def create_job(
    actor: User,
    source: ProcessDefinition,
    target: ProcessDefinition,
    instance_ids: list[int],
    mapping: dict[str, str],
    filters: dict,
) -> MigrationJob:
    """A queued job over ``instance_ids`` (flushed; the caller commits)."""
    job = MigrationJob(
        process_key=source.key,
        source_definition_id=source.id,
        target_definition_id=target.id,
        mapping=mapping,
        filters=filters,
        status=JobStatus.QUEUED,
        created_by_id=actor.id,
        created_at=now(),
    )
    db.session.add(job)
    db.session.flush()
    cases = dict(
        db.session.execute(
            select(ProcessInstance.id, ProcessInstance.case_id).where(ProcessInstance.id.in_(instance_ids))
        ).all()
    )
    db.session.add_all(
        MigrationJobItem(job_id=job.id, instance_id=i, case_id=cases[i], status=ItemStatus.PENDING)
        for i in instance_ids
        if i in cases
    )
    record(
        "migration_started",
        actor_id=actor.id,
        payload={
            "job_id": job.id,
            "key": source.key,
            "from_version": source.version,
            "to_version": target.version,
            "instances": len(cases),
            "mapping": mapping,
        },
    )
    db.session.flush()
    return job


def _take_item(job_id: int | None) -> MigrationJobItem | None:
    query = select(MigrationJobItem).where(MigrationJobItem.status == ItemStatus.PENDING)
    if job_id is not None:
        query = query.where(MigrationJobItem.job_id == job_id)
    return db.session.scalars(query.order_by(MigrationJobItem.id).limit(1).with_for_update(skip_locked=True)).first()


def _move_next(job_id: int | None) -> bool:
    """Take one pending item and move its instance in one transaction; False when none is left.

    An instance that cannot move is rolled back untouched; its item is marked failed, with the reason, afterwards.
    """
    item_id = None
    try:
        with transaction():
            item = _take_item(job_id)
            if item is None:
                return False
            item_id = item.id
            job = db.session.get(MigrationJob, item.job_id)
            result = engine.migrate_instance(
                item.instance_id, job.target_definition_id, mapping=job.mapping or None, actor_id=job.created_by_id
            )
            item.status = ItemStatus.MOVED
            item.changes = list(result.changes)
            item.finished_at = now()
            if job.status == JobStatus.QUEUED:
                job.status = JobStatus.RUNNING
        return True
    except Exception as exc:  # noqa: BLE001 - any failure is the item's, reported on it; the instance is untouched
        if item_id is None:
            raise
        if not isinstance(exc, engine.EngineError):
            log.exception("migration of item %s failed", item_id)
        reason = str(exc) or exc.__class__.__name__
    with transaction():
        item = db.session.get(MigrationJobItem, item_id, with_for_update=True)
        if item is not None and item.status == ItemStatus.PENDING:
            job = db.session.get(MigrationJob, item.job_id)
            item.status = ItemStatus.FAILED
            item.message = reason
            item.finished_at = now()
            record(
                "migration_failed",
                actor_id=job.created_by_id,
                case_id=item.case_id,
                instance_id=item.instance_id,
                payload={"job_id": job.id, "reason": reason},
            )
    return True


def _finish_jobs() -> None:
    """Mark done the jobs with nothing left to move (a read first: most passes find none and write nothing)."""
    pending = exists().where(MigrationJobItem.job_id == MigrationJob.id, MigrationJobItem.status == ItemStatus.PENDING)
    active = MigrationJob.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
    with transaction():
        finished = list(db.session.scalars(select(MigrationJob.id).where(active, ~pending)))
    if finished:
        with transaction():
            db.session.execute(
                update(MigrationJob)
                .where(MigrationJob.id.in_(finished), active, ~pending)
                .values(status=JobStatus.DONE, finished_at=now()),
                execution_options={"synchronize_session": False},
            )


def run_batch(limit: int, job_id: int | None = None, seconds: float | None = None) -> int:
    """Move up to ``limit`` pending instances (of one job, or of any), stopping after ``seconds`` if given.

    Returns how many items were handled (moved or failed).
    """
    deadline = time.monotonic() + seconds if seconds is not None else None
    handled = 0
    while handled < limit and (deadline is None or time.monotonic() < deadline):
        if not _move_next(job_id):
            break
        handled += 1
    _finish_jobs()
    return handled


def progress(job_id: int) -> dict[str, int]:
    """Item counts by status, and the total."""
    counts = dict(
        db.session.execute(
            select(MigrationJobItem.status, func.count())
            .where(MigrationJobItem.job_id == job_id)
            .group_by(MigrationJobItem.status)
        ).all()
    )
    result = {status.value: counts.get(status, 0) for status in ItemStatus}
    result["total"] = sum(result.values())
    return result


def failed_items(job_id: int, limit: int = 200) -> list[MigrationJobItem]:
    return list(
        db.session.scalars(
            select(MigrationJobItem)
            .where(MigrationJobItem.job_id == job_id, MigrationJobItem.status == ItemStatus.FAILED)
            .order_by(MigrationJobItem.id)
            .limit(limit)
        )
    )
