"""Inbox benchmark: server time of the inbox views for a caseworker and a district supervisor.

Usage::

    .venv/bin/python bench/inbox.py [--quick] [--db sqlite|postgresql|both] [--explain] [--keep]

Prints one JSON object per line on stdout: ``{"metric": ..., "value": ..., "unit": ..., ...}``.
The data is bulk-loaded straight into the tables (no workflows run): one city, 10 districts, 5 streets each,
10 communities each, 2 grids each; 100,000 cases (``--quick``: 10,000) with about 3 open and 1 completed work
item each on PostgreSQL (scratch database ``rf_bench_inbox`` on 127.0.0.1:5432, dropped and created at the start,
dropped at the end unless ``--keep``), 10,000 cases (``--quick``: 2,000) on a temporary SQLite file.
Each view is timed two ways: ``query`` (``inbox_page`` + ``view_counts``, what a page needs from the database)
and ``http`` (a full ``GET /inbox/?view=...`` through the test client, signed in, each request in its own app
context as under a server). The supervisor's ``assignees`` line is ``GET /inbox/assignees``, the reassignment list
the bulk bar fetches when it is used (http only). Setup is never timed.
``--explain`` prints the plan of the slowest statement of the supervisor's overdue view (stderr, and as a line).
"""

import argparse
import contextvars
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import event, func, insert, select, text  # noqa: E402

from app import create_app  # noqa: E402
from app.auth.models import NodeLevel, User, UserRole  # noqa: E402
from app.auth.operations import create_node, create_user  # noqa: E402
from app.cases.models import Case, CaseStatus, Measure  # noqa: E402
from app.core.clock import FrozenClock  # noqa: E402
from app.core.db import transaction  # noqa: E402
from app.engine.models import (  # noqa: E402
    DefinitionKind,
    InstanceStatus,
    ProcessDefinition,
    ProcessInstance,
    SpecBundle,
    WorkItem,
    WorkItemStatus,
)
from app.extensions import db  # noqa: E402
from app.inbox.queries import InboxFilter, inbox_page, view_counts  # noqa: E402
from bench.engine import QUIET_BUDGET, busy_cores, cpu_counters, emit, log, wait_for_quiet  # noqa: E402

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_NAME = "rf_bench_inbox"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_NAME}"
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PASSWORD = "bench-pass-1234"
TARGET_P95_MS = 50.0

#: Cases per database, timed calls per (user, view, level) and warm-up calls.
SIZES = {
    "full": {"postgresql": 100_000, "sqlite": 10_000, "n": 200, "warmup": 10},
    "quick": {"postgresql": 10_000, "sqlite": 2_000, "n": 30, "warmup": 3},
}
TREE = {"districts": 10, "streets": 5, "communities": 10, "grids": 2}
VIEWS = {
    "caseworker": ["mine", "overdue", "claimable"],
    "supervisor": ["mine", "overdue", "claimable", "team"],
}
#: Requests timed at the http level only: the reassignment list the supervisor's bulk bar fetches when used.
HTTP_ONLY = {"supervisor": {"assignees": ("inbox.assignees", "/inbox/assignees")}}
CHUNK = 5000

#: Tasks by candidate role: (element id, name, process key, lane, legal basis); weights of the roles.
TASKS = {
    "caseworker": [
        ("drug_test_check", "尿检与见面核查 Drug test and face-to-face check", "supervision", "条例25"),
        ("interview", "入户访谈 Intake interview", "intake", "条例15"),
        ("draft_agreement", "拟定协议与一人一策 Draft agreement and individual plan", "agreement", "条例16"),
        ("follow_up", "就业随访 Employment follow-up", "employment", None),
        ("register_report", "人员报到登记 Person reports", "intake", "条例14"),
        ("assess_needs", "就业需求评估 Employment needs assessment", "employment", None),
    ],
    "police": [
        ("deliver_decision", "送达决定书并通知街道 Deliver decision", "intake", "条例13"),
        ("record_refusal", "核查未报到 Check the missed report", "intake", "条例20"),
        ("leave_report", "离县报告 Leave-of-county report", "supervision", "条例27"),
    ],
    "cadre": [
        ("form_working_group", "组建工作小组 Form working group", "intake", "条例15"),
        ("sign_agreement", "签订协议 Sign the agreement", "agreement", "条例16"),
    ],
    "medical": [
        ("diagnostic_assessment", "诊断评估 Diagnostic assessment", "intake", "条例22"),
        ("detox_admission", "生理脱毒收治 Detox admission", "intake", None),
    ],
    "supervisor": [
        ("overdue_check", "逾期督办 Overdue check", "supervision", "条例25"),
        ("escalate_signing", "督办协议签订 Overdue agreement signing", "agreement", "条例16"),
    ],
}
ROLE_WEIGHTS = {"caseworker": 0.65, "police": 0.12, "cadre": 0.10, "medical": 0.08, "supervisor": 0.05}
LANES = {
    "caseworker": "禁毒社工 caseworker",
    "police": "社区民警 police",
    "cadre": "社区干部 cadre",
    "medical": "医务人员 medical",
    "supervisor": "禁毒办 supervisor",
}
STAGES = {"decision": 3, "intake": 12, "agreement": 10, "supervision": 55, "rehabilitation": 15, "isolation": 5}
TIERS = {"red": 15, "yellow": 35, "blue": 40, None: 10}


def stats_ms(seconds: list[float]) -> dict:
    ms = sorted(1000 * s for s in seconds)
    p95 = statistics.quantiles(ms, n=100, method="inclusive")[94] if len(ms) > 1 else ms[0]
    return {"p50": statistics.median(ms), "p95": p95, "max": ms[-1], "n": len(ms)}


# --- databases ------------------------------------------------------------------------------------------------


@contextmanager
def scratch_database(kind: str, keep: bool):
    """A fresh, empty database URL; removed afterwards (PostgreSQL: unless ``keep``)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench_inbox_") as tmp:
            yield f"sqlite:///{Path(tmp) / 'inbox.sqlite'}"
        return
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_NAME}"')
    try:
        yield PG_URL
    finally:
        if keep:
            log(f"kept database {PG_NAME}")
        else:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')


def make_app(url: str):
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "CLOCK": FrozenClock(START),
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
        }
    )


def _copy_value(value):
    if isinstance(value, Enum):
        return value.name  # SQLAlchemy stores non-native enums by member name
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def bulk_insert(model, rows: list[dict]) -> None:
    """Insert ``rows`` (all with the same keys): COPY on PostgreSQL, Core executemany in chunks on SQLite."""
    if not rows:
        return
    table = model.__table__
    if db.engine.dialect.name == "postgresql":
        columns = list(rows[0])
        raw = db.session.connection().connection.driver_connection
        with raw.cursor() as cur:
            with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([_copy_value(row[c]) for c in columns])
        return
    for first in range(0, len(rows), CHUNK):
        db.session.execute(insert(table), rows[first : first + CHUNK])


def reset_sequences(models) -> None:
    if db.engine.dialect.name != "postgresql":
        return
    for model in models:
        name = model.__tablename__
        db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"))


# --- data -------------------------------------------------------------------------------------------------------


def weighted(rng: random.Random, table: dict):
    return rng.choices(list(table), weights=list(table.values()))[0]


def build_tree() -> dict:
    """City → districts → streets → communities → grids, with materialised paths (create_node)."""
    city = create_node("珠海市", NodeLevel.CITY)
    districts, communities = [], []
    for d in range(TREE["districts"]):
        district = create_node(f"区{d + 1}", NodeLevel.DISTRICT, city)
        districts.append(district)
        for s in range(TREE["streets"]):
            street = create_node(f"区{d + 1}街道{s + 1}", NodeLevel.STREET, district)
            for c in range(TREE["communities"]):
                community = create_node(f"{street.name}社区{c + 1}", NodeLevel.COMMUNITY, street)
                grids = [
                    create_node(f"{community.name}网格{g + 1}", NodeLevel.GRID, community) for g in range(TREE["grids"])
                ]
                communities.append((community, grids))
    return {"city": city, "districts": districts, "communities": communities}


def load(n_cases: int) -> dict:
    """Schema, tree, users and the bulk data; returns the ids the measurements need."""
    rng = random.Random(20260302)
    t0 = time.perf_counter()
    db.create_all()
    with transaction():
        tree = build_tree()
        home, _ = tree["communities"][0]
        caseworker = create_user("bench_caseworker", PASSWORD, ["caseworker"], home, "社工甲")
        supervisor = create_user("bench_supervisor", PASSWORD, ["supervisor"], tree["districts"][0], "禁毒办乙")
        hashed = caseworker.password_hash
        # One caseworker per other community: assignees and completers of that community's work.
        others = [
            {
                "username": f"cw_{community.id}",
                "display_name": f"社工{community.id}",
                "password_hash": hashed,
                "jurisdiction_id": community.id,
                "active": True,
                "created_at": START,
            }
            for community, _ in tree["communities"][1:]
        ]
        db.session.execute(insert(User.__table__), others)
        worker_of = {home.id: caseworker.id}
        for user_id, node_id in db.session.execute(
            select(User.id, User.jurisdiction_id).where(User.username.startswith("cw_"))
        ):
            worker_of[node_id] = user_id
        db.session.execute(
            insert(UserRole.__table__),
            [{"user_id": uid, "role": "caseworker"} for uid in worker_of.values() if uid != caseworker.id],
        )
        definition = ProcessDefinition(
            key="bench",
            kind=DefinitionKind.BPMN,
            name="bench",
            version=1,
            sha256="0" * 64,
            file_name="bench.bpmn",
            xml="<definitions/>",
            dependencies=[],
            start_messages=[],
            deployed_at=START,
        )
        bundle = SpecBundle(sha256="0" * 64, content="{}", created_at=START)
        db.session.add_all([definition, bundle])
        db.session.flush()
        ids = {
            "caseworker": caseworker.id,
            "supervisor": supervisor.id,
            "definition": definition.id,
            "community": home.id,
            "district": tree["districts"][0].id,
        }
        places = [(community.id, node.id) for community, grids in tree["communities"] for node in (community, *grids)]
    log(f"tree and users ready ({len(places)} nodes with cases, {len(worker_of)} caseworkers)")

    cases, instances, items = [], [], []
    roles, role_weights = list(ROLE_WEIGHTS), list(ROLE_WEIGHTS.values())
    item_id = 0
    for case_id in range(1, n_cases + 1):
        community_id, node_id = places[rng.randrange(len(places))]
        worker = worker_of[community_id]
        created = START - timedelta(days=rng.uniform(30, 700))
        stage = weighted(rng, STAGES)
        cases.append(
            {
                "id": case_id,
                "reference": f"RF-2026-{case_id:06d}",
                "person_name": f"测试人员{case_id}",
                "id_number": f"4404001990{case_id:08d}",
                "jurisdiction_id": node_id,
                "measure": Measure.COMMUNITY_TREATMENT if rng.random() < 0.8 else Measure.COMMUNITY_REHABILITATION,
                "status": CaseStatus.OPEN,
                "stage": stage,
                "tier": None if stage == "decision" else weighted(rng, TIERS),
                "decision_date": (created - timedelta(days=3)).date(),
                "gender": rng.choice(["male", "female"]),
                "birth_date": date(1990, 1, 1),
                "term_started_on": created.date(),
                "facts": {},
                "refusal_count": 0,
                "absence_count": 0,
                "absence_days": 0,
                "close_reason": None,
                "created_at": created,
            }
        )
        instances.append(
            {
                "id": case_id,
                "case_id": case_id,
                "definition_id": ids["definition"],
                "bundle_sha256": "0" * 64,
                "process_key": "case",
                "jurisdiction_id": node_id,
                "status": InstanceStatus.RUNNING,
                "state": "{}",
                "lock_version": 1,
                "started_at": created,
                "updated_at": created,
                "completed_at": None,
                "started_by_id": None,
                "parent_instance_id": None,
            }
        )
        n_open, n_done = rng.choice((2, 3, 3, 4)), rng.choice((0, 1, 1, 2))
        for index in range(n_open + n_done):
            item_id += 1
            done = index < n_done
            role = rng.choices(roles, weights=role_weights)[0]
            element, name, process_key, basis = rng.choice(TASKS[role])
            due = None if rng.random() < 0.05 else START + timedelta(days=rng.uniform(-60, 60))
            mine = role == "caseworker" and (done or rng.random() < 0.5)
            item_created = (due or START) - timedelta(days=rng.uniform(1, 20))
            completed_at = START - timedelta(days=rng.uniform(0, 90)) if done else None
            items.append(
                {
                    "id": item_id,
                    "instance_id": case_id,
                    "case_id": case_id,
                    "task_id": str(uuid.UUID(int=item_id)),
                    "element_id": element,
                    "name": name,
                    "process_key": process_key,
                    "lane": LANES[role],
                    "candidate_role": role,
                    "jurisdiction_id": node_id,
                    "assignee_id": worker if mine else None,
                    "status": WorkItemStatus.COMPLETED if done else WorkItemStatus.OPEN,
                    "due_at": due,
                    "legal_basis": basis,
                    "form": [],
                    "documentation": None,
                    "created_at": item_created,
                    "claimed_at": item_created if mine else None,
                    "completed_at": completed_at,
                    "completed_by_id": worker if done and role == "caseworker" else None,
                }
            )
    log(f"generated {len(cases)} cases, {len(items)} work items in {time.perf_counter() - t0:.1f}s")
    with transaction():
        bulk_insert(Case, cases)
        bulk_insert(ProcessInstance, instances)
        bulk_insert(WorkItem, items)
        reset_sequences([Case, ProcessInstance, WorkItem])
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    with transaction():
        open_items = db.session.scalar(
            select(func.count()).select_from(WorkItem).where(WorkItem.status == WorkItemStatus.OPEN)
        )
    ids |= {"cases": n_cases, "items": len(items), "open_items": open_items, "setup_s": time.perf_counter() - t0}
    db.session.remove()
    return ids


# --- measuring --------------------------------------------------------------------------------------------------


class StatementTimer:
    """Times every statement the engine runs while ``on`` (to find the slowest one of a view)."""

    def __init__(self, engine_):
        self.on = False
        self.rows: list[tuple[str, object, float]] = []
        event.listen(engine_, "before_cursor_execute", self._before)
        event.listen(engine_, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if self.on:
            self.rows.append((statement, parameters, time.perf_counter() - conn.info.pop("bench_t0")))

    @contextmanager
    def capture(self):
        """Collect into a fresh list; the caller sets ``on`` around exactly what it times."""
        self.rows, self.on = [], False
        try:
            yield self.rows
        finally:
            self.on = False


def slowest_statement(rows: list[tuple[str, object, float]], calls: int) -> tuple[str, object, dict]:
    """The statement text with the highest median time over the captured calls."""
    by_text: dict[str, list] = {}
    for statement, parameters, seconds in rows:
        by_text.setdefault(statement, []).append((parameters, seconds))
    statement, runs = max(by_text.items(), key=lambda kv: statistics.median(s for _, s in kv[1]))
    info = stats_ms([s for _, s in runs]) | {"statements_per_call": round(len(rows) / max(calls, 1), 1)}
    return statement, runs[0][0], info


def fresh_user(user_id: int) -> User:
    """The user as a request sees it: a new session, the user and their roles and node loaded."""
    db.session.remove()
    user = db.session.get(User, user_id)
    user.roles  # noqa: B018  (load role_rows and the node outside the timing)
    user.jurisdiction  # noqa: B018
    return user


def query_call(user: User, view: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    inbox_page(user, InboxFilter(view=view))
    t1 = time.perf_counter()
    view_counts(user)
    return t1 - t0, time.perf_counter() - t1


def measure_query(user_id: int, view: str, n: int, warmup: int, timer: StatementTimer) -> dict:
    for _ in range(warmup):
        query_call(fresh_user(user_id), view)
    pages, counts, totals = [], [], []
    with timer.capture() as rows:
        for _ in range(n):
            user = fresh_user(user_id)
            timer.on = True
            page_s, counts_s = query_call(user, view)
            timer.on = False
            pages.append(page_s)
            counts.append(counts_s)
            totals.append(page_s + counts_s)
    db.session.remove()
    _, _, slowest = slowest_statement(rows, n)
    return {
        "stats": stats_ms(totals),
        "page_p50": statistics.median(pages) * 1000,
        "counts_p50": statistics.median(counts) * 1000,
        "slowest_statement": slowest,
    }


def alone(fn, *args, **kwargs):
    """Call ``fn`` outside the benchmark's app context, so that each test-client request pushes its own, as under
    a server: a fresh ``g`` and session per request (no scope ids, labels or user carried over from the last one)."""
    return contextvars.Context().run(fn, *args, **kwargs)


def measure_http(app, username: str, urls: dict[str, str], n: int, warmup: int) -> dict[str, dict]:
    """GET each url signed in as ``username``; {view: {"stats": ...} or {"error": ...}} for ``urls`` {view: url}."""
    client = app.test_client()
    response = alone(client.post, "/auth/login", data={"username": username, "password": PASSWORD})
    if response.status_code != 302:
        return {view: {"error": f"login answered {response.status_code}"} for view in urls}
    results = {}
    for view, url in urls.items():
        try:
            response = alone(client.get, url)
            if response.status_code != 200:
                body = response.get_data(as_text=True)[:200].replace("\n", " ")
                results[view] = {"error": f"GET {url} answered {response.status_code}: {body}"}
                continue
            for _ in range(warmup):
                alone(client.get, url)
            wait_for_quiet()
            load0 = cpu_counters()
            times, sizes = [], set()
            for _ in range(n):
                t0 = time.perf_counter()
                response = alone(client.get, url)
                body = response.get_data()
                times.append(time.perf_counter() - t0)
                sizes.add(len(body))
                if response.status_code != 200:
                    raise RuntimeError(f"GET {url} answered {response.status_code}")
            results[view] = {"stats": stats_ms(times), "bytes": max(sizes), "busy": busy_cores(load0, cpu_counters())}
        except Exception as exc:  # the inbox views are new: report, do not stop the other measurements
            results[view] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        finally:
            db.session.remove()
    return results


def baseline_ms(n: int) -> float:
    """Median ms of a trivial indexed query in this process: the unit that makes figures comparable."""
    times = []
    for i in range(n + 20):
        t0 = time.perf_counter()
        db.session.execute(text("SELECT count(*) FROM work_item WHERE id = 1")).scalar()
        if i >= 20:
            times.append(time.perf_counter() - t0)
    db.session.remove()
    return statistics.median(times) * 1000


def explain(kind: str, user_id: int, timer: StatementTimer) -> None:
    """Plan of the slowest statement of the supervisor's overdue view (inbox_page + view_counts)."""
    calls = 5
    with timer.capture() as rows:
        for _ in range(calls):
            user = fresh_user(user_id)
            timer.on = True
            query_call(user, "overdue")
            timer.on = False
    statement, parameters, info = slowest_statement(rows, calls)
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if kind == "postgresql" else "EXPLAIN QUERY PLAN "
    rows = db.session.connection().exec_driver_sql(prefix + statement, parameters)  # the session's connection:
    plan = [" ".join(str(v) for v in row) for row in rows]  # SQLite allows one writer (BEGIN IMMEDIATE)
    db.session.remove()
    log(f"slowest statement of the supervisor overdue view on {kind} (p50 {info['p50']:.2f} ms):\n{statement}")
    log(f"parameters: {parameters}\n" + "\n".join(plan))
    emit(
        "explain",
        info["p50"],
        "ms",
        db=kind,
        user="supervisor",
        view="overdue",
        statement=statement,
        parameters=str(parameters),
        plan=plan,
    )


def run(kind: str, n_cases: int, n: int, warmup: int, args) -> list[dict]:
    results = []
    with scratch_database(kind, args.keep) as url:
        app = make_app(url)
        with app.app_context():
            log(f"{kind}: loading {n_cases} cases")
            ids = load(n_cases)
            emit(
                "inbox_data",
                ids["cases"],
                "cases",
                db=kind,
                work_items=ids["items"],
                open_work_items=ids["open_items"],
                setup_s=round(ids["setup_s"], 1),
            )
            timer = StatementTimer(db.engine)
            base = baseline_ms(n)
            emit("baseline_ms", base, "ms", db=kind, n=n, note="SELECT count(*) FROM work_item WHERE id = 1, median")
            for role in ("caseworker", "supervisor"):
                user_id = ids[role]
                for view in VIEWS[role]:
                    wait_for_quiet()
                    load0 = cpu_counters()
                    measured = measure_query(user_id, view, n, warmup, timer)
                    s = measured["stats"]
                    result = {"db": kind, "user": role, "view": view, "level": "query", **s}
                    results.append(result)
                    emit(
                        "inbox_ms",
                        s["p95"],
                        "ms",
                        db=kind,
                        user=role,
                        view=view,
                        level="query",
                        p50=round(s["p50"], 3),
                        p95=round(s["p95"], 3),
                        max=round(s["max"], 3),
                        n=n,
                        page_p50=round(measured["page_p50"], 3),
                        counts_p50=round(measured["counts_p50"], 3),
                        slowest_statement_p50=round(measured["slowest_statement"]["p50"], 3),
                        statements_per_call=measured["slowest_statement"]["statements_per_call"],
                        p95_vs_baseline=round(s["p95"] / base, 1),
                        busy_cores=busy_cores(load0, cpu_counters()),
                        note="inbox_page + view_counts",
                    )
                username = "bench_caseworker" if role == "caseworker" else "bench_supervisor"
                urls = {view: f"/inbox/?view={view}" for view in VIEWS[role]}
                for view, (endpoint, url) in HTTP_ONLY.get(role, {}).items():
                    if endpoint in app.view_functions:  # absent when measuring an older version of the app
                        urls[view] = url
                for view, measured in measure_http(app, username, urls, n, warmup).items():
                    if "error" in measured:
                        log(f"http {role} {view}: {measured['error']}")
                        results.append({"db": kind, "user": role, "view": view, "level": "http", "error": True})
                        emit("inbox_ms", -1, "ms", db=kind, user=role, view=view, level="http", error=measured["error"])
                        continue
                    s = measured["stats"]
                    results.append({"db": kind, "user": role, "view": view, "level": "http", **s})
                    emit(
                        "inbox_ms",
                        s["p95"],
                        "ms",
                        db=kind,
                        user=role,
                        view=view,
                        level="http",
                        p50=round(s["p50"], 3),
                        p95=round(s["p95"], 3),
                        max=round(s["max"], 3),
                        n=n,
                        bytes=measured["bytes"],
                        p95_vs_baseline=round(s["p95"] / base, 1),
                        busy_cores=measured["busy"],
                        note=f"GET {urls[view]}, signed in, one app context per request",
                    )
            if args.explain:
                explain(kind, ids["supervisor"], timer)
            db.session.remove()
            db.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 cases on PostgreSQL, 2,000 on SQLite, 30 calls")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--explain", action="store_true", help="plan of the supervisor overdue view's slowest query")
    parser.add_argument("--keep", action="store_true", help=f"keep the PostgreSQL database {PG_NAME} afterwards")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: drop the scratch database
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    QUIET_BUDGET["left"] = 15.0 if args.quick else 120.0
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
    results = []
    for kind in kinds:
        results += run(kind, size[kind], size["n"], size["warmup"], args)
    measured = [r for r in results if not r.get("error")]
    worst = max(measured, key=lambda r: r["p95"], default=None)
    emit(
        "inbox_summary",
        worst["p95"] if worst else -1,
        "ms",
        target_p95_ms=TARGET_P95_MS,
        met=bool(measured) and all(r["p95"] < TARGET_P95_MS for r in measured),
        worst={k: worst[k] for k in ("db", "user", "view", "level")} if worst else None,
        over_target=[
            f"{r['db']}/{r['user']}/{r['view']}/{r['level']}: {r['p95']:.1f}"
            for r in measured
            if r["p95"] >= TARGET_P95_MS
        ],
        errors=[f"{r['db']}/{r['user']}/{r['view']}/{r['level']}" for r in results if r.get("error")],
        mode=mode,
        bench_seconds=round(time.perf_counter() - started, 1),
    )


if __name__ == "__main__":
    main()
