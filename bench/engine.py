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
import queue
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
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
from app.core.clock import FrozenClock, now  # noqa: E402
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
    "full": {"seq": 1000, "conc_per_worker": 500, "cycles": 3000, "timer_cases": 10_000, "bare": 3000},
    "quick": {"seq": 100, "conc_per_worker": 60, "cycles": 300, "timer_cases": 1000, "bare": 300},
}
WARMUP = 5
CONCURRENT_WORKERS = 4
TIMER_WORKERS = 2
TIMER_BATCH = 50
STEP_WINDOW = 20
SEQ_CHUNKS = 10
PROFILE_N = 200
COUNT_N = 20


def emit(metric: str, value: float, unit: str, **extra) -> None:
    line = {"metric": metric, "value": round(value, 4), "unit": unit, **extra}
    print(json.dumps(line, ensure_ascii=False), flush=True)


def log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# --- machine load ------------------------------------------------------------------------------------------------
# Other work on this machine (test suites, builds) skews timings on 2 cores: each result carries the CPU the whole
# machine used while it was measured ("busy_cores", from /proc/stat), and each measurement first waits (a while)
# for the machine to be quiet.


def _proc_stat() -> list[int] | None:
    """The machine's CPU tick counters since boot (user ... steal), or None where /proc/stat is missing."""
    try:
        with open("/proc/stat") as stat:
            return [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def cpu_counters() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot; (0, 0) where /proc/stat is missing."""
    values = _proc_stat()
    if values is None:
        return 0, 0
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def steal_counters() -> tuple[int, int]:
    """(steal, total) CPU ticks since boot: time the hypervisor gave this machine's cores to someone else."""
    values = _proc_stat()
    return (values[7], sum(values)) if values else (0, 0)


def steal_cores(start: tuple[int, int], end: tuple[int, int]) -> float | None:
    """Cores' worth of time stolen by the hypervisor between two steal_counters() samples."""
    total = end[1] - start[1]
    if total <= 0:
        return None
    return round((os.cpu_count() or 1) * (end[0] - start[0]) / total, 3)


def busy_cores(start: tuple[int, int], end: tuple[int, int]) -> float | None:
    """Cores busy on average between two cpu_counters() samples (ours, PostgreSQL's and everyone else's)."""
    total = end[1] - start[1]
    if total <= 0:
        return None
    return round((os.cpu_count() or 1) * (end[0] - start[0]) / total, 2)


#: Seconds all measurements together may spend waiting for a quiet machine (set in main: more for a full run).
QUIET_BUDGET = {"left": 10.0}


def wait_for_quiet(threshold: float = 0.3) -> float | None:
    """Wait until the machine uses less than ``threshold`` cores (within the budget); returns the last reading."""
    while True:
        start, t0 = cpu_counters(), time.monotonic()
        time.sleep(0.25)
        busy = busy_cores(start, cpu_counters())
        QUIET_BUDGET["left"] -= time.monotonic() - t0
        if busy is None or busy < threshold or QUIET_BUDGET["left"] <= 0:
            if busy is not None and busy >= threshold:
                log(f"machine still busy ({busy} cores) - measuring anyway")
            return busy


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
        conn.execute("CHECKPOINT")  # flush what earlier measurements left dirty, so it does not land in this one
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


def sequential(kind: str, n: int, profile: bool = False) -> dict[bool, dict]:
    """three_tasks start -> finish for ``n`` cases with audit on and, on a second fresh database, audit off.

    The two runs alternate in chunks (on/off, then off/on, ...), each pair after a wait for a quiet machine, so
    both see the same conditions; per run the result is the median chunk (robust to a test suite someone starts
    on this machine meanwhile), the mean over all chunks is reported too.
    """
    runs: dict[bool, dict] = {}
    with ExitStack() as stack:
        for audit in (True, False):
            url = stack.enter_context(scratch_database(kind, "seq" if audit else "seqnoaudit"))
            app = make_app(url, audit=audit)
            with app.app_context():
                node_id = prepare_schema(["three_tasks.bpmn"])
                extra = (COUNT_N + (PROFILE_N if profile else 0)) if audit else 0
                cases = make_cases(node_id, n + WARMUP + extra)
                run_three_tasks(cases[:WARMUP], node_id)
            runs[audit] = {"app": app, "node_id": node_id, "cases": cases[WARMUP:], "chunks": []}
        size = max(10, n // SEQ_CHUNKS)
        for index, first in enumerate(range(0, n, size)):
            wait_for_quiet()
            for audit in (True, False) if index % 2 == 0 else (False, True):
                run = runs[audit]
                part = run["cases"][first : first + size]
                with run["app"].app_context():
                    load0, t0 = cpu_counters(), time.perf_counter()
                    run_three_tasks(part, run["node_id"])
                    elapsed, load1 = time.perf_counter() - t0, cpu_counters()
                run["chunks"].append((len(part), elapsed, busy_cores(load0, load1)))
        # Python function calls per completion: a count that does not move with the machine's speed (timings on a
        # shared 2-core virtual machine do), to compare versions of the code.
        counter = cProfile.Profile()
        with runs[True]["app"].app_context():
            counter.enable()
            run_three_tasks(runs[True]["cases"][n : n + COUNT_N], runs[True]["node_id"])
            counter.disable()
        calls_per_completion = pstats.Stats(counter).total_calls / (3 * COUNT_N)
        if profile:  # an extra, unmeasured pass: profiling slows everything down
            profiler = cProfile.Profile()
            with runs[True]["app"].app_context():
                profiler.enable()
                run_three_tasks(runs[True]["cases"][n + COUNT_N :], runs[True]["node_id"])
                profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
            log(f"cProfile of {PROFILE_N} more three_tasks instances on {kind} (audit on):\n{out.getvalue()}")
        for run in runs.values():
            with run["app"].app_context():
                done = db.session.scalar(
                    select(func.count())
                    .select_from(ProcessInstance)
                    .where(ProcessInstance.status == InstanceStatus.COMPLETED)
                )
                close_app()
            if done != WARMUP + len(run["cases"]):
                raise RuntimeError(f"{done} instances completed, expected {WARMUP + len(run['cases'])}")
    results = {audit: _chunk_summary(n, run["chunks"]) for audit, run in runs.items()}
    pairs = zip(runs[True]["chunks"], runs[False]["chunks"], strict=True)
    results[True]["calls_per_completion"] = calls_per_completion
    results[False]["pair_ratio"] = statistics.median((on[1] / on[0]) / (off[1] / off[0]) for on, off in pairs)
    return results


def _chunk_summary(n: int, chunks: list[tuple[int, float, float | None]]) -> dict:
    per_instance = statistics.median(seconds / count for count, seconds, _ in chunks)
    total = sum(seconds for _, seconds, _ in chunks)
    busy = [b for _, _, b in chunks if b is not None]
    return {
        "n": n,
        "rate": 3 / per_instance,
        "per_instance_ms": 1000 * per_instance,
        "mean_rate": round(3 * n / total, 2),
        "chunks": len(chunks),
        "chunk_rates": [round(3 * count / seconds, 1) for count, seconds, _ in chunks],
        "busy_cores": busy and round(statistics.median(busy), 2),
        "busy_cores_max": busy and max(busy),
    }


def run_workers(ctx, target, args_per_worker: list[tuple], results) -> list[tuple]:
    """Start one process per argument tuple, collect one result each, and make sure all of them end."""
    procs = [ctx.Process(target=target, args=args) for args in args_per_worker]
    try:
        for p in procs:
            p.start()
        spans: list[tuple] = []
        deadline = time.monotonic() + 900
        while len(spans) < len(procs):
            try:
                spans.append(results.get(timeout=1))
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"workers failed: {[(p.pid, p.exitcode) for p in procs]}") from None
        for p in procs:
            p.join(timeout=60)
            if p.exitcode != 0:
                raise RuntimeError(f"worker {p.pid} exited with {p.exitcode}")
        return spans
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()


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
    quiet = wait_for_quiet()
    with scratch_database("postgresql", "conc") as url:
        app = make_app(url)
        with app.app_context():
            node_id = prepare_schema(["three_tasks.bpmn"])
            close_app()
        barrier, results = ctx.Barrier(CONCURRENT_WORKERS), ctx.Queue()
        args = [(url, node_id, w, n_per_worker, barrier, results) for w in range(CONCURRENT_WORKERS)]
        load0 = cpu_counters()
        spans = run_workers(ctx, _concurrent_worker, args, results)
        load1 = cpu_counters()  # includes the workers' setup: a rough reading
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
    return {
        "elapsed": wall,
        "n": total,
        "rate": 3 * total / wall,
        "busy_before": quiet,
        "busy_cores": busy_cores(load0, load1),
    }


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
    wait_for_quiet()
    best = float("inf")
    for _ in range(3):  # best of three rounds: the in-memory loop is short, so other load shows up as noise
        t0 = time.perf_counter()
        for _ in range(m // 3):
            one()
        best = min(best, (time.perf_counter() - t0) / (m // 3))
    return best


# --- 3: one long case -------------------------------------------------------------------------------------------


def long_case(
    kind: str, cycles: int
) -> tuple[dict[int, float], dict[int, float], dict[int, tuple[int, int]], dict, list]:
    """Per step (1-based): wall seconds and process CPU seconds of the completion, and cpu_counters() before it;
    the Python calls (cProfile) of the step just before each measured window (that step is not measured); and, for
    the last window, pairs (young wall, old wall, young CPU, old CPU): each of its steps right after a step 10-30 of
    a second case started then, so that the machine's drift (which moves timings minutes apart) hits both alike."""
    with scratch_database(kind, "cycle") as url:
        app = make_app(url)
        with app.app_context():
            node_id = prepare_schema(["cycle.bpmn"])
            old_case, young_case = make_cases(node_id, 2)
            start_cycles(old_case, node_id, cycles)
            times: dict[int, float] = {}
            cpu: dict[int, float] = {}
            load: dict[int, tuple[int, int]] = {}
            marks = step_marks(cycles)
            window_starts = {step_window(mark, cycles)[0] for mark in marks}
            counted = {max(1, start - 1): mark for start, mark in ((step_window(m, cycles)[0], m) for m in marks)}
            calls: dict[int, int] = {}
            pairs: list[tuple[float, float, float, float]] = []
            last_window = step_window(cycles, cycles)
            for step in range(1, cycles + 1):
                if step == last_window[0]:  # the second case reaches its step 10 (unmeasured), then pairs begin
                    start_cycles(young_case, node_id, cycles)
                    for _ in range(1, step_window(10, cycles)[0]):
                        complete_cycle_step(young_case)
                if step in window_starts:
                    wait_for_quiet()  # between steps, so it changes nothing measured
                young = complete_cycle_step(young_case) if step >= last_window[0] else None
                load[step] = cpu_counters()
                counter = cProfile.Profile() if step in counted else None
                if counter is not None:
                    counter.enable()
                times[step], cpu[step] = complete_cycle_step(old_case)
                if counter is not None:
                    counter.disable()
                    calls[counted[step]] = pstats.Stats(counter).total_calls
                if young is not None:
                    pairs.append((young[0], times[step], young[1], cpu[step]))
            load[cycles + 1] = cpu_counters()
            for case_id, done in ((old_case, cycles), (young_case, len(pairs) + step_window(10, cycles)[0] - 1)):
                left = db.session.scalars(_open_items(case_id)).all()
                instances = db.session.scalar(
                    select(func.count()).select_from(ProcessInstance).where(ProcessInstance.case_id == case_id)
                )
                if len(left) != (0 if done == cycles else 1) or instances != min(done + 1, cycles):
                    raise RuntimeError(
                        f"case {case_id} after {done} cycles: {len(left)} open items, {instances} instances"
                    )
            close_app()
    return times, cpu, load, calls, pairs


def start_cycles(case_id: int, node_id: int, cycles: int) -> None:
    with transaction():
        if not engine.send_message(case_id, node_id, "next_cycle", {"cycle": 1, "cycles": cycles}):
            raise RuntimeError("next_cycle was not delivered")


def _open_items(case_id: int):
    return select(WorkItem.id).where(WorkItem.case_id == case_id, WorkItem.status == WorkItemStatus.OPEN).limit(2)


def complete_cycle_step(case_id: int) -> tuple[float, float]:
    """Complete the case's one open work item; (wall, process CPU) seconds of the completion."""
    items = db.session.scalars(_open_items(case_id)).all()
    if len(items) != 1:
        raise RuntimeError(f"case {case_id}: {len(items)} open work items, expected 1")
    t0, c0 = time.perf_counter(), time.process_time()
    with transaction():
        engine.complete_work_item(items[0], {"result": "negative"})
    return time.perf_counter() - t0, time.process_time() - c0


def step_marks(cycles: int) -> list[int]:
    return [10, 1000, cycles] if cycles >= 2000 else [10, cycles]


def step_window(mark: int, cycles: int) -> tuple[int, int]:
    """Steps 10-30 for the first mark, then the window ending at the mark (e.g. 2980-3000)."""
    first = mark if mark + STEP_WINDOW <= cycles and mark < 100 else mark - STEP_WINDOW
    return max(1, first), min(cycles, first + STEP_WINDOW)


def window_median_ms(times: dict[int, float], mark: int) -> float:
    first, last = step_window(mark, len(times))
    return 1000 * statistics.median(times[s] for s in range(first, last + 1))


def trend_ratio(times: dict[int, float], first: int = 10) -> float:
    """Cost at the last step / at step ``first`` by a Theil-Sen line through block medians of all steps.

    Uses every step, so a burst of other load during one 20-step window barely moves it (a cross-check).
    """
    cycles = len(times)
    block = max(10, cycles // 60)
    points = [
        (start + block / 2, statistics.median(times[s] for s in range(start, start + block)))
        for start in range(1, cycles - block + 2, block)
    ]
    slopes = [(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1 :]]
    slope = statistics.median(slopes)
    intercept = statistics.median(y - slope * x for x, y in points)
    return (intercept + slope * cycles) / (intercept + slope * first)


def window_busy(load: dict[int, tuple[int, int]], mark: int) -> float | None:
    first, last = step_window(mark, len(load) - 1)
    return busy_cores(load[first], load[last + 1])


# --- 4: timers --------------------------------------------------------------------------------------------------


def due_timer_count() -> int:
    """Timers still waiting and due by the app clock (those another worker holds locked included)."""
    return db.session.scalar(
        select(func.count()).select_from(Timer).where(Timer.status == TimerStatus.WAITING, Timer.due_at < now())
    )


def _timer_worker(url: str, now_iso: str, worker: int, barrier, results) -> None:
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
        args = [(url, fire_at.isoformat(), w, barrier, results) for w in range(TIMER_WORKERS)]
        quiet = wait_for_quiet()
        load0 = cpu_counters()
        spans = run_workers(ctx, _timer_worker, args, results)
        load1 = cpu_counters()  # includes the workers' start-up: a rough reading
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
            open_items = Counter(
                db.session.scalars(select(WorkItem.element_id).where(WorkItem.status == WorkItemStatus.OPEN)).all()
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
        "open_items": dict(sorted(open_items.items())),
        "per_worker": {s[0]: s[3] for s in spans},
        "batches": sum(s[4] for s in spans),
        "busy_before": quiet,
        "busy_cores": busy_cores(load0, load1),
    }


# --- main -------------------------------------------------------------------------------------------------------


def seq_extra(result: dict) -> dict:
    keys = ("n", "mean_rate", "chunks", "chunk_rates", "busy_cores", "busy_cores_max")
    return {key: result[key] for key in keys} | {"note": "median of chunk rates; mean_rate: all chunks together"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 1.5 minutes)")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--profile", action="store_true", help="cProfile one sequential run (to stderr)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: drop scratch databases
    size = SIZES["quick" if args.quick else "full"]
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    mode = "quick" if args.quick else "full"
    QUIET_BUDGET["left"] = 15.0 if args.quick else 90.0
    started = time.perf_counter()

    steal0 = steal_counters()
    time.sleep(2)
    idle_steal = steal_cores(steal0, steal_counters())
    emit(
        "machine",
        os.cpu_count() or 0,
        "cores",
        python=platform.python_version(),
        spiffworkflow=metadata.version("SpiffWorkflow"),
        sqlalchemy=metadata.version("SQLAlchemy"),
        platform=platform.platform(),
        loadavg=[round(x, 2) for x in os.getloadavg()],
        steal_cores=idle_steal,
        mode=mode,
    )
    steal0 = steal_counters()

    bare_s = bare_spiff(size["bare"])
    emit(
        "bare_spiff_instance_ms",
        1000 * bare_s,
        "ms",
        n=size["bare"],
        note="three_tasks start to finish in memory, parsed once; best of 3 rounds",
    )

    seq: dict[str, dict] = {}
    for kind in kinds:
        log(f"sequential three_tasks on {kind}, audit on and off")
        both = sequential(kind, size["seq"], profile=args.profile and kind == kinds[-1])
        seq[kind] = on = both[True]
        off = both[False]
        extra = {"target": 300} if kind == "postgresql" else {}
        emit("completions_per_s", on["rate"], "completions/s", db=kind, audit=True, **extra, **seq_extra(on))
        emit("instance_ms", on["per_instance_ms"], "ms", db=kind, n=on["n"], audit=True, note="start + 3 completions")
        emit(
            "python_calls_per_completion",
            on["calls_per_completion"],
            "calls",
            db=kind,
            n=COUNT_N,
            audit=True,
            note="Python function calls (cProfile) per completion, starts included: independent of machine speed",
        )
        emit(
            "engine_overhead_ratio",
            on["per_instance_ms"] / (1000 * bare_s),
            "x",
            db=kind,
            n=on["n"],
            ours_ms=round(on["per_instance_ms"], 3),
            bare_ms=round(1000 * bare_s, 3),
        )
        emit("completions_per_s", off["rate"], "completions/s", db=kind, audit=False, **seq_extra(off))
        emit(
            "audit_overhead_ratio",
            off["rate"] / on["rate"],
            "x",
            db=kind,
            n=off["n"],
            pair_ratio=round(off["pair_ratio"], 3),
            note="completion rate with AUDIT_ENABLED=False / with True (medians); pair_ratio: median over "
            "back-to-back chunk pairs",
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
            busy_cores=conc["busy_cores"],
            busy_before=conc["busy_before"],
        )

    for kind in kinds:
        cycles = size["cycles"]
        log(f"long case of {cycles} cycles on {kind}")
        times, cpu, load, calls, pairs = long_case(kind, cycles)
        for mark in step_marks(cycles):
            emit(
                "step_ms_at_step",
                window_median_ms(times, mark),
                "ms",
                db=kind,
                step=mark,
                window="{}-{}".format(*step_window(mark, cycles)),
                n=cycles,
                cpu_ms=round(window_median_ms(cpu, mark), 3),
                python_calls=calls[mark],
                busy_cores=window_busy(load, mark),
            )
        emit(
            f"step_ratio_{cycles}_vs_10",
            window_median_ms(times, cycles) / window_median_ms(times, 10),
            "x",
            db=kind,
            n=cycles,
            target=1.2,
            cpu_ratio=round(window_median_ms(cpu, cycles) / window_median_ms(cpu, 10), 3),
            trend_ratio=round(trend_ratio(times), 3),
            calls_ratio=round(calls[cycles] / calls[10], 3),
            note="medians of wall time per completion over the two windows; cpu_ratio: the same in this process's "
            "CPU time; trend_ratio: a line fitted through all steps (robust to a burst of other load); calls_ratio: "
            "Python calls of one step before each window (does not drift with the machine's speed)",
        )
        emit(
            f"step_pair_ratio_{cycles}_vs_10",
            statistics.median(old / young for young, old, _, _ in pairs),
            "x",
            db=kind,
            n=len(pairs),
            target=1.2,
            cpu_ratio=round(statistics.median(old / young for _, _, young, old in pairs), 3),
            note=f"the long case's steps {'-'.join(map(str, step_window(cycles, cycles)))}, each right after a step "
            "10-30 of a second case in the same database: median of the pairs' ratios (the machine's drift, which "
            "moves the windows a minute apart, hits both steps of a pair alike)",
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
            busy_cores=result["busy_cores"],
            busy_before=result["busy_before"],
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
            open_work_items=result["open_items"],
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
        # Both boundary timers were due (day 10 reminder, day 15 escalation): each must have fired once.
        for element in ("report_late", "report_reminder"):
            if result["by_status"].get(f"{element}:fired") != result["cases"]:
                problems.append(f"{element} fired {result['by_status'].get(f'{element}:fired')} of {result['cases']}")
        if result["open_items"].get("refusal") != result["cases"] or result["open_items"].get("report"):
            problems.append(f"open work items after firing: {result['open_items']}")
        emit("timers_verified", 0 if problems else 1, "bool", db="postgresql", problems=problems)

    emit(
        "bench_seconds",
        time.perf_counter() - started,
        "s",
        mode=mode,
        steal_cores=steal_cores(steal0, steal_counters()),
        note="steal_cores: cores' worth of CPU the hypervisor gave to other guests meanwhile (from /proc/stat)",
    )


if __name__ == "__main__":
    main()
