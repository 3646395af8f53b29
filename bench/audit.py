"""Audit benchmarks: the cost of the hash-chained audit log per task completion, and `flask audit verify` speed.

Usage::

    .venv/bin/python bench/audit.py [--quick] [--db sqlite|postgresql|both]

Prints one JSON object per line on stdout: ``{"metric": ..., "value": ..., "unit": ..., ...}``; progress on stderr.
Databases, machine-load readings and fixtures come from bench/engine.py (fresh SQLite file or scratch PostgreSQL
database per measurement; setup never timed).

- Completions: one database, one app, one process. three_tasks instances are started untimed; only the
  ``complete_work_item`` transactions are timed. Chunks alternate ``AUDIT_ENABLED`` on and off (on/off, off/on,
  ...), each pair after a wait for a quiet machine; the result per setting is the median chunk.
- Concurrent (PostgreSQL): 4 worker processes completing their own cases, audit on and then off, on fresh
  databases: every writer queues on the chain head at commit, so this is where the chain could cost throughput.
- Verify: N events appended with ``record()`` (1,000 per transaction, timed as ``audit_append_events_per_s``),
  then ``verify_chain`` over all of them (``audit_verify_rows_per_s``), as ``flask audit verify`` runs it.
"""

import argparse
import multiprocessing as mp
import os
import platform
import signal
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from app import engine  # noqa: E402
from app.audit.chain import verify_chain  # noqa: E402
from app.audit.log import record  # noqa: E402
from app.audit.models import AuditEvent  # noqa: E402
from app.core.db import transaction  # noqa: E402
from app.engine.models import InstanceStatus, ProcessInstance  # noqa: E402
from app.extensions import db  # noqa: E402
from bench.engine import (  # noqa: E402
    FIRST_TASK_DATA,
    QUIET_BUDGET,
    WARMUP,
    busy_cores,
    close_app,
    cpu_counters,
    emit,
    log,
    make_app,
    make_cases,
    prepare_schema,
    run_workers,
    scratch_database,
    wait_for_quiet,
)

SIZES = {
    "full": {"cases": 600, "chunks": 10, "conc_per_worker": 300, "events": 100_000},
    "quick": {"cases": 120, "chunks": 6, "conc_per_worker": 40, "events": 20_000},
}
CONCURRENT_WORKERS = 4


def start_cases(case_ids: list[int], node_id: int) -> list[int]:
    """Start three_tasks for each case (untimed); returns the first work item of each."""
    firsts = []
    for case_id in case_ids:
        with transaction():
            info = engine.start_process("three_tasks", case_id=case_id, jurisdiction_id=node_id)
        firsts.append(info.opened_work_item_ids[0])
    return firsts


def complete_all(first_items: list[int]) -> tuple[int, float]:
    """Complete each instance's three tasks, one transaction per completion; (completions, seconds in them)."""
    done, spent = 0, 0.0
    for first in first_items:
        items, data = [first], FIRST_TASK_DATA
        while items:
            t0 = time.perf_counter()
            with transaction():
                result = engine.complete_work_item(items[0], data)
            spent += time.perf_counter() - t0
            items, data, done = result.instance.opened_work_item_ids, {}, done + 1
        if result.instance.status != "completed":
            raise RuntimeError(f"three_tasks ended {result.instance.status}")
    return done, spent


def completions(kind: str, n: int, chunks: int) -> dict[bool, dict]:
    """Completion cost with AUDIT_ENABLED on and off, alternating chunks in one process and database."""
    runs: dict[bool, list[tuple[int, float, float | None]]] = {True: [], False: []}
    with scratch_database(kind, "audit_cmp") as url:
        app = make_app(url)
        with app.app_context():
            node_id = prepare_schema(["three_tasks.bpmn"])
            cases = make_cases(node_id, 2 * n + WARMUP)
            complete_all(start_cases(cases[:WARMUP], node_id))
            size = max(5, n // chunks)
            pending = cases[WARMUP:]
            for index in range(chunks):
                order = (True, False) if index % 2 == 0 else (False, True)
                parts = {audit: start_cases(pending[:size], node_id) for audit in order}
                pending = pending[size:]
                # the instances to complete exist before the clock starts; start them with audit on (as in use)
                wait_for_quiet()
                for audit in order:
                    app.config["AUDIT_ENABLED"] = audit
                    load0 = cpu_counters()
                    done, spent = complete_all(parts[audit])
                    runs[audit].append((done, spent, busy_cores(load0, cpu_counters())))
                app.config["AUDIT_ENABLED"] = True
            result = verify_chain(db.session)
            db.session.rollback()
            if not result.ok:
                raise RuntimeError(f"chain broken after the run: {result.problem}")
            close_app()
    out = {}
    for audit, chunk_list in runs.items():
        per = statistics.median(seconds / count for count, seconds, _ in chunk_list)
        busy = [b for _, _, b in chunk_list if b is not None]
        out[audit] = {
            "rate": 1 / per,
            "per_completion_ms": 1000 * per,
            "n": sum(count for count, _, _ in chunk_list),
            "chunk_rates": [round(count / seconds, 1) for count, seconds, _ in chunk_list],
            "busy_cores": busy and round(statistics.median(busy), 2),
        }
    pairs = zip(runs[True], runs[False], strict=True)
    out["pair_ratio"] = statistics.median((on[1] / on[0]) / (off[1] / off[0]) for on, off in pairs)
    return out


def _concurrent_worker(url: str, node_id: int, worker: int, n: int, audit: bool, barrier, results) -> None:
    app = make_app(url, audit=audit)
    with app.app_context():
        cases = make_cases(node_id, n + WARMUP, prefix=worker + 1)
        complete_all(start_cases(cases[:WARMUP], node_id))
        firsts = start_cases(cases[WARMUP:], node_id)
        barrier.wait()
        t0 = time.time()
        done, _ = complete_all(firsts)
        results.put((worker, t0, time.time(), done))
        close_app()


def concurrent(n_per_worker: int, audit: bool) -> dict:
    """Completions per second of 4 processes on PostgreSQL (starts untimed), over the wall time."""
    ctx = mp.get_context("spawn")
    quiet = wait_for_quiet()
    with scratch_database("postgresql", "audit_conc" if audit else "audit_conc_off") as url:
        app = make_app(url, audit=audit)
        with app.app_context():
            node_id = prepare_schema(["three_tasks.bpmn"])
            close_app()
        barrier, results = ctx.Barrier(CONCURRENT_WORKERS), ctx.Queue()
        args = [(url, node_id, w, n_per_worker, audit, barrier, results) for w in range(CONCURRENT_WORKERS)]
        load0 = cpu_counters()
        spans = run_workers(ctx, _concurrent_worker, args, results)
        load1 = cpu_counters()
        with app.app_context():
            finished = db.session.scalar(
                select(func.count())
                .select_from(ProcessInstance)
                .where(ProcessInstance.status == InstanceStatus.COMPLETED)
            )
            verified = verify_chain(db.session) if audit else None
            db.session.rollback()
            close_app()
    expected = CONCURRENT_WORKERS * (n_per_worker + WARMUP)
    if finished != expected:
        raise RuntimeError(f"{finished} instances completed, expected {expected}")
    if verified is not None and not verified.ok:
        raise RuntimeError(f"chain broken after the concurrent run: {verified.problem}")
    wall = max(s[2] for s in spans) - min(s[1] for s in spans)
    done = sum(s[3] for s in spans)
    return {
        "rate": done / wall,
        "n": done,
        "busy_before": quiet,
        "busy_cores": busy_cores(load0, load1),
        "chain_rows": verified.rows if verified else None,
    }


def verify_speed(kind: str, events: int) -> dict:
    """Append ``events`` events (1,000 per transaction), then time verify_chain over the table."""
    with scratch_database(kind, "audit_verify") as url:
        app = make_app(url)
        with app.app_context():
            node_id = prepare_schema([])
            payload = {"work_item_id": 12345, "element_id": "intake", "data": {"address": "拱北 1 号", "visits": 2}}
            wait_for_quiet()
            t0 = time.perf_counter()
            for first in range(0, events, 1000):
                with transaction():
                    for n in range(first, min(first + 1000, events)):
                        record("task_completed", jurisdiction_id=node_id, payload={**payload, "n": n})
            append_s = time.perf_counter() - t0
            total = db.session.scalar(select(func.count()).select_from(AuditEvent))
            db.session.rollback()
            wait_for_quiet()
            load0, t0 = cpu_counters(), time.perf_counter()
            result = verify_chain(db.session)
            verify_s, load1 = time.perf_counter() - t0, cpu_counters()
            db.session.rollback()
            close_app()
    if not result.ok or result.rows != total:
        raise RuntimeError(f"verify: {result}, {total} rows")
    return {
        "rows": result.rows,
        "append_rate": events / append_s,
        "verify_rate": result.rows / verify_s,
        "verify_s": verify_s,
        "busy_cores": busy_cores(load0, load1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: drop scratch databases
    size = SIZES["quick" if args.quick else "full"]
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    mode = "quick" if args.quick else "full"
    QUIET_BUDGET["left"] = 15.0 if args.quick else 60.0
    started = time.perf_counter()
    emit(
        "machine",
        os.cpu_count() or 0,
        "cores",
        python=platform.python_version(),
        sqlalchemy=metadata.version("SQLAlchemy"),
        platform=platform.platform(),
        loadavg=[round(x, 2) for x in os.getloadavg()],
        mode=mode,
    )
    for kind in kinds:
        log(f"completions on {kind}, audit on and off")
        result = completions(kind, size["cases"], size["chunks"])
        on, off = result[True], result[False]
        for audit, run in ((True, on), (False, off)):
            emit(
                "audit_completions_per_s",
                run["rate"],
                "completions/s",
                db=kind,
                audit=audit,
                n=run["n"],
                per_completion_ms=round(run["per_completion_ms"], 3),
                chunk_rates=run["chunk_rates"],
                busy_cores=run["busy_cores"],
            )
        emit(
            "audit_write_overhead_ratio",
            on["per_completion_ms"] / off["per_completion_ms"],
            "x",
            db=kind,
            n=on["n"] + off["n"],
            on_ms=round(on["per_completion_ms"], 3),
            off_ms=round(off["per_completion_ms"], 3),
            pair_ratio=round(result["pair_ratio"], 3),
            note="time per completion with AUDIT_ENABLED=True / False (median chunks, same process and database); "
            "pair_ratio: median over back-to-back chunk pairs",
        )
    if "postgresql" in kinds:
        conc = {}
        for audit in (True, False):
            log(f"concurrent completions on postgresql, audit {'on' if audit else 'off'}")
            conc[audit] = concurrent(size["conc_per_worker"], audit)
            emit(
                "audit_completions_per_s_concurrent",
                conc[audit]["rate"],
                "completions/s",
                db="postgresql",
                audit=audit,
                workers=CONCURRENT_WORKERS,
                n=conc[audit]["n"],
                busy_cores=conc[audit]["busy_cores"],
                busy_before=conc[audit]["busy_before"],
                chain_rows=conc[audit]["chain_rows"],
            )
        emit(
            "audit_concurrent_overhead_ratio",
            conc[False]["rate"] / conc[True]["rate"],
            "x",
            db="postgresql",
            workers=CONCURRENT_WORKERS,
            note="concurrent completion rate with audit off / on (each on a fresh database)",
        )
    for kind in kinds:
        log(f"verify over {size['events']} events on {kind}")
        speed = verify_speed(kind, size["events"])
        emit("audit_append_events_per_s", speed["append_rate"], "events/s", db=kind, n=size["events"], batch=1000)
        emit(
            "audit_verify_rows_per_s",
            speed["verify_rate"],
            "rows/s",
            db=kind,
            n=speed["rows"],
            seconds=round(speed["verify_s"], 3),
            busy_cores=speed["busy_cores"],
        )
    emit("bench_seconds", time.perf_counter() - started, "s", mode=mode)


if __name__ == "__main__":
    main()
