"""The task inbox and task forms (thin: parse, call one operation, render)."""

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import MultiDict

from app import engine
from app.auth.models import User
from app.auth.roles import Role
from app.auth.scope import get_in_scope_or_404, in_scope, scope_nodes
from app.cases.documents import DocumentError, store_document
from app.cases.models import Case, Document
from app.cases.stages import STAGE_LABELS, TIER_LABELS
from app.core.clock import now
from app.core.db import transaction
from app.core.search import remember, search_term
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db
from app.inbox import operations
from app.inbox.forms import KEPT_DOCUMENT, build_form, form_data
from app.inbox.models import SavedFilter
from app.inbox.operations import InboxError
from app.inbox.queries import InboxFilter, View, filter_choices, inbox_page, is_supervisor, view_counts, views_for

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
#: Roles that carry out tasks in the field (supervisors reassign among these).
FIELD_ROLES = {Role.CASEWORKER, Role.POLICE, Role.CADRE, Role.MEDICAL}


def _fragment_or_page(fragment: str, page: str, **context):
    """htmx asks for the part it swaps; a plain request gets the whole page."""
    return render_template(fragment if request.headers.get("HX-Request") else page, **context)


def _saved_filters() -> list[SavedFilter]:
    return list(
        db.session.scalars(
            select(SavedFilter)
            .where(
                or_(SavedFilter.owner_id == current_user.id, SavedFilter.shared_role.in_(sorted(current_user.roles)))
            )
            .order_by(SavedFilter.name)
        )
    )


@bp.route("/", methods=["GET", "POST"])
@login_required
def index():
    """The inbox; a search is POSTed so names and ID numbers never appear in a URL (app.core.search)."""
    args = request.form if request.method == "POST" else request.args
    f = InboxFilter.from_args(args)
    f.q = search_term("inbox")
    if request.method == "POST" and not request.headers.get("HX-Request"):
        return redirect(url_for("inbox.index", **f.to_args(page=None)))
    supervisor = is_supervisor(current_user)
    if "view" not in args and supervisor:
        f.view = View.TEAM.value  # supervisors watch their area; their own tasks are few
    if f.view not in views_for(current_user):
        f.view = View.MINE.value
    counts = view_counts(current_user)
    page = inbox_page(current_user, f, page_size=current_app.config["INBOX_PAGE_SIZE"], total=counts[f.view])
    context = {
        "f": f,
        "page": page,
        "counts": counts,
        "views": views_for(current_user),
        "supervisor": supervisor,
    }
    if request.headers.get("HX-Request"):
        response = make_response(render_template("inbox/_results.html", **context))
        response.headers["HX-Push-Url"] = url_for("inbox.index", **f.to_args())
        return response
    return render_template(
        "inbox/index.html",
        nodes=scope_nodes(),
        choices=filter_choices(current_user),
        stages=STAGE_LABELS,
        tiers=TIER_LABELS,
        saved=_saved_filters(),
        **context,
    )


@bp.get("/assignees")
@login_required
def assignees():
    """Supervisors: the bulk bar's reassignment fields, fetched when asked for (inbox/_results.html).

    A district has hundreds of people and most visits to the inbox reassign nothing: listing them on every
    page cost a district supervisor's inbox 5-10 ms (bench/inbox.py).
    """
    if not is_supervisor(current_user):
        abort(404)
    return render_template("inbox/_bulk_reassign.html", assignees=_team())


def _team() -> list[User]:
    """Active people in the supervisor's jurisdiction who do casework (reassignment targets)."""
    users = db.session.scalars(
        select(User)
        .where(User.active.is_(True), in_scope(User.jurisdiction_id))
        .options(selectinload(User.jurisdiction))
        .order_by(User.display_name)
    )
    return [u for u in users if u.roles & FIELD_ROLES]


def _back_to_inbox():
    target = request.form.get("next") or request.referrer or ""
    if target.startswith("/") and not target.startswith("//"):
        return redirect(target)
    return redirect(url_for("inbox.index"))


def _item_or_404(item_id: int) -> WorkItem:
    """A work item in the user's jurisdiction, or one assigned to them; anything else is 404."""
    item = db.session.get(WorkItem, item_id)
    if item is not None and item.assignee_id == current_user.id:
        return item
    return get_in_scope_or_404(WorkItem, item_id)


@bp.post("/tasks/<int:item_id>/claim")
@login_required
def claim(item_id: int):
    item = _item_or_404(item_id)
    try:
        with transaction():
            operations.claim(item, current_user)
        flash(_("You have claimed “%(task)s”.", task=item.name), "success")
    except InboxError as exc:
        flash(str(exc), "warning")
    return _back_to_inbox()


@bp.post("/tasks/<int:item_id>/unclaim")
@login_required
def unclaim(item_id: int):
    item = _item_or_404(item_id)
    try:
        with transaction():
            operations.unclaim(item, current_user)
        flash(_("The task is back in the pool."), "success")
    except InboxError as exc:
        flash(str(exc), "warning")
    return _back_to_inbox()


@bp.route("/tasks/<int:item_id>/reassign", methods=["GET", "POST"])
@login_required
def reassign(item_id: int):
    item = _item_or_404(item_id)
    candidates = operations.eligible_assignees(item)
    error = None
    if request.method == "POST":
        target = db.session.get(User, request.form.get("assignee_id", type=int) or 0)
        try:
            if target is None:
                raise InboxError(_("Choose who should take the task."))
            with transaction():
                operations.reassign(item, target, request.form.get("reason", ""), current_user)
            flash(_("“%(task)s” is now with %(name)s.", task=item.name, name=target.display_name), "success")
            return redirect(url_for("inbox.index"))
        except InboxError as exc:
            error = str(exc)
    return render_template(
        "inbox/reassign.html",
        item=item,
        case=db.session.get(Case, item.case_id),
        candidates=candidates,
        error=error,
        form=request.form,
    )


@bp.post("/bulk")
@login_required
def bulk():
    """Supervisors: claim or reassign several items at once; each item succeeds or fails on its own."""
    if not is_supervisor(current_user):
        abort(404)
    ids = request.form.getlist("ids", type=int)
    items = list(db.session.scalars(select(WorkItem).where(WorkItem.id.in_(ids), in_scope(WorkItem.jurisdiction_id))))
    if not items:
        flash(_("Select at least one task."), "warning")
        return _back_to_inbox()
    action = request.form.get("action")
    with transaction():
        if action == "claim":
            result = operations.bulk(items, operations.claim, current_user)
        elif action == "reassign":
            target = db.session.get(User, request.form.get("assignee_id", type=int) or 0)
            if target is None:
                flash(_("Choose who should take the tasks."), "warning")
                return _back_to_inbox()
            result = operations.bulk(items, operations.reassign, target, request.form.get("reason", ""), current_user)
        else:
            abort(400)
    if result.done:
        flash(_("%(n)d task(s) done.", n=len(result.done)), "success")
    for item_id, reason in result.failed.items():
        flash(_("Task %(id)d: %(reason)s", id=item_id, reason=reason), "warning")
    return _back_to_inbox()


@bp.post("/filters")
@login_required
def save_filter():
    name = (request.form.get("name") or "").strip()[:100]
    role = request.form.get("shared_role") or None
    if not name:
        flash(_("Give the filter a name."), "warning")
        return _back_to_inbox()
    if role is not None and role not in current_user.roles:
        flash(_("You can share a filter only with a role you hold."), "warning")
        return _back_to_inbox()
    f = InboxFilter.from_args(request.form)
    with transaction():
        saved = SavedFilter(owner_id=current_user.id, name=name, params=f.saved_params(), shared_role=role)
        saved.created_at = now()
        db.session.add(saved)
    flash(_("Filter “%(name)s” saved.", name=name), "success")
    remember("inbox", f.q)
    return redirect(url_for("inbox.index", **f.to_args(page=None)))


@bp.get("/filters/<int:filter_id>")
@login_required
def apply_filter(filter_id: int):
    """Open the inbox with a saved filter (its search term goes to the session, not into the URL)."""
    saved = db.session.get(SavedFilter, filter_id)
    if saved is None or not (saved.owner_id == current_user.id or saved.shared_role in current_user.roles):
        abort(404)
    f = InboxFilter.from_args(saved.params)
    remember("inbox", f.q)
    return redirect(url_for("inbox.index", **f.to_args(page=None)))


@bp.post("/filters/<int:filter_id>/delete")
@login_required
def delete_filter(filter_id: int):
    saved = db.session.get(SavedFilter, filter_id)
    if saved is None or saved.owner_id != current_user.id:
        abort(404)
    with transaction():
        db.session.delete(saved)
    flash(_("Filter deleted."), "success")
    return redirect(url_for("inbox.index"))


# --- task forms ---------------------------------------------------------------------------------------------------


def _kept_documents(item: WorkItem, specs: list[dict], source) -> dict[str, Document]:
    """Uploads stored on an earlier, rejected submit of this task (by id in a hidden input)."""
    kept = {}
    for spec in specs:
        if spec["type"] != "file":
            continue
        document_id = source.get(KEPT_DOCUMENT.format(spec["id"]), type=int) if hasattr(source, "get") else None
        document = db.session.get(Document, document_id) if document_id else None
        if document is not None and document.work_item_id == item.id:
            kept[spec["id"]] = document
    return kept


def _store_uploads(item: WorkItem, case: Case, form, kept: dict, check_required: bool = True) -> dict[str, str]:
    """Store each new upload in its own transaction, so a rejected submit does not lose it."""
    errors = {}
    for spec in form.specs:
        if spec["type"] != "file":
            continue
        upload = request.files.get(spec["id"])
        if upload is None or not upload.filename:
            if check_required and spec["required"] and spec["id"] not in kept:
                errors[spec["id"]] = _("Attach a file.")
            continue
        try:
            with transaction():
                document = store_document(case, upload, current_user.id, work_item_id=item.id, field_id=spec["id"])
            kept[spec["id"]] = document
        except DocumentError as exc:
            errors[spec["id"]] = str(exc)
    return errors


def _next_task(case_id: int) -> WorkItem | None:
    """The next open task of the same case that the user may work on: theirs first, then claimable."""
    query = (
        select(WorkItem)
        .where(
            WorkItem.case_id == case_id,
            WorkItem.status == WorkItemStatus.OPEN,
            or_(
                WorkItem.assignee_id == current_user.id,
                and_(WorkItem.assignee_id.is_(None), WorkItem.candidate_role.in_(sorted(current_user.roles))),
            ),
        )
        .order_by(WorkItem.assignee_id.is_(None), WorkItem.due_at.asc().nulls_last(), WorkItem.id)
    )
    return db.session.scalars(query).first()


@bp.route("/tasks/<int:item_id>", methods=["GET", "POST"])
@login_required
def task(item_id: int):
    item = _item_or_404(item_id)
    case = db.session.get(Case, item.case_id)
    may_work = operations.may_work_on(current_user, item)
    specs = item.form or []
    draft = operations.load_draft(item.id, current_user)
    action = request.form.get("action", "submit")

    if request.method == "GET" or not may_work:
        formdata = MultiDict(draft.data) if draft else None
        form = build_form(specs, formdata)
        kept = _kept_documents(item, specs, formdata or MultiDict())
        if request.method == "POST":
            flash(_("You cannot work on this task: it is done or someone else has it."), "warning")
        return _render_task(item, case, form, kept, draft, may_work)

    form = build_form(specs, request.form if not request.files else _with_files())
    kept = _kept_documents(item, specs, request.form)
    if action == "draft":
        _store_uploads(item, case, form, kept, check_required=False)
        data = {k: v for k, v in request.form.items() if k not in {"csrf_token", "action"}}
        data |= {KEPT_DOCUMENT.format(field_id): str(doc.id) for field_id, doc in kept.items()}
        with transaction():
            operations.save_draft(item, current_user, data)
        flash(_("Draft saved. You can come back to it later."), "success")
        return redirect(url_for("inbox.task", item_id=item.id))

    valid = form.validate()
    file_errors = _store_uploads(item, case, form, kept)
    for field_id, message in file_errors.items():
        form[field_id].errors = [message]
    if not valid or file_errors:
        return _render_task(item, case, form, kept, draft, may_work, status=422)

    data = form_data(form) | {field_id: f"document:{doc.id}" for field_id, doc in kept.items()}
    try:
        with transaction():
            if item.assignee_id is None:
                operations.claim(item, current_user)
            engine.complete_work_item(item.id, data, actor_id=current_user.id)
            operations.delete_drafts(item.id)
    except (InboxError, engine.Conflict) as exc:
        flash(str(exc), "warning")
        return redirect(url_for("inbox.index"))
    except engine.InvalidSubmission as exc:
        for field_id, message in exc.errors.items():
            if field_id in form:
                form[field_id].errors = [message]
        return _render_task(item, case, form, kept, draft, may_work, status=422)
    except engine.NotRunnable as exc:
        flash(str(exc), "danger")
        return _render_task(item, case, form, kept, draft, may_work, status=409)

    following = _next_task(case.id)
    if following is not None:
        flash(_("Done. The next task for %(person)s is open.", person=case.person_name), "success")
        return redirect(url_for("inbox.task", item_id=following.id))
    flash(_("Done: “%(task)s” for %(person)s.", task=item.name, person=case.person_name), "success")
    return redirect(url_for("inbox.index"))


def _with_files():
    """Form data and files together, as WTForms wants them for FileField."""
    combined = MultiDict(request.form)
    combined.update(request.files)
    return combined


def _render_task(item, case, form, kept, draft, may_work, status=200):
    open_items = db.session.scalars(
        select(WorkItem)
        .where(WorkItem.case_id == case.id, WorkItem.status == WorkItemStatus.OPEN, WorkItem.id != item.id)
        .order_by(WorkItem.due_at.asc().nulls_last())
    ).all()
    assignee = db.session.get(User, item.assignee_id) if item.assignee_id else None
    return (
        render_template(
            "inbox/task.html",
            item=item,
            case=case,
            form=form,
            kept=kept,
            draft=draft,
            may_work=may_work,
            assignee=assignee,
            other_items=open_items,
            supervisor=Role.SUPERVISOR in current_user.roles,
            KEPT_DOCUMENT=KEPT_DOCUMENT,
        ),
        status,
    )
