"""RehabFlow: case-lifecycle workflows for community drug treatment and rehabilitation."""

import os
from pathlib import Path

from flask import Flask

from app.config import Config
from app.core.clock import SystemClock
from app.extensions import babel, csrf, db, limiter, login_manager, migrate, ping_when_idle

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the application; ``config`` overrides settings (tests pass a database URL and a clock)."""
    app = Flask(__name__, instance_path=str(PROJECT_ROOT / "instance"))
    app.config.from_object(Config)
    if config:
        app.config.update({k: v for k, v in config.items() if k != "CLOCK"})
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{Path(app.instance_path) / 'rehabflow.sqlite'}"
    if not app.config.get("WORKFLOWS_DIR"):
        app.config["WORKFLOWS_DIR"] = str(PROJECT_ROOT / "workflows")
    app.extensions["clock"] = (config or {}).get("CLOCK") or SystemClock()

    db.init_app(app)
    with app.app_context():
        ping_when_idle(db.engine, app.config["DATABASE_PING_AFTER_IDLE_SECONDS"])
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)

    from app.core import errors, security, templating
    from app.core.i18n import select_locale

    babel.init_app(app, locale_selector=select_locale)
    security.init_app(app)
    templating.init_app(app)
    errors.init_app(app)

    from app import models  # noqa: F401  (every table, for Alembic and create_all)
    from app.admin.views import bp as admin_bp
    from app.audit.kpi_views import bp as kpi_bp
    from app.audit.views import bp as audit_bp
    from app.auth.views import bp as auth_bp
    from app.cases import services  # noqa: F401  (registers the case.* service topics)
    from app.cases.views import bp as cases_bp
    from app.cli import register_cli
    from app.core.views import bp as core_bp
    from app.designer.views import bp as designer_bp
    from app.inbox.views import bp as inbox_bp
    from app.monitor.views import bp as monitor_bp

    app.register_blueprint(core_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(inbox_bp)
    app.register_blueprint(cases_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(kpi_bp)
    app.register_blueprint(monitor_bp)
    app.register_blueprint(designer_bp)
    app.register_blueprint(audit_bp)
    register_cli(app)
    return app
