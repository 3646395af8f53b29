"""Migration benchmark: how fast running instances are checked (dry run) and moved to another version.

Usage::

    .venv/bin/python bench/migration.py [--quick] [--db sqlite|postgresql|both] [--instances N]

Prints one JSON object per line on stdout (``{"metric": ..., "value": ..., "unit": ..., ...}``), like
bench/engine.py. Each database is fresh (a temporary SQLite file or a scratch PostgreSQL database). N instances of
tests/engine/fixtures/migration/check_v1.bpmn are started (setup, not timed), v2 is deployed, then the dry run
(engine.check_migration) and the execution (a migration job run by the worker's batch function, one transaction per
instance) are timed. One instance in fifty waits at an element v2 lacks, so the failure path is measured too.
As a baseline in the same process, the same number of plain task completions is timed on the same database: the
ratio says what a move costs next to the commonest write the engine does.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from app import engine  # noqa: E402
from app.auth.models import JurisdictionNode  # noqa: E402
from app.auth.operations import create_user  # noqa: E402
from app.core.db import transaction  # noqa: E402
from app.designer import jobs  # noqa: E402
from app.engine.models import WorkItem, WorkItemStatus  # noqa: E402
from app.extensions import db  # noqa: E402
from bench.engine import (  # noqa: E402
    busy_cores,
    close_app,
    cpu_counters,
    emit,
    log,
    make_app,
    make_cases,
    prepare_schema,
    scratch_database,
    wait_for_quiet,
)

MIGRATION = ROOT / "tests" / "engine" / "fixtures" / "migration"
BLOCKED_EVERY = 50  # one instance in fifty is moved on to record_check, which v2 does not have


def _start(case_ids: list[int], node_id: int) -> list[int]:
    ids = []
    for first in range(0, len(case_ids), 200):
        with transaction():
            for case_id in case_ids[first : first + 200]:
                ids.append(engine.start_process("check", case_id=case_id, jurisdiction_id=node_id).id)
    return ids


def _open_item(instance_id: int) -> int:
    return db.session.scalar(
        select(WorkItem.id).where(WorkItem.instance_id == instance_id, WorkItem.status == WorkItemStatus.OPEN)
    )


def run(kind: str, n: int) -> None:
    with scratch_database(kind, "migration") as url:
        app = make_app(url)
        with app.app_context():
            node_id = prepare_schema([])
            with transaction():
                v1 = engine.deploy([engine.SourceFile("check.bpmn", (MIGRATION / "check_v1.bpmn").read_text())])
                node = db.session.get(JurisdictionNode, node_id)
                actor = create_user("bench", "bench-pass-1234", ["designer"], node)
            source = v1.deployed[0]
            log(f"{kind}: starting {2 * n} instances (setup)")
            cases = make_cases(node_id, 2 * n)
            started = _start(cases, node_id)
            moving, baseline = started[:n], started[n:]
            for instance_id in moving[::BLOCKED_EVERY]:  # past the intake, onto record_check
                with transaction():
                    engine.complete_work_item(_open_item(instance_id), {})
            with transaction():
                v2 = engine.deploy([engine.SourceFile("check.bpmn", (MIGRATION / "check_v2.bpmn").read_text())])
            target = v2.deployed[0]
            items = [_open_item(i) for i in baseline]
            db.session.commit()

            wait_for_quiet()
            cpu = cpu_counters()
            began = time.perf_counter()
            for item_id in items:
                with transaction():
                    engine.complete_work_item(item_id, {})
            complete_s = time.perf_counter() - began
            emit(
                "migration_baseline_completions_per_s",
                n / complete_s,
                "1/s",
                db=kind,
                n=n,
                busy_cores=busy_cores(cpu, cpu_counters()),
            )

            cpu = cpu_counters()
            began = time.perf_counter()
            checks = engine.check_migration(moving, target.id)
            dry_s = time.perf_counter() - began
            db.session.rollback()
            blocked = sum(1 for c in checks if not c.can_move)
            emit(
                "migration_dry_run_per_s",
                n / dry_s,
                "1/s",
                db=kind,
                n=n,
                blocked=blocked,
                busy_cores=busy_cores(cpu, cpu_counters()),
            )

            with transaction():
                job = jobs.create_job(actor, source, target, moving, {}, {})
            cpu = cpu_counters()
            began = time.perf_counter()
            while jobs.run_batch(100, job.id):
                pass
            move_s = time.perf_counter() - began
            progress = jobs.progress(job.id)
            emit(
                "migration_moves_per_s",
                n / move_s,
                "1/s",
                db=kind,
                n=n,
                moved=progress["moved"],
                failed=progress["failed"],
                ratio_vs_completion=round(move_s / complete_s, 2),
                busy_cores=busy_cores(cpu, cpu_counters()),
            )
            if progress["moved"] != n - blocked or progress["failed"] != blocked:
                raise RuntimeError(f"unexpected outcome {progress}, expected {blocked} failures")
            close_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 instances instead of 2,000")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--instances", type=int, default=None)
    args = parser.parse_args()
    n = args.instances or (200 if args.quick else 2000)
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        run(kind, n)


if __name__ == "__main__":
    main()
