"""The KPI dashboard (domain.md §4) with drill-down and CSV export.

Supervisors only; anyone else, and any node outside the user's scope, gets 404. Figures come from
app.audit.kpi (its read model, app.audit.kpi_model); every export is logged (export_downloaded) in the same
transaction that answers it.
"""

import csv
import io
from datetime import date, datetime

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from app.audit import kpi
from app.audit.log import record
from app.auth.models import JurisdictionNode, NodeLevel
from app.auth.roles import Role
from app.auth.scope import node_in_scope, scope_nodes
from app.core.db import transaction
from app.core.templating import format_local, mask_id
from app.extensions import db

bp = Blueprint("kpi", __name__, url_prefix="/kpi")

TREND_PERIODS = 12
PER_PAGE = 50
#: How many periods of each kind the period picker offers.
PICKER = {"month": 24, "quarter": 8, "year": 5}


@bp.before_request
def _supervisors_only():
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if Role.SUPERVISOR not in current_user.roles:
        abort(404)
    return None


def _node() -> JurisdictionNode:
    """The ``node`` argument (default: the user's own node); 404 outside the user's scope."""
    raw = request.args.get("node", "")
    node_id = int(raw) if raw.isdigit() and len(raw) < 10 else None
    if raw and node_id is None:
        abort(404)
    node_id = node_id or current_user.jurisdiction_id
    if not node_in_scope(node_id):
        abort(404)
    return db.session.get(JurisdictionNode, node_id)


def _definition(measure: str) -> kpi.Definition:
    definition = kpi.DEFINITIONS.get(measure)
    if definition is None or not definition.available:
        abort(404)
    return definition


def _key(definition: kpi.Definition) -> str | None:
    key = request.args.get("key") or None
    if key is not None and key not in dict(definition.keys):
        abort(404)
    return key


def _period_choices(current: kpi.Period) -> dict[str, list[kpi.Period]]:
    today = kpi.local_today()
    choices = {kind: kpi.Period.of(kind, today).series(n)[::-1] for kind, n in PICKER.items()}
    if current not in choices[current.kind]:
        choices[current.kind].insert(0, current)
    return choices


def _chart(result: kpi.Result) -> dict:
    """What kpi.js draws: labels and one or two series (rate in %, or counts per key)."""
    d = result.definition
    labels = [f.period.code for f in result.trend]
    if d.kind == "rate":
        values = [round(100 * f.rate, 1) if f.rate is not None else None for f in result.trend]
        return {"type": "rate", "labels": labels, "series": [{"label": str(d.label), "data": values}]}
    series = [
        {"label": str(label), "data": [f.counts.get(key, 0) for f in result.trend]}
        for key, label in d.keys
        if any(f.counts.get(key) for f in result.trend)
    ]
    return {"type": "count", "labels": labels, "series": series}


@bp.get("/")
def index():
    node = _node()
    period = kpi.Period.parse(request.args.get("period"))
    results = kpi.dashboard(node, period, trend=1)
    return render_template(
        "kpi/index.html",
        node=node,
        period=period,
        results=results,
        trend_periods=TREND_PERIODS,
        nodes=[n for n in scope_nodes() if n.level != NodeLevel.GRID or n.id == node.id],  # grids: by URL only
        choices=_period_choices(period),
    )


@bp.get("/<measure>/trend.json")
def trend(measure: str):
    """The chart of one measure over the last TREND_PERIODS periods (fetched by kpi.js after the page is shown)."""
    definition = _definition(measure)
    if definition.snapshot:
        abort(404)
    node = _node()
    period = kpi.Period.parse(request.args.get("period"))
    response = jsonify(_chart(kpi.compute(definition, node, period, trend=TREND_PERIODS)))
    response.headers["Cache-Control"] = "private, max-age=60"
    return response


@bp.get("/<measure>/cases")
def cases(measure: str):
    definition = _definition(measure)
    node = _node()
    period = kpi.Period.parse(request.args.get("period"))
    key = _key(definition)
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)
    result = kpi.compute(definition, node, period)
    total, rows = kpi.case_rows(result, key, page, PER_PAGE)
    return render_template(
        "kpi/cases.html",
        definition=definition,
        node=node,
        period=period,
        key=key,
        figure=result.figure,
        total=total,
        rows=rows,
        page=page,
        pages=max((total + PER_PAGE - 1) // PER_PAGE, 1),
    )


def _csv_value(value) -> str:
    if isinstance(value, datetime | date):
        return format_local(value)
    return "" if value is None else str(value)


@bp.get("/<measure>/cases.csv")
def export(measure: str):
    """The drill-down list as CSV (UTF-8 with BOM for Excel; masked ID numbers); logged as export_downloaded."""
    definition = _definition(measure)
    node = _node()
    period = kpi.Period.parse(request.args.get("period"))
    key = _key(definition)
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(
        [_("Person"), _("ID number"), _("Reference"), _("Community"), _("Date"), _("Category"), _("Measure")]
    )
    with transaction():
        result = kpi.compute(definition, node, period)
        rows = kpi.all_case_rows(result, key)
        for case, at, row_key in rows:
            writer.writerow(
                [
                    case.person_name,
                    mask_id(case.id_number),
                    case.reference,
                    case.jurisdiction.name,
                    _csv_value(at),
                    definition.key_label(row_key),
                    str(definition.label),
                ]
            )
        record(
            "export_downloaded",
            actor_id=current_user.id,
            jurisdiction_id=node.id,
            payload={"measure": definition.id, "rows": len(rows), "period": period.code, "key": key},
        )
    filename = f"kpi-{definition.id}-{period.code}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
