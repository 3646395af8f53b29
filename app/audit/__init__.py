"""Audit: the hash-chained event log, the access log, KPIs."""

from app.audit import chain as _chain  # noqa: F401  (registers the session events that append to the chain)
