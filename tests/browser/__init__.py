"""Browser tests: Playwright (sync API) driving Debian's chromium against the real app served in a thread.

Shared by the tests (see conftest.py) and the README screenshot script (``python -m tests.browser.screenshots``).
Never ``playwright install``: the browser is /usr/bin/chromium (``make browser`` installs it).
"""

import os
import re
import threading
from pathlib import Path

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from app import engine
from app.core.db import transaction
from app.demo import DEMO_PASSWORD
from app.extensions import db

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
INBOX_URL = re.compile(r"/inbox/(\?.*)?$")


def launch(playwright):
    """Debian's chromium, headless."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)


def deploy_and_seed(app: Flask) -> None:
    """The real workflow library and the demo data (users with password demo1234, three cases in intake).

    Call inside an app context. Everything is committed: an open SQLite transaction would hold the write lock
    while the server's threads try to write."""
    from app.demo import seed

    with transaction():
        engine.deploy(engine.workflow_files(WORKFLOWS))
    with transaction():
        seed(skip_if_present=False)
    db.session.commit()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # no access log; errors are still logged
        pass


class LiveServer:
    """The app served by werkzeug in a background thread on a free port; every request gets its own app context."""

    def __init__(self, app: Flask):
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="live-server", daemon=True)

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join(10)
        self._server.server_close()


def read(query):
    """Run ``query(session)`` in a transaction of its own and end it: on SQLite every transaction takes the write
    lock (BEGIN IMMEDIATE, see app.extensions), so the test thread must not keep one open while the server works.
    Return plain values, not ORM objects (they expire with the transaction)."""
    db.session.rollback()
    try:
        return query(db.session)
    finally:
        db.session.rollback()


def sign_in(page, username: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the real form (labels are translated, so inputs are found by id) and land on the inbox."""
    page.goto("/auth/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("#main form button[type=submit]").click()
    page.wait_for_url(INBOX_URL)


def sign_out(page) -> None:
    """Sign out through the user menu (a Bootstrap dropdown holding a POST form)."""
    page.locator("nav .dropdown-toggle:has(.bi-person-circle)").click()
    page.locator("nav form[action$='/auth/logout'] button").click()
    page.wait_for_url("**/auth/login")
