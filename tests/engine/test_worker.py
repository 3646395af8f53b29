"""`flask worker`: real processes fire due timers exactly once, also with two workers and one killed mid-batch."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.engine.models import Timer, TimerStatus
from app.extensions import db
from tests.conftest import PG_URL
from tests.engine.test_runtime import start

ROOT = Path(__file__).resolve().parents[2]


def _worker(database_url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "FLASK_APP": "app:create_app"}
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _make_due_timers(deploy_fixtures, case_factory, clock, cases: int) -> None:
    """Timers due by the frozen test clock's calendar are long past by the real clock the workers use."""
    deploy_fixtures("timers.bpmn")
    for _ in range(cases):
        start("timers", case_factory(), {"decided_at": clock.now().isoformat()})
    db.session.commit()


def _fired_counts():
    db.session.expire_all()
    events = db.session.scalars(select(AuditEvent.payload).where(AuditEvent.type == "timer_fired")).all()
    per_timer: dict[int, int] = {}
    for payload in events:
        per_timer[payload["timer_id"]] = per_timer.get(payload["timer_id"], 0) + 1
    return per_timer


def test_worker_once_fires_every_due_timer(app, database_url, deploy_fixtures, case_factory, clock):
    _make_due_timers(deploy_fixtures, case_factory, clock, cases=5)
    out, err = _worker(database_url, "--once").communicate(timeout=120)
    assert "timers fired" in out, err
    per_timer = _fired_counts()
    # The interrupting 15-day timer cancels the task, so the 10-day reminder must fire first or not at all;
    # either way every timer ends fired or cancelled, none twice.
    assert set(per_timer.values()) == {1}
    statuses = db.session.scalars(select(Timer.status)).all()
    assert TimerStatus.WAITING not in statuses
    assert statuses.count(TimerStatus.FIRED) == len(per_timer)


@pytest.mark.skipif(not PG_URL, reason="several workers share timers only on PostgreSQL (SKIP LOCKED)")
def test_two_workers_and_one_killed_mid_batch_fire_each_timer_once(app, deploy_fixtures, case_factory, clock):
    cases = 120
    _make_due_timers(deploy_fixtures, case_factory, clock, cases=cases)
    victim = _worker(PG_URL, "--batch", "10")
    deadline = time.time() + 60
    while time.time() < deadline and not _fired_counts():
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)  # mid-run: its open batch must roll back, nothing half-fired
    victim.wait(30)
    assert 0 < len(_fired_counts()) < cases * 2

    workers = [_worker(PG_URL, "--once", "--batch", "7") for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    per_timer = _fired_counts()
    assert max(per_timer.values()) == 1
    waiting = db.session.scalar(select(func.count()).where(Timer.status == TimerStatus.WAITING))
    assert waiting == 0
    fired_rows = db.session.scalar(select(func.count()).where(Timer.status == TimerStatus.FIRED))
    assert fired_rows == len(per_timer)
