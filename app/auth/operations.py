"""Creating users and jurisdiction nodes."""

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
