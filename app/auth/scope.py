"""Jurisdiction scoping: a user sees their own node and the nodes below it, and nothing else.

Anything outside answers 404, never 403, so the existence of a case elsewhere does not leak.
"""

from flask import abort, g, has_request_context
from flask_login import current_user
from sqlalchemy import ColumnElement, Select, false, select

from app.auth.models import JurisdictionNode, User
from app.extensions import db


def scope_path(user: User | None = None) -> str | None:
    """The materialised path of the user's node ("/1/4/"), or None for a user without one (sees nothing)."""
    user = user or current_user
    node = user.jurisdiction if user and user.is_authenticated else None
    return node.path if node is not None else None


def nodes_in_scope(user: User | None = None) -> Select:
    """SELECT of the ids of the user's node and every node below it."""
    path = scope_path(user)
    if path is None:
        return select(JurisdictionNode.id).where(false())
    return select(JurisdictionNode.id).where(JurisdictionNode.path.startswith(path))


def scope_node_ids(user: User | None = None) -> list[int]:
    """The ids of the user's node and every node below it, read once per request.

    A literal id list lets the planner estimate rows and pick the right work_item index; a LIKE subquery in
    every statement cannot (bench/inbox.py).
    """
    user = user or current_user
    key = f"_scope_ids_{getattr(user, 'id', None)}"
    if has_request_context() and key in g:
        return g.get(key)
    ids = list(db.session.scalars(nodes_in_scope(user)))
    if has_request_context():
        setattr(g, key, ids)
    return ids


def in_scope(column, user: User | None = None) -> ColumnElement[bool]:
    """A WHERE clause: ``column`` (a jurisdiction id) lies in the user's scope."""
    ids = scope_node_ids(user)
    return column.in_(ids) if ids else false()


def node_in_scope(node_id: int | None, user: User | None = None) -> bool:
    path = scope_path(user)
    if node_id is None or path is None:
        return False
    node = db.session.get(JurisdictionNode, node_id)
    return node is not None and node.path.startswith(path)


def get_in_scope_or_404(model, object_id: int, user: User | None = None):
    """Load ``model`` by id if its ``jurisdiction_id`` is in the user's scope; else 404."""
    obj = db.session.get(model, object_id)
    if obj is None or not node_in_scope(obj.jurisdiction_id, user):
        abort(404)
    return obj


def scope_nodes(user: User | None = None) -> list[JurisdictionNode]:
    """The user's nodes in tree order (for filter and target pickers)."""
    nodes = db.session.scalars(select(JurisdictionNode).where(JurisdictionNode.id.in_(nodes_in_scope(user))))
    # Tree order from the path's ids, not the path's text (text order depends on the database collation).
    return sorted(nodes, key=lambda n: [int(part) for part in n.path.strip("/").split("/")])
