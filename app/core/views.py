"""Home page and health check."""

from flask import Blueprint, render_template
from flask_login import current_user, login_required
from sqlalchemy import func, select, text

from app.auth.models import JurisdictionNode
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
    scope = current_user.jurisdiction.path if current_user.jurisdiction else None
    query = (
        select(func.count())
        .select_from(WorkItem)
        .join(JurisdictionNode, JurisdictionNode.id == WorkItem.jurisdiction_id)
        .where(WorkItem.status == WorkItemStatus.OPEN, WorkItem.candidate_role.in_(current_user.roles))
    )
    # Only the user's own node and the nodes below it (no jurisdiction: nothing).
    query = query.where(JurisdictionNode.path.startswith(scope)) if scope else query.where(False)
    open_items = db.session.scalar(query)
    return render_template("index.html", open_items=open_items)
