"""Fixtures for the browser tests: one chromium per run, a live server with the demo data per test, and pages that
record console errors (none may mention the Content Security Policy)."""

import os

import pytest
from argon2 import PasswordHasher

from app.auth import passwords
from tests.browser import CHROMIUM, LiveServer, deploy_and_seed, launch

VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM} (make browser)")
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def server(app, monkeypatch):
    """The app from tests/conftest.py (fresh database, frozen clock) with CSRF on, the real workflow library and the
    demo data, served on a free port."""
    app.config["WTF_CSRF_ENABLED"] = True  # real forms, real tokens
    # Cheap argon2 parameters: the seed hashes six passwords and every test signs in a few times (the parameters
    # travel inside each hash, so verifying is the real code path).
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    deploy_and_seed(app)
    with LiveServer(app) as live:
        yield live


class Pages:
    """Opens browser contexts against the live server and keeps every console error they log."""

    def __init__(self, browser, server):
        self.browser = browser
        self.server = server
        self.contexts = []
        self.console_errors: list[str] = []

    def new(self, locale: str = "zh-CN", viewport: dict | None = None):
        """A page in a fresh context (own cookies); ``page.goto("/inbox/")`` is relative to the server."""
        context = self.browser.new_context(
            base_url=self.server.url, locale=locale, timezone_id="Asia/Shanghai", viewport=viewport or VIEWPORT
        )
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        return page

    def _console(self, message) -> None:
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.console_errors.append(message.text)

    def csp_errors(self) -> list[str]:
        return [e for e in self.console_errors if "content security policy" in e.lower()]

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser, server):
    made = Pages(browser, server)
    yield made
    made.close()  # before the server stops: no request is left running against a dropped database
    assert made.csp_errors() == [], "the Content Security Policy blocked something"


@pytest.fixture
def page(pages):
    """A 1280×800 page with a Chinese browser (Accept-Language zh-CN)."""
    return pages.new()
