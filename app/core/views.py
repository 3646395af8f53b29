"""Home page and health check."""

from flask import Blueprint, redirect, url_for
from flask_login import login_required
from sqlalchemy import text

from app.extensions import db

bp = Blueprint("core", __name__)


@bp.get("/healthz")
def healthz():
    db.session.execute(text("select 1"))
    return {"status": "ok"}


@bp.get("/")
@login_required
def index():
    """The workbench opens on the inbox."""
    return redirect(url_for("inbox.index"))
