"""Administration pages (admin role): users, roles, the jurisdiction tree."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
