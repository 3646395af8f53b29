"""Configuration read only from the environment."""

import os


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    """Settings for every environment; each value can be overridden by an environment variable."""

    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-change-me")
    #: SQLAlchemy URL; the embedded SQLite file under instance/ is the default (filled in by create_app).
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    #: A pooled PostgreSQL connection idle this long is pinged before use (and replaced if dead); one used more
    #: recently is not: a ping before every transaction would cost a round trip each (app.extensions).
    DATABASE_PING_AFTER_IDLE_SECONDS = float(os.environ.get("REHABFLOW_DB_PING_AFTER_IDLE", "10"))
    #: Folder holding the BPMN/DMN files that `flask workflows deploy` reads by default.
    WORKFLOWS_DIR = os.environ.get("REHABFLOW_WORKFLOWS_DIR")
    #: Wall-clock limit for one script, condition or DMN evaluation, in seconds.
    SCRIPT_TIME_LIMIT = float(os.environ.get("REHABFLOW_SCRIPT_TIME_LIMIT", "2.0"))
    #: How many due timers one worker takes per transaction batch.
    WORKER_BATCH_SIZE = int(os.environ.get("REHABFLOW_WORKER_BATCH", "50"))
    #: Seconds a worker sleeps when nothing is due.
    WORKER_IDLE_SECONDS = float(os.environ.get("REHABFLOW_WORKER_IDLE", "5"))
    #: Days an undeliverable message waits in the outbox before it expires.
    MESSAGE_TTL_DAYS = float(os.environ.get("REHABFLOW_MESSAGE_TTL_DAYS", "30"))
    #: Write one audit event for every engine change (turn off only to measure its cost).
    AUDIT_ENABLED = _bool("REHABFLOW_AUDIT", True)
    BABEL_DEFAULT_LOCALE = os.environ.get("REHABFLOW_LOCALE", "zh_CN")
    #: Interface languages offered to users (code -> name shown in the switcher).
    LANGUAGES = {"zh_CN": "中文", "en": "English"}
    BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("REHABFLOW_SECURE_COOKIES", False)
    #: HTTPS only (redirects, HSTS): on behind a TLS-terminating proxy in production.
    FORCE_HTTPS = _bool("REHABFLOW_FORCE_HTTPS", False)
    #: Where login throttling keeps its counters. memory:// is per process: fine for `make run`; with several
    #: processes or hosts set a shared store, e.g. redis://127.0.0.1:6379/0.
    RATELIMIT_STORAGE_URI = os.environ.get("REHABFLOW_RATELIMIT_STORAGE", "memory://")
    #: Sign-in attempts allowed per client address.
    LOGIN_RATE_LIMIT = os.environ.get("REHABFLOW_LOGIN_RATE_LIMIT", "10 per minute;50 per hour")
    RATELIMIT_HEADERS_ENABLED = True
    #: Largest request body (uploads included), and the largest single uploaded document.
    MAX_CONTENT_LENGTH = 12 * 1024 * 1024
    UPLOAD_MAX_BYTES = int(os.environ.get("REHABFLOW_UPLOAD_MAX_BYTES", str(5 * 1024 * 1024)))
    #: Deploys wait for a second designer or a supervisor to approve them (turn off for a one-person setup).
    DEPLOY_APPROVAL = _bool("REHABFLOW_DEPLOY_APPROVAL", True)
    #: Largest BPMN/DMN file a designer may save, upload or deploy.
    DEFINITION_MAX_BYTES = int(os.environ.get("REHABFLOW_DEFINITION_MAX_BYTES", str(2 * 1024 * 1024)))
    #: Instances a worker moves per migration batch (each in its own transaction).
    MIGRATION_BATCH_SIZE = int(os.environ.get("REHABFLOW_MIGRATION_BATCH", "50"))
    #: Rows per inbox page.
    INBOX_PAGE_SIZE = int(os.environ.get("REHABFLOW_INBOX_PAGE_SIZE", "25"))
