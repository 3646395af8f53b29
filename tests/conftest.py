"""Shared fixtures: a fresh app and database per test (SQLite file, or PostgreSQL when DATABASE_URL is set)."""

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import g, request_started
from sqlalchemy import text

from app import create_app
from app.auth.models import NodeLevel
from app.core.clock import FrozenClock
from app.core.db import transaction
from app.extensions import db

FIXTURES = Path(__file__).parent / "engine" / "fixtures"
PG_URL = os.environ.get("DATABASE_URL")
_pg_schema_ready = False


def _reset_postgres() -> None:
    """Empty every table (the schema is created once per run)."""
    global _pg_schema_ready
    if not _pg_schema_ready:
        db.drop_all()
        db.create_all()
        _pg_schema_ready = True
        return
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.session.commit()


@pytest.fixture
def clock():
    return FrozenClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))


@pytest.fixture
def database_url(tmp_path):
    return PG_URL or f"sqlite:///{tmp_path / 'test.sqlite'}"


@pytest.fixture
def app(database_url, clock):
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "CLOCK": clock,
            "WTF_CSRF_ENABLED": False,
            "SCRIPT_TIME_LIMIT": 1.0,
            "RATELIMIT_ENABLED": False,  # tests sign in many times; test_auth turns it on
            "DEPLOY_APPROVAL": False,  # tests/designer turns it on where approval is tested
        }
    )
    @request_started.connect_via(app)
    def _fresh_g(sender, **extra):
        # In production every request gets its own app context (and g); here the test's context is shared,
        # so start each request with an empty g as a real one would (current user, locale, scope cache).
        g.__dict__.clear()

    with app.app_context():
        if PG_URL:
            _reset_postgres()
        else:
            db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def tree(app):
    """A small jurisdiction tree: city → district → street → two communities."""
    from app.auth.operations import create_node

    with transaction():
        city = create_node("珠海市", NodeLevel.CITY)
        district = create_node("香洲区", NodeLevel.DISTRICT, city)
        street = create_node("拱北街道", NodeLevel.STREET, district)
        community_a = create_node("夏湾社区", NodeLevel.COMMUNITY, street)
        community_b = create_node("茂盛社区", NodeLevel.COMMUNITY, street)
    return {"city": city, "district": district, "street": street, "a": community_a, "b": community_b}


@pytest.fixture
def case_factory(app, tree):
    """Create cases: ``case_factory(name="张三", node=tree["a"])``."""
    from app.cases.operations import create_case

    counter = iter(range(1, 10**6))

    def make(name: str | None = None, node=None):
        n = next(counter)
        with transaction():
            return create_case(name or f"测试人员{n}", f"44040019900101{n:04d}", node or tree["a"])

    return make


@pytest.fixture
def deploy_fixtures(app):
    """Deploy fixture diagrams by file name: ``deploy_fixtures("three_tasks.bpmn")``."""
    from app import engine

    def deploy(*names: str):
        with transaction():
            return engine.deploy([engine.SourceFile.from_path(FIXTURES / name) for name in names])

    return deploy


PASSWORD = "test-pass-1234"


@pytest.fixture
def users(app, tree):
    """One user per role, placed as in the demo: ``users["caseworker"]`` (community a), ``users["caseworker2"]``
    (community b), ``users["police"]`` (street), ``users["supervisor"]`` (district), ``users["admin"]`` (city)..."""
    from app.auth.operations import create_user

    spec = {
        "caseworker": (["caseworker"], "a"),
        "caseworker2": (["caseworker"], "b"),
        "police": (["police"], "street"),
        "cadre": (["cadre"], "a"),
        "medical": (["medical"], "street"),
        "supervisor": (["supervisor"], "district"),
        "designer": (["designer"], "city"),
        "admin": (["admin"], "city"),
    }
    with transaction():
        made = {name: create_user(name, PASSWORD, roles, tree[node], name) for name, (roles, node) in spec.items()}
    return made


@pytest.fixture
def login(client, users):
    """``login("caseworker")`` signs the test client in as that user (and out of any other)."""

    def sign_in(username: str, test_client=None):
        c = test_client or client
        c.post("/auth/logout")
        response = c.post("/auth/login", data={"username": username, "password": PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return c

    return sign_in
