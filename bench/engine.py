"""Engine benchmarks: throughput, long-case step cost, timer firing, engine and audit overhead.

Usage::

    .venv/bin/python bench/engine.py [--quick] [--db sqlite|postgresql|both] [--profile]

Prints one JSON object per line on stdout: ``{"metric": ..., "value": ..., "unit": ..., ...}``.
Every measurement runs on a fresh database: a temporary SQLite file, or a scratch PostgreSQL database
``bench_<name>_<pid>`` (127.0.0.1:5432, user postgres) created and dropped by this script.
Setup (schema, jurisdiction tree, deploy, cases, warm-up) is never timed. ``--profile`` also writes a cProfile
of a sequential three_tasks run on PostgreSQL (or SQLite with ``--db sqlite``) to stderr.
"""

import argparse
import cProfile
import io
import json
import multiprocessing as mp
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from SpiffWorkflow.bpmn import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app import create_app, engine  # noqa: E402
from app.audit.models import AuditEvent  # noqa: E402
from app.auth.models import NodeLevel  # noqa: E402
from app.auth.operations import create_node  # noqa: E402
from app.cases.operations import create_case  # noqa: E402
from app.core.clock import FrozenClock  # noqa: E402
from app.core.db import transaction  # noqa: E402
from app.engine.models import InstanceStatus, ProcessInstance, Timer, TimerStatus, WorkItem, WorkItemStatus  # noqa: E402
from app.engine.parser import RehabParser  # noqa: E402
from app.extensions import db  # noqa: E402

FIXTURES = ROOT / "tests" / "engine" / "fixtures"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
FIRST_TASK_DATA = {"address": "拱北 1 号", "pregnant": "false", "visits": "2", "tier": "red"}

#: Sizes: full run (~10 min on 2 cores) and --quick (~1.5 min).
SIZES = {
    "full": {"seq": 600, "noaudit": 600, "conc_per_worker": 300, "cycles": 3000, "timer_cases": 10_000, "bare": 2000},
    "quick": {"seq": 100, "noaudit": 100, "conc_per_worker": 60, "cycles": 300, "timer_cases": 1000, "bare": 300},
}
WARMUP = 5
CONCURRENT_WORKERS = 4
TIMER_WORKERS = 2
TIMER_BATCH = 50
STEP_WINDOW = 20


def emit(metric: str, value: float, unit: str, **extra) -> None:
    line = {"metric": metric, "value": round(value, 4), "unit": unit, **extra}
    print(json.dumps(line, ensure_ascii=False), flush=True)


def log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# --- databases ------------------------------------------------------------------------------------------------


@contextmanager
def scratch_database(kind: str, label: str):
    """A fresh, empty database URL; removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
            yield f"sqlite:///{Path(tmp) / (label + '.sqlite')}"
        return
    name = f"bench_{label}_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_app(url: str, clock: FrozenClock | None = None, audit: bool = True):
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "CLOCK": clock or FrozenClock(START),
            "AUDIT_ENABLED": audit,
        }
    )


def close_app() -> None:
    db.session.remove()
    db.engine.dispose()


def prepare_schema(fixtures: list[str]) -> int:
    """Create the tables, a jurisdiction tree and deploy fixtures; returns the community node id."""
    db.create_all()
    with transaction():
        city = create_node("珠海市", NodeLevel.CITY)
        district = create_node("香洲区", NodeLevel.DISTRICT, city)
        street = create_node("拱北街道", NodeLevel.STREET, district)
        community = create_node("夏湾社区", NodeLevel.COMMUNITY, street)
        engine.deploy([engine.SourceFile.from_path(FIXTURES / name) for name in fixtures])
    return community.id


def make_cases(node_id: int, count: int, prefix: int = 0, batch: int = 500) -> list[int]:
    """Create ``count`` cases (setup: several per transaction)."""
    from app.auth.models import JurisdictionNode

    ids: list[int] = []
    for first in range(0, count, batch):
        with transaction():
            node = db.session.get(JurisdictionNode, node_id)
            for n in range(first, min(first + batch, count)):
                serial = prefix * 1_000_000 + n
                case = create_case(f"测试人员{serial}", f"4404001990{serial:08d}", node)
                ids.append(case.id)
    return ids


# --- 1, 2, 5, 6: three_tasks start -> finish -------------------------------------------------------------------


def run_three_tasks(case_ids: list[int], node_id: int) -> None:
    """Start three_tasks for each case and complete its 3 tasks; each call in its own transaction."""
    for case_id in case_ids:
        with transaction():
            info = engine.start_process("three_tasks", case_id=case_id, jurisdiction_id=node_id)
        items = info.opened_work_item_ids
        data = FIRST_TASK_DATA
        for _ in range(3):
            with transaction():
                result = engine.complete_work_item(items[0], data)
            items, data = result.instance.opened_work_item_ids, {}
        if result.instance.status != "completed":
            raise RuntimeError(f"three_tasks for case {case_id} ended {result.instance.status}")


def sequential(kind: str, n: int, audit: bool, profile: bool = False) -> dict:
    label = "seq" if audit else "seqnoaudit"
    with scratch_database(kind, label) as url:
        app = make_app(url, audit=audit)
        with app.app_context():
            node_id = prepare_schema(["three_tasks.bpmn"])
            cases = make_cases(node_id, n + WARMUP)
            run_three_tasks(cases[:WARMUP], node_id)
            profiler = cProfile.Profile() if profile else None
            if profiler:
                profiler.enable()
            t0 = time.perf_counter()
            run_three_tasks(cases[WARMUP:], node_id)
            elapsed = time.perf_counter() - t0
            if profiler:
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
                log(f"cProfile of the sequential run on {kind}:\n{out.getvalue()}")
            done = db.session.scalar(
                select(func.count())
                .select_from(ProcessInstance)
                .where(ProcessInstance.status == InstanceStatus.COMPLETED)
            )
            if done != n + WARMUP:
                raise RuntimeError(f"{done} instances completed, expected {n + WARMUP}")
            close_app()
    return {"elapsed": elapsed, "n": n, "rate": 3 * n / elapsed, "per_instance_ms": 1000 * elapsed / n}


def _concurrent_worker(url: str, node_id: int, worker: int, n: int, barrier, results) -> None:
    app = make_app(url)
    with app.app_context():
        cases = make_cases(node_id, n + WARMUP, prefix=worker + 1)
        run_three_tasks(cases[:WARMUP], node_id)
        barrier.wait()
        t0 = time.time()
        run_three_tasks(cases[WARMUP:], node_id)
        results.put((worker, t0, time.time()))
        close_app()


def concurrent(n_per_worker: int) -> dict:
    ctx = mp.get_context("spawn")
    with scratch_database("postgresql", "conc") as url:
        app = make_app(url)
        with app.app_context():
            node_id = prepare_schema(["three_tasks.bpmn"])
            close_app()
        barrier, results = ctx.Barrier(CONCURRENT_WORKERS), ctx.Queue()
        procs = [
            ctx.Process(target=_concurrent_worker, args=(url, node_id, w, n_per_worker, barrier, results))
            for w in range(CONCURRENT_WORKERS)
        ]
        for p in procs:
            p.start()
        spans = [results.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"concurrent worker exited with {p.exitcode}")
        with app.app_context():
            done = db.session.scalar(
                select(func.count())
                .select_from(ProcessInstance)
                .where(ProcessInstance.status == InstanceStatus.COMPLETED)
            )
            close_app()
    total = CONCURRENT_WORKERS * n_per_worker
    if done != CONCURRENT_WORKERS * (n_per_worker + WARMUP):
        raise RuntimeError(f"{done} instances completed, expected {CONCURRENT_WORKERS * (n_per_worker + WARMUP)}")
    wall = max(s[2] for s in spans) - min(s[1] for s in spans)
    return {"elapsed": wall, "n": total, "rate": 3 * total / wall}


def bare_spiff(m: int) -> float:
    """Seconds per three_tasks instance in plain in-memory SpiffWorkflow (parsed once)."""
    parser = RehabParser()
    parser.add_bpmn_file(str(FIXTURES / "three_tasks.bpmn"))
    spec, subprocess_specs = parser.get_spec("three_tasks"), parser.get_subprocess_specs("three_tasks")

    def one() -> None:
        workflow = BpmnWorkflow(spec, subprocess_specs)
        workflow.do_engine_steps()
        data = FIRST_TASK_DATA
        completed = 0
        while not workflow.is_completed():
            ready = workflow.get_tasks(state=TaskState.READY, manual=True)
            if not ready:
                raise RuntimeError("bare workflow stuck")
            for task in ready:
                task.set_data(**data)
                task.run()
                workflow.do_engine_steps()
                completed += 1
                data = {}
        if completed != 3:
            raise RuntimeError(f"bare workflow completed {completed} tasks")

    for _ in range(WARMUP):
        one()
    t0 = time.perf_counter()
    for _ in range(m):
        one()
    return (time.perf_counter() - t0) / m


# --- 3: one long case -------------------------------------------------------------------------------------------


def long_case(kind: str, cycles: int) -> dict[int, float]:
    """Seconds per completion of the single open work item, by step number (1-based)."""
    with scratch_database(kind, "cycle") as url:
        app = make_app(url)
        with app.app_context():
            node_id = prepare_schema(["cycle.bpmn"])
            [case_id] = make_cases(node_id, 1)
            with transaction():
                if not engine.send_message(case_id, node_id, "next_cycle", {"cycle": 1, "cycles": cycles}):
                    raise RuntimeError("next_cycle was not delivered")
            times: dict[int, float] = {}
            open_item = (
                select(WorkItem.id).where(WorkItem.case_id == case_id, WorkItem.status == WorkItemStatus.OPEN).limit(2)
            )
            for step in range(1, cycles + 1):
                items = db.session.scalars(open_item).all()
                if len(items) != 1:
                    raise RuntimeError(f"step {step}: {len(items)} open work items, expected 1")
                t0 = time.perf_counter()
                with transaction():
                    engine.complete_work_item(items[0], {"result": "negative"})
                times[step] = time.perf_counter() - t0
            left = db.session.scalars(open_item).all()
            instances = db.session.scalar(
                select(func.count()).select_from(ProcessInstance).where(ProcessInstance.case_id == case_id)
            )
            if left or instances != cycles:
                raise RuntimeError(f"after {cycles} cycles: {len(left)} open items, {instances} instances")
            close_app()
    return times


def step_window(mark: int, cycles: int) -> tuple[int, int]:
    """Steps 10-30 for the first mark, then the window ending at the mark (e.g. 2980-3000)."""
    first = mark if mark + STEP_WINDOW <= cycles and mark < 100 else mark - STEP_WINDOW
    return max(1, first), min(cycles, first + STEP_WINDOW)


def window_median_ms(times: dict[int, float], mark: int) -> float:
    first, last = step_window(mark, len(times))
    return 1000 * statistics.median(times[s] for s in range(first, last + 1))


# --- 4: timers --------------------------------------------------------------------------------------------------


def _timer_worker(url: str, now_iso: str, worker: int, barrier, results) -> None:
    from app.engine.runtime import due_timer_count

    app = make_app(url, clock=FrozenClock(datetime.fromisoformat(now_iso)))
    with app.app_context():
        with transaction():
            due_timer_count()  # connect before the clock starts
        barrier.wait()
        t0 = time.time()
        fired = batches = idle = 0
        while True:
            with transaction():
                count = engine.fire_due_timers(TIMER_BATCH)
            batches += 1
            fired += count
            if count:
                idle = 0
                continue
            with transaction():
                left = due_timer_count()
            if left == 0:
                break
            idle += 1  # the other worker holds the rest (or they cannot fire): wait a little
            if idle > 200:
                raise RuntimeError(f"worker {worker}: {left} timers stay due")
            time.sleep(0.01)
        results.put((worker, t0, time.time(), fired, batches))
        close_app()


def timers(n_cases: int) -> dict:
    ctx = mp.get_context("spawn")
    clock = FrozenClock(START)
    with scratch_database("postgresql", "timers") as url:
        app = make_app(url, clock=clock)
        with app.app_context():
            node_id = prepare_schema(["timers.bpmn"])
            cases = make_cases(node_id, n_cases)
            t_setup = time.perf_counter()
            decided = {"decided_at": START.isoformat()}
            # Setup through the engine, 100 starts per transaction (not timed).
            for first in range(0, n_cases, 100):
                with transaction():
                    for case_id in cases[first : first + 100]:
                        engine.start_process("timers", case_id=case_id, jurisdiction_id=node_id, data=decided)
            setup_s = time.perf_counter() - t_setup
            created = db.session.scalar(select(func.count()).select_from(Timer))
            close_app()
        fire_at = START + timedelta(days=16)
        barrier, results = ctx.Barrier(TIMER_WORKERS), ctx.Queue()
        procs = [
            ctx.Process(target=_timer_worker, args=(url, fire_at.isoformat(), w, barrier, results))
            for w in range(TIMER_WORKERS)
        ]
        for p in procs:
            p.start()
        spans = [results.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"timer worker exited with {p.exitcode}")
        clock.set(fire_at)
        with app.app_context():
            by_status = Counter(
                (element, status.value)
                for element, status in db.session.execute(select(Timer.element_id, Timer.status)).all()
            )
            fired_rows = db.session.scalar(
                select(func.count()).select_from(Timer).where(Timer.status == TimerStatus.FIRED)
            )
            events = Counter(
                payload["timer_id"]
                for payload in db.session.scalars(select(AuditEvent.payload).where(AuditEvent.type == "timer_fired"))
            )
            open_refusals = db.session.scalar(
                select(func.count())
                .select_from(WorkItem)
                .where(WorkItem.element_id == "refusal", WorkItem.status == WorkItemStatus.OPEN)
            )
            close_app()
    fired = sum(s[3] for s in spans)
    wall = max(s[2] for s in spans) - min(s[1] for s in spans)
    return {
        "cases": n_cases,
        "created": created,
        "fired": fired,
        "fired_rows": fired_rows,
        "wall": wall,
        "setup_s": setup_s,
        "by_status": {f"{e}:{s}": c for (e, s), c in sorted(by_status.items())},
        "twice": sum(1 for c in events.values() if c > 1),
        "events": sum(events.values()),
        "open_refusals": open_refusals,
        "per_worker": {s[0]: s[3] for s in spans},
        "batches": sum(s[4] for s in spans),
    }


# --- main -------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 1.5 minutes)")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--profile", action="store_true", help="cProfile one sequential run (to stderr)")
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    mode = "quick" if args.quick else "full"
    started = time.perf_counter()

    emit(
        "machine",
        os.cpu_count() or 0,
        "cores",
        python=platform.python_version(),
        spiffworkflow=metadata.version("SpiffWorkflow"),
        sqlalchemy=metadata.version("SQLAlchemy"),
        platform=platform.platform(),
        mode=mode,
    )

    bare_s = bare_spiff(size["bare"])
    emit("bare_spiff_instance_ms", 1000 * bare_s, "ms", n=size["bare"], note="three_tasks, in memory, parsed once")

    seq: dict[str, dict] = {}
    for kind in kinds:
        log(f"sequential three_tasks on {kind}")
        seq[kind] = on = sequential(kind, size["seq"], audit=True, profile=args.profile and kind == kinds[-1])
        extra = {"target": 300} if kind == "postgresql" else {}
        emit("completions_per_s", on["rate"], "completions/s", db=kind, n=on["n"], audit=True, **extra)
        emit("instance_ms", on["per_instance_ms"], "ms", db=kind, n=on["n"], audit=True, note="start + 3 completions")
        emit(
            "engine_overhead_ratio",
            on["per_instance_ms"] / (1000 * bare_s),
            "x",
            db=kind,
            n=on["n"],
            ours_ms=round(on["per_instance_ms"], 3),
            bare_ms=round(1000 * bare_s, 3),
        )
        log(f"sequential three_tasks on {kind}, audit off")
        off = sequential(kind, size["noaudit"], audit=False)
        emit("completions_per_s", off["rate"], "completions/s", db=kind, n=off["n"], audit=False)
        emit(
            "audit_overhead_ratio",
            off["rate"] / on["rate"],
            "x",
            db=kind,
            n=off["n"],
            note="completion rate with AUDIT_ENABLED=False / with True",
        )

    if "postgresql" in kinds:
        log("concurrent three_tasks on postgresql")
        conc = concurrent(size["conc_per_worker"])
        emit(
            "completions_per_s_concurrent",
            conc["rate"],
            "completions/s",
            db="postgresql",
            n=conc["n"],
            workers=CONCURRENT_WORKERS,
            target=600,
            vs_sequential=round(conc["rate"] / seq["postgresql"]["rate"], 3),
        )

    for kind in kinds:
        cycles = size["cycles"]
        log(f"long case of {cycles} cycles on {kind}")
        times = long_case(kind, cycles)
        marks = [10, 1000, cycles] if cycles >= 2000 else [10, cycles]
        for mark in marks:
            emit(
                "step_ms_at_step",
                window_median_ms(times, mark),
                "ms",
                db=kind,
                step=mark,
                window="{}-{}".format(*step_window(mark, cycles)),
                n=cycles,
            )
        emit(
            f"step_ratio_{cycles}_vs_10",
            window_median_ms(times, cycles) / window_median_ms(times, 10),
            "x",
            db=kind,
            n=cycles,
            target=1.2,
        )

    if "postgresql" in kinds:
        log(f"timers: {size['timer_cases']} cases on postgresql")
        result = timers(size["timer_cases"])
        emit(
            "timers_fired_per_min",
            60 * result["fired"] / result["wall"],
            "timers/min",
            db="postgresql",
            n=result["cases"],
            timer_rows=result["created"],
            fired=result["fired"],
            fired_rows=result["fired_rows"],
            workers=TIMER_WORKERS,
            batch=TIMER_BATCH,
            wall_s=round(result["wall"], 2),
            setup_s=round(result["setup_s"], 1),
            per_worker=result["per_worker"],
            timers_by_status=result["by_status"],
        )
        emit(
            "timers_fired_twice",
            result["twice"],
            "timers",
            db="postgresql",
            n=result["cases"],
            timer_fired_events=result["events"],
            open_refusal_items=result["open_refusals"],
        )
        problems = []
        if result["twice"]:
            problems.append(f"{result['twice']} timers fired twice")
        if result["fired"] != result["fired_rows"] or result["events"] != result["fired_rows"]:
            problems.append(
                f"fired {result['fired']} vs FIRED rows {result['fired_rows']} vs events {result['events']}"
            )
        if any(key.endswith(":waiting") for key in result["by_status"]):
            problems.append(f"timers left waiting: {result['by_status']}")
        if result["by_status"].get("report_late:fired") != result["cases"]:
            problems.append(f"report_late fired {result['by_status'].get('report_late:fired')} of {result['cases']}")
        if result["open_refusals"] != result["cases"]:
            problems.append(f"{result['open_refusals']} open refusal items for {result['cases']} cases")
        emit("timers_verified", 0 if problems else 1, "bool", db="postgresql", problems=problems)

    emit("bench_seconds", time.perf_counter() - started, "s", mode=mode)


if __name__ == "__main__":
    main()
