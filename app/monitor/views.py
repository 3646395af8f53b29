"""Process monitoring (what Camunda Cockpit does, for our cases) and per-instance diagrams.

Supervisors see the instances of cases in their jurisdiction: counts, heat maps, incidents (with retry), long waits,
timers, and each instance's history on its diagram, where they can suspend and resume it. Designers see the
definitions, diagrams and heat-map counts, never an instance or a case (PIPL: they need no personal data).
Everyone else, and anything outside the user's jurisdiction, gets 404.
"""

import re

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy.orm.exc import StaleDataError

from app import engine
from app.auth.roles import Role
from app.cases.queries import EVENT_LABELS, user_names
from app.core.clock import now
from app.core.db import transaction
from app.core.i18n import bilingual
from app.core.templating import format_local
from app.engine.models import DefinitionKind, Incident, InstanceStatus, ProcessDefinition
from app.extensions import db
from app.monitor import queries
from app.monitor.forms import ReasonForm

bp = Blueprint("monitor", __name__, url_prefix="/monitor")

MONITOR_ROLES = frozenset({Role.SUPERVISOR, Role.DESIGNER})
#: Ids in URLs stay within the database's integer range (a larger one is simply not found).
ID = "int(max=2147483647)"
EVENT_TYPE = re.compile(r"[a-z_]{1,50}")

STATUS_LABELS = {
    InstanceStatus.RUNNING.value: _l("Running"),
    InstanceStatus.INCIDENT.value: _l("Incident"),
    InstanceStatus.SUSPENDED.value: _l("Suspended"),
    InstanceStatus.COMPLETED.value: _l("Completed"),
    InstanceStatus.CANCELLED.value: _l("Cancelled"),
}
#: Event labels of the instance page: the case timeline's, plus the monitoring actions.
INSTANCE_EVENT_LABELS = {
    **EVENT_LABELS,
    "instance_suspended": _l("Process suspended"),
    "instance_resumed": _l("Process resumed"),
}

# The diagram pages keep the app's strict CSP: bpmn-js 18 sets its styles through the CSSOM (element.style), which
# style-src 'self' allows, and its data travels in a <script type="application/json"> block that is never executed.


def is_supervisor() -> bool:
    return current_user.is_authenticated and Role.SUPERVISOR in current_user.roles


@bp.before_request
@login_required
def _monitor_roles_only():
    if not MONITOR_ROLES & current_user.roles:
        abort(404)


@bp.app_template_global()
def case_processes(case_id: int) -> list[dict]:
    """The case's process instances, for the case page's "process history" list (supervisors only)."""
    if not is_supervisor():
        return []
    return [
        {
            "url": url_for("monitor.instance", instance_id=i.id),
            "name": bilingual(i.definition.name or i.process_key),
            "version": i.definition.version,
            "status": i.status.value,
            "status_label": str(STATUS_LABELS.get(i.status.value, i.status.value)),
            "started_at": i.started_at,
        }
        for i in queries.case_instances(case_id)
    ]


@bp.context_processor
def _labels():
    return {"status_labels": STATUS_LABELS, "is_supervisor": is_supervisor()}


def _supervisor_only() -> None:
    if not is_supervisor():
        abort(404)


def _instance_or_404(instance_id: int):
    _supervisor_only()
    instance = queries.instance_in_scope(instance_id)
    if instance is None:
        abort(404)
    return instance


def _may_see_diagram(definition: ProcessDefinition) -> bool:
    """Designers see every diagram; supervisors those with an instance in their jurisdiction."""
    return Role.DESIGNER in current_user.roles or queries.has_instances_in_scope(definition.id)


# --- overview and one definition version ------------------------------------------------------------------------


@bp.get("/")
def index():
    return render_template("monitor/index.html", processes=queries.overview(), statuses=list(STATUS_LABELS))


@bp.get("/definitions/<key>/<int(max=100000):version>")
def definition(key: str, version: int):
    found = queries.definition_version(key, version)
    if found is None:
        abort(404)
    context = {
        "definition": found,
        "versions": queries.versions_of(key),
        "counts": queries.status_counts(found.id),
        "heat": queries.heat(found.id),
        "diagram_url": url_for("monitor.diagram_xml", definition_id=found.id) if _may_see_diagram(found) else None,
        "task_names": dict(map(tuple, found.user_tasks or [])),
    }
    if is_supervisor():
        overdue, soon = queries.timers(found.id, now())
        context.update(
            incidents=queries.open_incidents(found.id),
            waiting=queries.longest_waiting(found.id),
            overdue=overdue,
            due_soon=soon,
        )
    return render_template("monitor/definition.html", **context)


@bp.get(f"/definitions/<{ID}:definition_id>/diagram.bpmn")
def diagram_xml(definition_id: int):
    found = db.session.get(ProcessDefinition, definition_id)
    if found is None or found.kind != DefinitionKind.BPMN or not _may_see_diagram(found):
        abort(404)
    response = current_app.response_class(found.xml, mimetype="application/xml")
    response.headers["Cache-Control"] = "private, max-age=3600"  # a deployed version never changes
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# --- incidents ----------------------------------------------------------------------------------------------------


@bp.post(f"/incidents/<{ID}:incident_id>/retry")
def retry(incident_id: int):
    _supervisor_only()
    incident = db.session.get(Incident, incident_id)
    instance = queries.instance_in_scope(incident.instance_id) if incident is not None else None
    if instance is None:
        abort(404)
    back = (
        url_for("monitor.instance", instance_id=instance.id)
        if request.form.get("back") == "instance"
        else url_for("monitor.definition", key=instance.definition.key, version=instance.definition.version)
    )
    if instance.status == InstanceStatus.SUSPENDED:
        flash(_("The process is suspended: resume it before retrying."), "warning")
        return redirect(back)
    try:
        with transaction():
            info = engine.retry_incident(incident_id, actor_id=current_user.id)
    except (engine.EngineError, StaleDataError) as exc:
        current_app.logger.warning("retrying incident %s failed: %s", incident_id, exc)
        flash(_("The retry did not go through; nothing was changed. Reload the page and try again."), "danger")
        return redirect(back)
    if info.incident_id is not None:
        flash(_("The step failed again; the error is shown below."), "warning")
    else:
        flash(_("The step ran; the process goes on."), "success")
    return redirect(back)


# --- one instance -----------------------------------------------------------------------------------------------


def _event_row(event, actors: dict[int, str]) -> dict:
    payload = event.payload if isinstance(event.payload, dict) else {}
    return {
        "id": event.id,
        "type": event.type,
        "label": str(INSTANCE_EVENT_LABELS.get(event.type, event.type)),
        "at": event.occurred_at.isoformat(),
        "when": format_local(event.occurred_at),
        "actor": actors.get(event.actor_id) or _("system"),
        "reason": payload.get("reason"),
        "error": payload.get("error"),
        "data": payload.get("data") if isinstance(payload.get("data"), dict) else None,
    }


def _render_instance(instance, form: ReasonForm | None = None, status: int = 200):
    path = engine.instance_path(instance.id)
    all_events = queries.instance_events(instance.id)
    actors = user_names(e.actor_id for e in all_events)
    event_type = request.args.get("event") or None
    if event_type is not None and not EVENT_TYPE.fullmatch(event_type):
        event_type = None
    actor_id = request.args.get("actor", type=int)
    shown = [
        e for e in all_events if (not event_type or e.type == event_type) and (not actor_id or e.actor_id == actor_id)
    ]
    by_element: dict[str, list[dict]] = {}
    for event in all_events:
        element_id = event.payload.get("element_id") if isinstance(event.payload, dict) else None
        if element_id:
            by_element.setdefault(str(element_id), []).append(_event_row(event, actors))
    incidents = queries.open_incidents_of(instance.id)
    definition = instance.definition
    diagram = {
        "completed": path.completed,
        "active": path.active,
        "waiting": path.waiting,
        "incidents": [i.element_id for i in incidents if i.element_id],
        "events": by_element,
        "names": {element_id: bilingual(name) for element_id, name in (definition.user_tasks or [])},
        "text": {
            "noEvents": _("No events recorded for this element."),
            "data": _("Submitted data"),
            "passes": _("Times completed: %(count)s"),
            "current": _("Current position"),
        },
    }
    context = {
        "instance": instance,
        "definition": definition,
        "case_reference": queries.case_reference(instance.case_id),
        "path": path,
        "diagram": diagram,
        "diagram_url": url_for("monitor.diagram_xml", definition_id=definition.id),
        "incidents": [(incident, instance.status, None) for incident in incidents],
        "events": shown,
        "event_type": event_type,
        "actor_id": actor_id,
        "event_types": sorted({(e.type, str(INSTANCE_EVENT_LABELS.get(e.type, e.type))) for e in all_events}),
        "event_actors": sorted({(e.actor_id, actors.get(e.actor_id, "")) for e in all_events if e.actor_id}),
        "actors": actors,
        "event_labels": INSTANCE_EVENT_LABELS,
        "form": form or ReasonForm(formdata=None),
    }
    return render_template("monitor/instance.html", **context), status


@bp.get(f"/instances/<{ID}:instance_id>")
def instance(instance_id: int):
    return _render_instance(_instance_or_404(instance_id))


def _change_status(instance_id: int, operation, done_message: str):
    found = _instance_or_404(instance_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        return _render_instance(found, form, 422)
    try:
        with transaction():
            operation(found.id, form.reason.data, current_user.id)
    except engine.InvalidSubmission:
        form.reason.errors.append(_("Give a reason: it is kept in the audit log."))
        return _render_instance(db.session.get(type(found), instance_id), form, 422)
    except (engine.EngineError, StaleDataError) as exc:
        current_app.logger.warning("changing instance %s failed: %s", instance_id, exc)
        flash(_("This did not go through; nothing was changed. The process may have changed meanwhile."), "danger")
    else:
        flash(done_message, "success")
    return redirect(url_for("monitor.instance", instance_id=instance_id))


@bp.post(f"/instances/<{ID}:instance_id>/suspend")
def suspend(instance_id: int):
    return _change_status(instance_id, engine.suspend_instance, _("The process is suspended."))


@bp.post(f"/instances/<{ID}:instance_id>/resume")
def resume(instance_id: int):
    return _change_status(instance_id, engine.resume_instance, _("The process is resumed."))
