"""Audit: hash chain, append-only trigger, access log."""
