"""Sign-in, throttling, password change, language choice, cookies and security headers."""

import pytest
from sqlalchemy import select

from app import create_app
from app.audit.models import AuditEvent
from app.auth.passwords import verify_password
from app.extensions import db
from tests.conftest import PASSWORD


def test_sign_in_is_throttled_per_address(app, users, database_url, clock):
    throttled = create_app({
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "CLOCK": clock,
        "WTF_CSRF_ENABLED": False,
        "LOGIN_RATE_LIMIT": "3 per minute",
        "RATELIMIT_ENABLED": True,  # one Limiter per process: say so, the conftest app turned it off
    })
    client = throttled.test_client()
    codes = [client.post("/auth/login", data={"username": "caseworker", "password": "wrong"}).status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = client.post("/auth/login", data={"username": "caseworker", "password": PASSWORD})
    assert refused.status_code == 429  # even the right password waits: the address is throttled
    assert client.get("/auth/login").status_code == 200  # only attempts (POST) count


def test_failed_and_successful_sign_in_are_audited(client, users):
    client.post("/auth/login", data={"username": "caseworker", "password": "wrong"})
    client.post("/auth/login", data={"username": "caseworker", "password": PASSWORD})
    types = [e.type for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert types[-2:] == ["login_failed", "user_logged_in"]


def test_open_redirect_after_sign_in_is_refused(client, users):
    response = client.post("/auth/login?next=//evil.example/x", data={"username": "caseworker", "password": PASSWORD})
    assert response.headers["Location"] == "/"


def test_password_change(login, client, users):
    login("caseworker")
    new = {"new": "new-pass-5678", "confirm": "new-pass-5678"}
    wrong = client.post("/auth/password", data={"current": "nope", **new})
    assert wrong.status_code == 200 and 'id="current-feedback"' in wrong.get_data(as_text=True)
    mismatch = client.post("/auth/password", data={"current": PASSWORD, **new, "confirm": "other-9999"})
    assert mismatch.status_code == 200
    db.session.expire_all()
    assert verify_password(users["caseworker"].password_hash, PASSWORD)
    done = client.post("/auth/password", data={"current": PASSWORD, **new})
    assert done.status_code == 302
    db.session.expire_all()
    assert verify_password(users["caseworker"].password_hash, "new-pass-5678")
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.type == "password_changed")).one()


def test_chinese_by_default_and_the_choice_is_kept_on_the_account(client, login, users):
    assert "登录" in client.get("/auth/login").get_data(as_text=True)
    login("caseworker")
    client.post("/auth/language", data={"locale": "en", "next": "/inbox/"})
    assert users["caseworker"].locale == "en"
    fresh = client.application.test_client()  # a new browser: no session, the account remembers
    login("caseworker", fresh)
    page = fresh.get("/inbox/").get_data(as_text=True)
    assert "Inbox" in page and "收件箱" not in page and "待办" not in page
    client.post("/auth/language", data={"locale": "klingon"})
    assert db.session.get(type(users["caseworker"]), users["caseworker"].id).locale == "en"


@pytest.mark.parametrize("header,expected", [
    ("Content-Security-Policy", "default-src 'self'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
])
def test_security_headers(client, header, expected):
    assert expected in client.get("/auth/login").headers[header]


def test_session_cookie_is_http_only_and_same_site(client, users):
    response = client.post("/auth/login", data={"username": "caseworker", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_csrf_is_required_when_enabled(database_url, clock, app, users):
    strict = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "CLOCK": clock,
                         "RATELIMIT_ENABLED": False})
    response = strict.test_client().post("/auth/login", data={"username": "caseworker", "password": PASSWORD})
    assert response.status_code == 400
