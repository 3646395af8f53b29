"""Policy designers: the process library, the modeler, deploys with approval, version diffs and migrations.

Designers edit, deploy and migrate; supervisors read the library and decide on deploy requests (a second person
approves when DEPLOY_APPROVAL is on). Everyone else gets 404. Drafts are private to their owner.
"""

from datetime import datetime, time
from io import BytesIO

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from wtforms import SelectChoice

from app import engine
from app.admin.forms import node_choices
from app.auth.roles import Role
from app.auth.scope import scope_nodes
from app.core.db import transaction
from app.core.i18n import bilingual
from app.core.templating import LOCAL_TZ
from app.designer import jobs, operations, queries
from app.designer.forms import MigrationForm, NewDraftForm, RejectForm, UploadForm
from app.designer.models import DefinitionDraft, DeployRequest, JobStatus, MigrationJob, RequestStatus
from app.designer.operations import DesignerError
from app.engine.models import DefinitionKind, ProcessDefinition
from app.extensions import db
from app.monitor.views import STATUS_LABELS

bp = Blueprint("designer", __name__, url_prefix="/designer")

ID = "int(max=2147483647)"
READERS = frozenset({Role.DESIGNER, Role.SUPERVISOR})
#: Seconds the request that starts (or continues) a migration spends moving instances before the page answers;
#: the worker moves the rest.
MIGRATION_SLICE_SECONDS = 5.0


@bp.before_request
@login_required
def _designer_roles_only():
    if not READERS & current_user.roles:
        abort(404)


JOB_STATUS_LABELS = {
    JobStatus.QUEUED.value: _l("Queued"),
    JobStatus.RUNNING.value: _l("Running"),
    JobStatus.DONE.value: _l("Done"),
    JobStatus.CANCELLED.value: _l("Cancelled"),
}
REQUEST_STATUS_LABELS = {
    RequestStatus.PENDING.value: _l("Waiting"),
    RequestStatus.DEPLOYED.value: _l("Deployed"),
    RequestStatus.REJECTED.value: _l("Rejected"),
    RequestStatus.FAILED.value: _l("Failed: nothing deployed"),
    RequestStatus.WITHDRAWN.value: _l("Withdrawn"),
}


@bp.context_processor
def _labels():
    return {
        "status_labels": STATUS_LABELS,
        "job_status_labels": JOB_STATUS_LABELS,
        "request_status_labels": REQUEST_STATUS_LABELS,
        "pending_count": queries.pending_requests,
    }


def _designers_only() -> None:
    if Role.DESIGNER not in current_user.roles:
        abort(403)


def _definition_or_404(definition_id: int) -> ProcessDefinition:
    found = db.session.get(ProcessDefinition, definition_id)
    if found is None:
        abort(404)
    return found


def _draft_or_404(draft_id: int) -> DefinitionDraft:
    draft = db.session.get(DefinitionDraft, draft_id)
    if draft is None or draft.owner_id != current_user.id:
        abort(404)
    return draft


def _xml_response(xml: str, file_name: str, download: bool):
    """The file as XML: inline for the modeler and viewers, or as a download under its own name (any language)."""
    if download:
        response = send_file(
            BytesIO(xml.encode("utf-8")), mimetype="application/xml", as_attachment=True, download_name=file_name
        )
    else:
        response = current_app.response_class(xml, mimetype="application/xml")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _problems_json(problems) -> list[dict]:
    return [{"file": p.file, "element": p.element_id, "message": p.message} for p in problems]


# --- library ------------------------------------------------------------------------------------------------------


def _render_index(upload: UploadForm | None = None, status: int = 200):
    is_designer = Role.DESIGNER in current_user.roles
    return (
        render_template(
            "designer/index.html",
            rows=queries.library(),
            drafts=queries.drafts_of(current_user) if is_designer else [],
            new_form=NewDraftForm(),
            upload_form=upload or UploadForm(),
            is_designer=is_designer,
        ),
        status,
    )


@bp.get("/")
def index():
    return _render_index()


@bp.get("/processes/<key>")
def process(key: str):
    rows = queries.versions(key)
    if not rows:
        abort(404)
    return render_template(
        "designer/process.html",
        key=key,
        rows=rows,
        latest=rows[0].definition,
        jobs=queries.recent_jobs(key),
        is_designer=Role.DESIGNER in current_user.roles,
    )


@bp.get(f"/versions/<{ID}:definition_id>/file")
def version_file(definition_id: int):
    found = _definition_or_404(definition_id)
    return _xml_response(found.xml, found.file_name, download=request.args.get("inline") != "1")


@bp.post(f"/versions/<{ID}:definition_id>/edit")
def edit_version(definition_id: int):
    _designers_only()
    found = _definition_or_404(definition_id)
    with transaction():
        draft = operations.draft_from_version(current_user, found)
    return redirect(url_for("designer.draft", draft_id=draft.id))


# --- drafts and the modeler ------------------------------------------------------------------------------------------


@bp.post("/drafts/new")
def new_draft():
    _designers_only()
    form = NewDraftForm()
    if not form.validate_on_submit():
        abort(400)
    with transaction():
        draft = operations.new_draft(current_user, DefinitionKind(form.kind.data))
    return redirect(url_for("designer.draft", draft_id=draft.id))


@bp.post("/drafts/upload")
def upload():
    _designers_only()
    form = UploadForm()
    if not form.validate_on_submit():
        return _render_index(upload=form, status=400)
    try:
        with transaction():
            draft, problems = operations.draft_from_upload(
                current_user, form.file.data.filename or "upload.bpmn", form.file.data.read()
            )
    except DesignerError as exc:
        form.file.errors.append(str(exc))
        return _render_index(upload=form, status=400)
    if problems:
        flash(
            _("Uploaded. Fix these problems before deploying: %(problems)s", problems="; ".join(map(str, problems))),
            "warning",
        )
    else:
        flash(_("Uploaded; the file can be deployed as it is."), "success")
    return redirect(url_for("designer.draft", draft_id=draft.id))


@bp.get(f"/drafts/<{ID}:draft_id>")
def draft(draft_id: int):
    found = _draft_or_404(draft_id)
    base = db.session.get(ProcessDefinition, found.base_definition_id) if found.base_definition_id else None
    latest = engine.latest_definition(found.key) if found.key else None
    # A file whose id is already deployed becomes that process's next version (bpmn.io names every new diagram
    # Process_1): say so when the draft did not start from it.
    replaces = latest if latest is not None and (base is None or base.key != latest.key) else None
    return render_template("designer/modeler.html", draft=found, base=base, replaces=replaces)


@bp.get(f"/drafts/<{ID}:draft_id>/file")
def draft_file(draft_id: int):
    found = _draft_or_404(draft_id)
    return _xml_response(found.xml, found.file_name, download=request.args.get("download") == "1")


def _posted_xml() -> str:
    body = request.get_json(silent=True)
    xml = body.get("xml") if isinstance(body, dict) else None
    if not isinstance(xml, str) or not xml.strip():
        raise DesignerError(_("Nothing to save: the request held no diagram."))
    return xml


def _save_posted(found: DefinitionDraft) -> list[engine.Problem]:
    """Save the posted XML in its own transaction (kept even if a later step fails)."""
    with transaction():
        return operations.save_draft(found, _posted_xml())


@bp.post(f"/drafts/<{ID}:draft_id>")
def save_draft(draft_id: int):
    _designers_only()
    found = _draft_or_404(draft_id)
    try:
        _save_posted(found)
    except DesignerError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(saved_at=found.updated_at.isoformat(), message=_("Draft saved."))


@bp.post(f"/drafts/<{ID}:draft_id>/validate")
def validate_draft(draft_id: int):
    _designers_only()
    found = _draft_or_404(draft_id)
    try:
        problems = _save_posted(found)
    except DesignerError as exc:
        return jsonify(ok=False, message=str(exc), problems=[]), 400
    if problems:
        message = _("%(count)s problem(s): fix them before deploying.", count=len(problems))
    else:
        message = _("Saved and valid: it can be deployed.")
    return jsonify(ok=not problems, message=message, problems=_problems_json(problems))


@bp.post(f"/drafts/<{ID}:draft_id>/deploy")
def deploy_draft(draft_id: int):
    _designers_only()
    found = _draft_or_404(draft_id)
    try:
        _save_posted(found)
        body = request.get_json(silent=True) or {}
        note = body.get("note") if isinstance(body.get("note"), str) else ""
        with transaction():
            outcome = operations.deploy_draft(found, current_user, note)
    except DesignerError as exc:
        return jsonify(ok=False, message=str(exc), problems=[]), 400
    except engine.InvalidDefinition as exc:
        return jsonify(
            ok=False,
            message=_("Nothing was deployed: %(count)s problem(s).", count=len(exc.problems)),
            problems=_problems_json(exc.problems),
        ), 422
    if outcome.request is not None:
        flash(_("Sent for approval: a second designer or a supervisor must approve the deploy."), "success")
        return jsonify(ok=True, message=_("Sent for approval."), redirect=url_for("designer.requests_page"))
    if outcome.deployed:
        d = outcome.deployed[0]
        flash(_("Deployed %(name)s version %(version)s.", name=bilingual(d.name), version=d.version), "success")
        return jsonify(ok=True, message=_("Deployed."), redirect=url_for("designer.process", key=d.key))
    flash(_("Nothing changed: the file is the same as the deployed version."), "info")
    return jsonify(ok=True, message=_("Nothing changed."), redirect=url_for("designer.index"))


@bp.post(f"/drafts/<{ID}:draft_id>/delete")
def delete_draft(draft_id: int):
    _designers_only()
    found = _draft_or_404(draft_id)
    with transaction():
        db.session.delete(found)
    flash(_("Draft deleted."), "info")
    return redirect(url_for("designer.index"))


# --- diffs ----------------------------------------------------------------------------------------------------------


def _diff_side(token: str) -> dict:
    """One side of a diff: a version id ("12"), a deploy request ("r5") or one of my drafts ("d3")."""
    token = (token or "").strip()
    if token.isdigit() and len(token) < 10:
        found = _definition_or_404(int(token))
        return {
            "label": f"v{found.version}",
            "key": found.key,
            "kind": found.kind,
            "xml": found.xml,
            "url": url_for("designer.version_file", definition_id=found.id, inline=1),
        }
    if token[:1] in ("r", "d") and token[1:].isdigit() and len(token) < 11:
        object_id = int(token[1:])
        if token[0] == "r":
            found = db.session.get(DeployRequest, object_id) or abort(404)
            file, summary = found.files[0], found.summary[0]
            kind = DefinitionKind(summary["kind"])
            label, key, xml = _("Request %(id)s", id=found.id), summary["key"], file["content"]
            url = url_for("designer.request_file", request_id=found.id)
        else:
            found = _draft_or_404(object_id)
            kind, label, key, xml = found.kind, _("Draft"), found.key, found.xml
            url = url_for("designer.draft_file", draft_id=found.id)
        return {"label": label, "key": key, "kind": kind, "xml": xml, "url": url}
    abort(404)


def _diff_pair():
    a, b = _diff_side(request.args.get("a", "")), _diff_side(request.args.get("b", ""))
    if a["kind"] != b["kind"]:
        abort(404)
    return a, b


@bp.get("/diff")
def diff():
    a, b = _diff_pair()
    result = engine.diff_definitions(a["xml"], b["xml"])
    return render_template(
        "designer/diff.html",
        a=a,
        b=b,
        diff=result,
        diff_url=url_for("designer.diff_json", a=request.args["a"], b=request.args["b"]),
    )


@bp.get("/diff.json")
def diff_json():
    a, b = _diff_pair()
    return jsonify(engine.diff_definitions(a["xml"], b["xml"]).to_dict())


# --- deploy requests ------------------------------------------------------------------------------------------------


@bp.get("/requests")
def requests_page():
    pending = queries.requests(RequestStatus.PENDING)
    recent = [r for r in queries.requests(limit=50) if r.status != RequestStatus.PENDING]
    rows = pending + recent
    return render_template(
        "designer/requests.html",
        pending=pending,
        recent=recent,
        names=queries.user_names({r.requested_by_id for r in rows} | {r.decided_by_id for r in rows}),
        bases={r.id: _base_version_id(r) for r in rows},
        reject_form=RejectForm(),
        may_decide=lambda r: operations.may_decide(r, current_user),
    )


def _base_version_id(found: DeployRequest) -> int | None:
    latest = engine.latest_definition(found.summary[0]["key"]) if found.summary else None
    return latest.id if latest is not None else None


@bp.get(f"/requests/<{ID}:request_id>/file")
def request_file(request_id: int):
    found = db.session.get(DeployRequest, request_id) or abort(404)
    file = found.files[0]
    return _xml_response(file["content"], file["name"], download=request.args.get("download") == "1")


def _decide(request_id: int, action, done):
    """Run ``action(request)`` in a transaction, then ``done(outcome, request)`` to flash what happened; a refused
    decision (already decided, own request, wrong role) is flashed instead. Back to the request list either way."""
    found = db.session.get(DeployRequest, request_id) or abort(404)
    try:
        with transaction():
            outcome = action(found)
    except DesignerError as exc:
        flash(str(exc), "danger")
    else:
        done(outcome, found)
    return redirect(url_for("designer.requests_page"))


def _approved(outcome: operations.DeployOutcome, found: DeployRequest) -> None:
    if found.status == RequestStatus.FAILED:
        problems = "; ".join(p["message"] for p in found.problems)
        flash(_("Nothing was deployed: the files are no longer valid: %(problems)s", problems=problems), "danger")
    elif outcome.deployed:
        versions = ", ".join(f"{d.key} v{d.version}" for d in outcome.deployed)
        flash(_("Approved and deployed: %(versions)s.", versions=versions), "success")
    else:
        flash(_("Approved; nothing changed: the files equal the deployed versions."), "info")


@bp.post(f"/requests/<{ID}:request_id>/approve")
def approve(request_id: int):
    return _decide(request_id, lambda found: operations.approve(found, current_user), _approved)


@bp.post(f"/requests/<{ID}:request_id>/reject")
def reject(request_id: int):
    form = RejectForm()
    if not form.validate_on_submit():
        flash(_("Say why the deploy is rejected."), "danger")
        return redirect(url_for("designer.requests_page"))
    return _decide(
        request_id,
        lambda found: operations.reject(found, current_user, form.reason.data),
        lambda _outcome, _found: flash(_("Rejected; the designer sees your reason."), "info"),
    )


@bp.post(f"/requests/<{ID}:request_id>/withdraw")
def withdraw(request_id: int):
    return _decide(
        request_id,
        lambda found: operations.withdraw(found, current_user),
        lambda _outcome, _found: flash(_("Request withdrawn."), "info"),
    )


# --- migration ------------------------------------------------------------------------------------------------------


def _migration_form(source: ProcessDefinition, targets: list[ProcessDefinition]) -> MigrationForm:
    form = MigrationForm()
    form.target.choices = [SelectChoice(t.id, f"v{t.version}") for t in targets]
    if not form.target.data and targets:
        form.target.data = targets[0].id
    form.node.choices = [SelectChoice(0, _("All of my jurisdiction")), *node_choices(scope_nodes())]
    form.waiting_at.choices = [SelectChoice("", _("Anywhere"))] + [
        SelectChoice(element_id, f"{bilingual(name)} ({element_id})")
        for element_id, name in queries.wait_elements(source.xml)
    ]
    return form


def _day_start(value) -> datetime | None:
    return datetime.combine(value, time.min, tzinfo=LOCAL_TZ) if value else None


def _mapping(target: ProcessDefinition) -> dict[str, str]:
    """map__<old element id> = <new element id> fields, kept only when both sides are real elements."""
    valid = {element_id for element_id, _name in queries.wait_elements(target.xml)}
    mapping = {}
    for name, value in request.form.items():
        if name.startswith("map__") and value in valid:
            mapping[name[5:]] = value
    return mapping


@bp.route(f"/versions/<{ID}:definition_id>/migrate", methods=["GET", "POST"])
def migrate(definition_id: int):
    _designers_only()
    source = _definition_or_404(definition_id)
    if source.kind != DefinitionKind.BPMN:
        abort(404)
    targets = [row.definition for row in queries.versions(source.key) if row.definition.id != source.id]
    form = _migration_form(source, targets)
    context = {"source": source, "form": form, "targets": targets, "checks": None}
    if request.method == "GET" or not targets:
        return render_template("designer/migrate.html", **context)
    if not form.validate_on_submit():
        return render_template("designer/migrate.html", **context), 400
    target = next(t for t in targets if t.id == form.target.data)
    chosen = queries.InstanceFilter(
        node_id=form.node.data or None,
        waiting_at=form.waiting_at.data or None,
        started_from=_day_start(form.started_from.data),
        started_to=_day_start(form.started_to.data),
    )
    mapping = _mapping(target)
    instance_ids = queries.migratable_instances(source.id, chosen)
    if request.form.get("action") == "execute" and instance_ids:
        with transaction():
            job = jobs.create_job(current_user, source, target, instance_ids, mapping, chosen.as_dict())
        jobs.run_batch(current_app.config["MIGRATION_BATCH_SIZE"] * 20, job.id, seconds=MIGRATION_SLICE_SECONDS)
        return redirect(url_for("designer.job", job_id=job.id))
    checks = engine.check_migration(instance_ids[: queries.MAX_DRY_RUN], target.id, mapping or None)
    target_elements = queries.wait_elements(target.xml)
    in_target = {element_id for element_id, _name in target_elements}
    waiting = queries.waiting_counts(instance_ids)
    missing = {element for c in checks for element in c.missing} | {e for e in waiting if e not in in_target}
    context.update(
        target=target,
        checks=checks,
        selected=len(instance_ids),
        movable=sum(1 for c in checks if c.can_move),
        mapping=mapping,
        blocked=sorted(missing | set(mapping)),
        waiting=waiting,
        in_target=in_target,
        target_elements=target_elements,
        limit=queries.MAX_JOB_INSTANCES,
    )
    return render_template("designer/migrate.html", **context)


@bp.get(f"/migrations/<{ID}:job_id>")
def job(job_id: int):
    found = db.session.get(MigrationJob, job_id) or abort(404)
    template = "designer/_job_progress.html" if request.headers.get("HX-Request") else "designer/job.html"
    return render_template(
        template,
        job=found,
        progress=jobs.progress(found.id),
        failed=jobs.failed_items(found.id),
        source=db.session.get(ProcessDefinition, found.source_definition_id),
        target=db.session.get(ProcessDefinition, found.target_definition_id),
    )


@bp.post(f"/migrations/<{ID}:job_id>/continue")
def continue_job(job_id: int):
    _designers_only()
    found = db.session.get(MigrationJob, job_id) or abort(404)
    jobs.run_batch(current_app.config["MIGRATION_BATCH_SIZE"] * 20, found.id, seconds=MIGRATION_SLICE_SECONDS)
    return redirect(url_for("designer.job", job_id=found.id))
