"""Home page and health check."""

from flask import Blueprint, render_template
from flask_login import current_user, login_required
from sqlalchemy import func, select, text

from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db

bp = Blueprint("core", __name__)


@bp.get("/healthz")
def healthz():
    db.session.execute(text("select 1"))
    return {"status": "ok"}


@bp.get("/")
@login_required
def index():
    open_items = db.session.scalar(
        select(func.count())
        .select_from(WorkItem)
        .where(WorkItem.status == WorkItemStatus.OPEN, WorkItem.candidate_role.in_(current_user.roles))
    )
    return render_template("index.html", open_items=open_items)
