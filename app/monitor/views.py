"""Process monitoring (what Camunda Cockpit does, for our cases) and per-instance diagrams."""

from flask import Blueprint

bp = Blueprint("monitor", __name__, url_prefix="/monitor")
