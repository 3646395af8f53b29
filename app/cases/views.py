"""Case pages: list, profile, new case from a decision, documents, stage actions.

Thin views: parse the request, call one operation inside one transaction, render. Every route that names a case
answers 404 for a case outside the user's node and the nodes below it.
"""

import re
from io import BytesIO

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm.exc import StaleDataError
from wtforms import SelectChoice

from app import engine
from app.audit.log import record
from app.auth.models import JurisdictionNode
from app.auth.scope import get_in_scope_or_404, node_in_scope
from app.cases import operations, queries
from app.cases.documents import DocumentError, store_document
from app.cases.forms import GENDER_LABELS, MEASURE_LABELS, STAGE_ACTIONS, NewCaseForm, UploadForm, placeholder
from app.cases.models import Case, Document
from app.cases.queries import CASE_ROLES, FULL_ID_ROLES, INTAKE_ROLES, CaseFilter
from app.cases.stages import STAGE_LABELS, TIER_LABELS
from app.core.db import transaction
from app.core.search import search_term
from app.extensions import db

bp = Blueprint("cases", __name__, url_prefix="/cases")

#: Ids in URLs stay within the database's integer range (a larger one is simply not found).
CASE = "<int(max=2147483647):case_id>"
DOCUMENT = "<int(max=2147483647):document_id>"
#: Audit event types are snake_case words.
EVENT_TYPE = re.compile(r"[a-z_]{1,50}")


@bp.before_request
def _case_roles_only():
    """Signed-in people who work on cases; designers and administrators do not see personal data (PIPL)."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not CASE_ROLES & current_user.roles:
        abort(404)
    return None


def _fragment_for(target: str) -> bool:
    """An htmx request that swaps the element ``target`` (a back-button history restore wants the page)."""
    headers = request.headers
    return (
        bool(headers.get("HX-Request"))
        and headers.get("HX-Target") == target
        and not headers.get("HX-History-Restore-Request")
    )


def _task_url(item_id: int) -> str | None:
    """The inbox task page, when the inbox is installed."""
    if "inbox.task" not in current_app.view_functions:
        return None
    return url_for("inbox.task", item_id=item_id)


def _page_arg(name: str) -> int:
    value = request.args.get(name, 1, type=int) or 1
    return min(max(value, 1), 100_000)


# --- list -------------------------------------------------------------------------------------------------------


@bp.route("/", methods=["GET", "POST"])
def index():
    """The case list; a search is POSTed so names and ID numbers never appear in a URL (app.core.search)."""
    f = CaseFilter.from_args(request.form if request.method == "POST" else request.args)
    f.q = search_term("cases")
    if request.method == "POST" and not request.headers.get("HX-Request"):
        return redirect(url_for("cases.index", **f.to_args(page=None)))
    page = queries.case_page(f)
    context = {
        "f": f,
        "page": page,
        "open_counts": queries.open_item_counts([c.id for c in page.items]),
        "statuses": queries.STATUS_LABELS,
    }
    if _fragment_for("case-results"):
        response = make_response(render_template("cases/_case_table.html", **context))
        response.headers["HX-Push-Url"] = url_for("cases.index", **f.to_args())
        return response
    return render_template(
        "cases/index.html",
        stages=STAGE_LABELS,
        tiers=TIER_LABELS,
        may_create=bool(INTAKE_ROLES & current_user.roles),
        **context,
    )


# --- new case from a decision ------------------------------------------------------------------------------------


@bp.route("/new", methods=["GET", "POST"])
def new():
    if not INTAKE_ROLES & current_user.roles:
        abort(404)
    communities = queries.communities_in_scope()
    form = NewCaseForm()
    form.community_id.choices = [SelectChoice(node.id, node.name) for node in communities]
    if len(communities) > 1:
        form.community_id.choices.insert(0, placeholder())
    if not form.is_submitted() and len(communities) == 1:
        form.community_id.data = communities[0].id
    if form.validate_on_submit():
        existing = queries.open_case_with_id_number(form.id_number.data)
        if existing is not None:
            form.id_number.errors.append(_("This person already has an open case (%(ref)s).", ref=existing.reference))
            return _render_new(form, communities, existing=existing, status=422)
        community = db.session.get(JurisdictionNode, form.community_id.data)
        try:
            with transaction():
                case = operations.open_case(jurisdiction=community, actor_id=current_user.id, **form.case_fields())
                case_id, reference = case.id, case.reference
        except engine.EngineError as exc:
            current_app.logger.warning("opening a case failed: %s", exc)
            flash(_("The case could not be opened: the case workflow is not available. Nothing was saved."), "danger")
            return _render_new(form, communities, status=409)
        flash(_("Case %(ref)s opened; the decision is now to be delivered (条例13).", ref=reference), "success")
        return redirect(url_for("cases.show", case_id=case_id))
    return _render_new(form, communities, status=422 if form.is_submitted() else 200)


def _render_new(form, communities, existing=None, status=200):
    return render_template("cases/new.html", form=form, communities=communities, existing=existing), status


# --- the case page --------------------------------------------------------------------------------------------


def _timeline_context(case: Case) -> dict:
    event_type = request.args.get("event") or None
    if event_type is not None and not EVENT_TYPE.fullmatch(event_type):
        event_type = None
    actor_id = request.args.get("actor", type=int)
    events = queries.timeline(case, event_type, _page_arg("tpage"), actor_id)
    return {
        "case": case,
        "events": events,
        "event_type": event_type,
        "event_types": queries.event_types(case),
        "actor_id": actor_id,
        "event_actors": queries.event_actors(case),
        "event_labels": queries.EVENT_LABELS,
        "details": queries.describe_events(events.items),
        "actors": queries.user_names(e.actor_id for e in events.items),
    }


def _render_show(case: Case, *, upload_form=None, action_forms=None, open_action=None, full_id=False, status=200):
    actions = queries.available_actions(case, current_user)
    forms = {a.message: (action_forms or {}).get(a.message) or a.make_form(case) for a in actions}
    docs = queries.documents(case)
    items = queries.open_work(case)
    context = {
        "case": case,
        "full_id": full_id,
        "may_reveal": bool(FULL_ID_ROLES & current_user.roles),
        "clock": queries.term_clock(case),
        "decision": queries.labelled_facts(case, queries.DECISION_FACTS),
        "working_group": queries.labelled_facts(case, queries.WORKING_GROUP),
        "items": items,
        "names": queries.user_names([i.assignee_id for i in items] + [d.uploaded_by_id for d in docs]),
        "task_url": _task_url,
        "documents": docs,
        "upload_form": upload_form or UploadForm(prefix="upload", formdata=None),
        "actions": actions,
        "action_forms": forms,
        "open_action": open_action,
        "statuses": queries.STATUS_LABELS,
        "reasons": queries.REASON_LABELS,
        "measures": MEASURE_LABELS,
        "genders": GENDER_LABELS,
        **_timeline_context(case),
    }
    return render_template("cases/show.html", **context), status


@bp.get(f"/{CASE}")
def show(case_id: int):
    case = get_in_scope_or_404(Case, case_id)
    if _fragment_for("timeline"):
        return render_template("cases/_timeline.html", **_timeline_context(case))
    full_id = request.args.get("full_id") == "1" and bool(FULL_ID_ROLES & current_user.roles)
    if full_id:
        with transaction():
            operations.record_id_number_revealed(case, current_user.id)
    case_ref = {"case_id": case.id, "jurisdiction_id": case.jurisdiction_id}
    page = _render_show(case, full_id=full_id)
    # 条例7/43, PIPL Art 28: every view is logged; after drawing, so the viewer's own view is not in the timeline.
    with transaction():
        record("case_viewed", actor_id=current_user.id, **case_ref)
    return page


@bp.post(f"/{CASE}/actions/<name>")
def action(case_id: int, name: str):
    """Send one stage message from the case page (the "app" senders in workflows/README.md)."""
    case = get_in_scope_or_404(Case, case_id)
    stage_action = STAGE_ACTIONS.get(name)
    if stage_action is None or not stage_action.roles & current_user.roles:
        abort(404)
    if stage_action not in queries.available_actions(case, current_user):
        flash(_("This action is not available for this case now."), "warning")
        return redirect(url_for("cases.show", case_id=case.id))
    form = stage_action.make_form(case, submitted=True)
    if not form.validate_on_submit():
        return _render_show(case, action_forms={name: form}, open_action=name, status=422)
    label = str(stage_action.label)
    try:
        with transaction():
            taken = operations.send_stage_message(case, name, form.payload(), actor_id=current_user.id)
    except (engine.EngineError, StaleDataError) as exc:
        current_app.logger.warning("stage action %s on case %s failed: %s", name, case_id, exc)
        flash(_("“%(action)s” did not go through; nothing was changed. Please try again.", action=label), "danger")
        return redirect(url_for("cases.show", case_id=case_id))
    if taken:
        flash(_("“%(action)s” is recorded.", action=label), "success")
    else:
        flash(_("“%(action)s” is sent; the workflow will take it up shortly.", action=label), "info")
    case = db.session.get(Case, case_id)
    if case is None or not node_in_scope(case.jurisdiction_id):
        return redirect(url_for("cases.index"))  # moved out of the user's jurisdiction (条例22)
    return redirect(url_for("cases.show", case_id=case_id))


# --- documents ----------------------------------------------------------------------------------------------------


@bp.post(f"/{CASE}/documents")
def upload(case_id: int):
    case = get_in_scope_or_404(Case, case_id)
    form = UploadForm(prefix="upload")
    if form.validate_on_submit():
        try:
            with transaction():
                file_name = store_document(case, form.document.data, current_user.id).file_name
        except DocumentError as exc:
            form.document.errors.append(str(exc))
        else:
            flash(_("“%(name)s” was added to the case.", name=file_name), "success")
            return redirect(url_for("cases.show", case_id=case_id, _anchor="documents"))
    return _render_show(case, upload_form=form, status=422)


@bp.get(f"/{CASE}/documents/{DOCUMENT}")
def document(case_id: int, document_id: int):
    case = get_in_scope_or_404(Case, case_id)
    doc = db.session.get(Document, document_id)
    if doc is None or doc.case_id != case.id:
        abort(404)
    content, content_type, file_name = doc.content, doc.content_type, doc.file_name
    with transaction():
        operations.record_document_downloaded(case, document_id, current_user.id)
    response = send_file(BytesIO(content), mimetype=content_type, as_attachment=True, download_name=file_name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response
