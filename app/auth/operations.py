"""Creating and changing users and jurisdiction nodes."""

from sqlalchemy import select

from app.audit.log import record
from app.auth.models import JurisdictionNode, NodeLevel, User, UserRole
from app.auth.passwords import hash_password
from app.auth.roles import ROLE_NAMES
from app.extensions import db


class UserError(ValueError):
    pass


def create_node(name: str, level: NodeLevel, parent: JurisdictionNode | None = None) -> JurisdictionNode:
    node = JurisdictionNode(name=name, level=level, parent=parent)
    db.session.add(node)
    db.session.flush()
    node.path = f"{parent.path if parent else '/'}{node.id}/"
    db.session.flush()
    return node


def create_user(
    username: str,
    password: str,
    roles: list[str],
    jurisdiction: JurisdictionNode | None = None,
    display_name: str = "",
    actor_id: int | None = None,
) -> User:
    """Create a user; raises UserError for a taken name, an unknown role or a short password."""
    unknown = set(roles) - ROLE_NAMES
    if unknown:
        raise UserError(f"unknown role(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(ROLE_NAMES))}")
    if len(password) < 8:
        raise UserError("the password must have at least 8 characters")
    if db.session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"the username {username!r} is taken")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        jurisdiction=jurisdiction,
    )
    user.role_rows = [UserRole(role=role) for role in sorted(set(roles))]
    db.session.add(user)
    db.session.flush()
    record("user_created", actor_id=actor_id, payload={"user_id": user.id, "username": username, "roles": roles})
    return user


class NodeError(ValueError):
    pass


#: The levels top-down; a node's children sit exactly one level below it.
LEVEL_ORDER = list(NodeLevel)


def child_level(level: NodeLevel) -> NodeLevel | None:
    """The level a child of a ``level`` node must have (None below a grid: nothing goes there)."""
    index = LEVEL_ORDER.index(NodeLevel(level))
    return LEVEL_ORDER[index + 1] if index + 1 < len(LEVEL_ORDER) else None


def sibling_named(name: str, parent_id: int | None, exclude_id: int | None = None) -> JurisdictionNode | None:
    """A node under ``parent_id`` already called ``name`` (other than ``exclude_id``), if any."""
    query = select(JurisdictionNode).where(JurisdictionNode.parent_id == parent_id, JurisdictionNode.name == name)
    if exclude_id is not None:
        query = query.where(JurisdictionNode.id != exclude_id)
    return db.session.scalars(query).first()


def add_child_node(
    parent: JurisdictionNode, name: str, level: NodeLevel, actor_id: int | None = None
) -> JurisdictionNode:
    """Create a node below ``parent``; raises NodeError for a wrong level, an empty or a duplicate name."""
    name = name.strip()
    expected = child_level(parent.level)
    if expected is None or NodeLevel(level) != expected:
        raise NodeError(f"a child of a {parent.level} must be a {expected}" if expected else "a grid has no children")
    if not name:
        raise NodeError("the name is empty")
    if sibling_named(name, parent.id) is not None:
        raise NodeError(f"{parent.name} already has a node called {name!r}")
    node = create_node(name, expected, parent)
    record(
        "node_created",
        actor_id=actor_id,
        jurisdiction_id=node.id,
        payload={"node_id": node.id, "parent_id": parent.id, "name": name, "level": str(expected)},
    )
    return node


def rename_node(node: JurisdictionNode, name: str, actor_id: int | None = None) -> JurisdictionNode:
    """Give ``node`` a new name; raises NodeError for an empty name or one a sibling already has."""
    name = name.strip()
    if not name:
        raise NodeError("the name is empty")
    if name == node.name:
        return node
    if sibling_named(name, node.parent_id, exclude_id=node.id) is not None:
        raise NodeError(f"a node next to this one is already called {name!r}")
    old = node.name
    node.name = name
    db.session.flush()
    record(
        "node_renamed",
        actor_id=actor_id,
        jurisdiction_id=node.id,
        payload={"node_id": node.id, "old": old, "new": name},
    )
    return node


def update_user(
    user: User,
    *,
    display_name: str,
    roles: list[str],
    jurisdiction: JurisdictionNode | None,
    active: bool,
    password: str | None = None,
    actor_id: int | None = None,
) -> dict:
    """Change a user's details; returns the changes recorded (``user_updated``; a new password only as a flag).

    Raises UserError for an unknown role or a short password; nothing is changed then.
    """
    unknown = set(roles) - ROLE_NAMES
    if unknown:
        raise UserError(f"unknown role(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(ROLE_NAMES))}")
    if password is not None and len(password) < 8:
        raise UserError("the password must have at least 8 characters")
    changes: dict[str, list] = {}
    display_name = display_name.strip() or user.username
    if display_name != user.display_name:
        changes["display_name"] = [user.display_name, display_name]
        user.display_name = display_name
    new_roles = set(roles)
    if new_roles != user.roles:
        changes["roles"] = [sorted(user.roles), sorted(new_roles)]
        # Keep the rows of roles that stay: replacing them all would insert before deleting (unique user+role).
        kept = [row for row in user.role_rows if row.role in new_roles]
        added = [UserRole(role=role) for role in sorted(new_roles - user.roles)]
        user.role_rows = kept + added
    new_node_id = jurisdiction.id if jurisdiction is not None else None
    if new_node_id != user.jurisdiction_id:
        changes["jurisdiction_id"] = [user.jurisdiction_id, new_node_id]
        user.jurisdiction = jurisdiction
    if bool(active) != user.active:
        changes["active"] = [user.active, bool(active)]
        user.active = bool(active)
    if password is not None:
        user.password_hash = hash_password(password)
    db.session.flush()
    if changes or password is not None:
        record(
            "user_updated",
            actor_id=actor_id,
            jurisdiction_id=user.jurisdiction_id,
            payload={
                "user_id": user.id,
                "username": user.username,
                "changes": changes,
                "password_reset": password is not None,
            },
        )
    return changes
