"""Optimistic concurrency: of two simultaneous completions of one work item exactly one wins."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import engine
from app.audit.models import AuditEvent
from app.core.db import transaction
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db
from tests.conftest import PG_URL
from tests.engine.test_runtime import open_items, start

ROOT = Path(__file__).resolve().parents[2]


def _complete_in_thread(app, item_id, barrier, outcomes):
    with app.app_context():
        barrier.wait()
        try:
            with transaction():
                engine.complete_work_item(item_id, {"address": threading.current_thread().name})
            outcomes.append("ok")
        except engine.Conflict as exc:
            outcomes.append(f"conflict: {exc}")
        finally:
            db.session.remove()


def test_two_threads_complete_same_item_one_wins(app, deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    start("three_tasks", case_factory())
    item_id = open_items()[0].id
    db.session.commit()  # and read nothing more: on SQLite an open transaction holds the write lock
    barrier, outcomes = threading.Barrier(2), []
    threads = [threading.Thread(target=_complete_in_thread, args=(app, item_id, barrier, outcomes)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "ok"]
    assert "already completed" in next(o for o in outcomes if o.startswith("conflict"))
    db.session.expire_all()
    assert db.session.get(WorkItem, item_id).status == WorkItemStatus.COMPLETED
    assert db.session.scalar(select(func.count()).where(AuditEvent.type == "task_completed")) == 1
    assert [i.element_id for i in open_items()] == ["b"]


RACER = """
import sys, time
from app import create_app, engine
from app.core.db import transaction
app = create_app({"SQLALCHEMY_DATABASE_URI": sys.argv[1]})
with app.app_context():
    while time.time() < float(sys.argv[3]):
        time.sleep(0.001)
    try:
        with transaction():
            engine.complete_work_item(int(sys.argv[2]), {"address": "racer"})
        print("ok")
    except engine.Conflict as exc:
        print("conflict", exc)
"""


@pytest.mark.skipif(not PG_URL, reason="two processes racing need PostgreSQL")
def test_two_processes_complete_same_item_one_wins(app, deploy_fixtures, case_factory):
    deploy_fixtures("three_tasks.bpmn")
    start("three_tasks", case_factory())
    item_id = open_items()[0].id
    db.session.commit()
    go = time.time() + 2.5  # both processes start, connect, then fire together
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, PG_URL, str(item_id), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=60) for r in racers]
    results = sorted(out.strip().split(" ")[0] for out, _ in outputs)
    assert results == ["conflict", "ok"], outputs
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).where(AuditEvent.type == "task_completed")) == 1


def _wait_until_blocked_on_a_lock(deadline: float = 30.0) -> None:
    """Return once some other backend waits for a row lock (PostgreSQL's own view of it, not a sleep)."""
    from sqlalchemy import create_engine, text

    probe = create_engine(PG_URL)
    try:
        with probe.connect() as connection:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            until = time.monotonic() + deadline
            while connection.execute(query).scalar() == 0:
                assert time.monotonic() < until, "the second completion never waited for the lock"
                connection.commit()  # a new snapshot of the view for the next look
    finally:
        probe.dispose()


@pytest.mark.skipif(not PG_URL, reason="a completion waiting for another's row lock needs PostgreSQL")
def test_completion_that_waited_for_the_winners_lock_reports_the_winner(app, deploy_fixtures, case_factory):
    """The loser read the work item before the winner committed and only then got the instance's lock: it must
    see the item as it is now (completed), not as it read it, and change nothing."""
    deploy_fixtures("three_tasks.bpmn")
    start("three_tasks", case_factory())
    item_id = open_items()[0].id
    db.session.commit()
    locked, outcomes = threading.Event(), []

    def loser():
        with app.app_context():
            locked.wait(30)
            try:
                with transaction():
                    engine.complete_work_item(item_id, {"address": "loser"})
                outcomes.append("ok")
            except engine.Conflict as exc:
                outcomes.append(f"conflict: {exc}")
            finally:
                db.session.remove()

    thread = threading.Thread(target=loser)
    thread.start()
    with transaction():
        engine.complete_work_item(item_id, {"address": "winner"}, actor_id=None)
        locked.set()
        _wait_until_blocked_on_a_lock()  # the loser now waits for the instance row this transaction holds
    thread.join(60)
    assert outcomes and outcomes[0].startswith("conflict") and "already completed" in outcomes[0], outcomes
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).where(AuditEvent.type == "task_completed")) == 1
    assert [i.element_id for i in open_items()] == ["b"]
