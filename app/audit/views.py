"""Supervisors' audit pages: who looked at a case (access log, 条例7/43, PIPL Art 28)."""

from flask import Blueprint, abort, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.roles import Role
from app.auth.scope import get_in_scope_or_404
from app.cases.models import Case
from app.extensions import db

bp = Blueprint("audit", __name__, url_prefix="/audit")

ACCESS_PER_PAGE = 50
#: The access log: events that show or hand out a case's personal data.
ACCESS_EVENTS = {
    "case_viewed": _l("Case page viewed"),
    "document_downloaded": _l("Document downloaded"),
    "export_downloaded": _l("Export downloaded"),
    "id_number_revealed": _l("Full ID number shown"),
}


@bp.before_request
@login_required
def _supervisors_only():
    if not current_user.has_role(Role.SUPERVISOR):
        abort(404)


@bp.get("/cases/<int(max=2147483647):case_id>/access")
def case_access(case_id: int):
    """Who viewed, downloaded, exported or revealed the ID number of a case, and when; newest first."""
    case = get_in_scope_or_404(Case, case_id)
    is_access = (AuditEvent.case_id == case.id) & AuditEvent.type.in_(ACCESS_EVENTS)
    page_number = min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)
    page = db.paginate(
        select(AuditEvent).where(is_access).order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()),
        page=page_number,
        per_page=ACCESS_PER_PAGE,
        error_out=False,
    )
    people = db.session.execute(
        select(
            AuditEvent.actor_id,
            func.count().label("times"),
            func.min(AuditEvent.occurred_at).label("first"),
            func.max(AuditEvent.occurred_at).label("last"),
        )
        .where(is_access)
        .group_by(AuditEvent.actor_id)
        .order_by(func.max(AuditEvent.occurred_at).desc(), func.max(AuditEvent.id).desc())
    ).all()
    actor_ids = {row.actor_id for row in people} - {None}
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(actor_ids)))} if actor_ids else {}
    return render_template(
        "audit/case_access.html", case=case, page=page, people=people, users=users, labels=ACCESS_EVENTS
    )
