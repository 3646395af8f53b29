"""The KPI dashboard (domain.md §4) with drill-down and CSV export."""

from flask import Blueprint

bp = Blueprint("kpi", __name__, url_prefix="/kpi")
