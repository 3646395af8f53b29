"""Search terms stay out of URLs.

People search lists by name and ID number; in a URL those would land in browser history, proxy and server
access logs (domain.md §5: no personal data in URLs or logs). A search is POSTed; the term is kept in the
user's session for that list, and the list's URLs carry only ``s=1`` ("the remembered search applies").
"""

from flask import request, session

MARK = "s"


def _key(area: str) -> str:
    return f"search_{area}"


def clean(term: str | None) -> str | None:
    return (term or "").replace("\x00", "").strip()[:100] or None


def search_term(area: str) -> str | None:
    """The search of list ``area``: posted with this request, or remembered while the URL says ``s=1``."""
    if request.method == "POST":
        term = clean(request.form.get("q"))
        remember(area, term)
        return term
    if request.args.get(MARK) == "1":
        return session.get(_key(area))
    return None


def remember(area: str, term: str | None) -> None:
    if term:
        session[_key(area)] = term
    else:
        session.pop(_key(area), None)


def url_args(args: dict, term: str | None) -> dict:
    """Query-string arguments of a list URL: the term replaced by the ``s=1`` mark."""
    args = {k: v for k, v in args.items() if k != "q"}
    return args | {MARK: "1"} if term else args
