"""`flask db upgrade` builds the schema the models describe, on SQLite and on PostgreSQL."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL

ROOT = Path(__file__).resolve().parents[1]


def flask(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "FLASK_APP": "app:create_app"}
    return subprocess.run(
        [sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def empty_database(tmp_path):
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'migrated.sqlite'}"
        return
    name = f"rehabflow_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(PG_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_upgrade_from_empty_matches_models(empty_database):
    upgraded = flask(empty_database, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    check = flask(empty_database, "db", "check")
    assert check.returncode == 0 and "No new upgrade operations detected" in check.stdout + check.stderr, (
        check.stdout + check.stderr
    )
    engine = create_engine(empty_database)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"process_definition", "process_instance", "work_item", "timer", "audit_event", "incident"} <= tables


def test_deploy_and_list_commands(empty_database, tmp_path):
    assert flask(empty_database, "db", "upgrade").returncode == 0
    deployed = flask(empty_database, "workflows", "deploy", str(ROOT / "tests/engine/fixtures/three_tasks.bpmn"))
    assert deployed.returncode == 0 and "deployed three_tasks v1" in deployed.stdout, deployed.stderr
    again = flask(empty_database, "workflows", "deploy", str(ROOT / "tests/engine/fixtures/three_tasks.bpmn"))
    assert "unchanged three_tasks v1" in again.stdout
    verified = flask(empty_database, "audit", "verify")  # the deploy's events, chained by what the migrations made
    assert verified.returncode == 0 and " 0 rows verified" not in f" {verified.stdout}", verified.stdout
    listed = flask(empty_database, "workflows", "list")
    assert "three_tasks" in listed.stdout and "v1" in listed.stdout
    broken = ROOT / "tests/engine/fixtures/three_tasks.bpmn"
    bad = tmp_path / "bad.bpmn"
    bad.write_text(broken.read_text().replace('name="社区民警 police"', 'name="nobody"'))
    refused = flask(empty_database, "workflows", "deploy", str(bad))
    assert refused.returncode == 1 and "bad.bpmn#c" in refused.stderr


def test_0003_lists_the_user_tasks_of_definitions_deployed_before_it(empty_database):
    assert flask(empty_database, "db", "upgrade", "0002").returncode == 0
    xml = (ROOT / "tests/engine/fixtures/three_tasks.bpmn").read_text()
    engine = create_engine(empty_database)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO process_definition (key, kind, name, version, sha256, file_name, xml, dependencies,"
                " start_messages, deployed_at) VALUES ('three_tasks', 'BPMN', 'Three tasks', 1, 'x',"
                " 'three_tasks.bpmn', :xml, '[]', '[]', '2026-01-01 00:00:00')"
            ),
            {"xml": xml},
        )
    upgraded = flask(empty_database, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    with engine.connect() as conn:
        tasks = conn.execute(text("SELECT user_tasks FROM process_definition")).scalar_one()
    engine.dispose()
    tasks = json.loads(tasks) if isinstance(tasks, str) else tasks
    assert tasks == [["a", "Intake interview"], ["b", "Sign agreement"], ["c", "Police review"]]
