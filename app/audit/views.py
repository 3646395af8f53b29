"""Supervisors' audit pages: who looked at a case (access log)."""

from flask import Blueprint

bp = Blueprint("audit", __name__, url_prefix="/audit")
