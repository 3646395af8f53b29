"""Case pages: list, profile, new case from a decision, documents."""

from flask import Blueprint

bp = Blueprint("cases", __name__, url_prefix="/cases")
