"""Users, their roles, and the jurisdiction tree that scopes what they see."""

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import UTCDateTime, utcnow_default
from app.extensions import db


class NodeLevel(enum.StrEnum):
    CITY = "city"  # 市
    DISTRICT = "district"  # 区/县
    STREET = "street"  # 街道/乡镇
    COMMUNITY = "community"  # 社区/村
    GRID = "grid"  # 网格


class JurisdictionNode(db.Model):
    """One node of city → district → street → community → grid."""

    __tablename__ = "jurisdiction_node"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdiction_node.id"))
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[NodeLevel] = mapped_column(db.Enum(NodeLevel, native_enum=False, length=20))
    #: Materialised path of ids ("/1/4/9/"): "this node and below" is one indexed prefix match.
    path: Mapped[str] = mapped_column(String(255), index=True, default="")

    parent: Mapped["JurisdictionNode | None"] = relationship(remote_side=[id])

    def __repr__(self) -> str:
        return f"<JurisdictionNode {self.id} {self.name}>"


class User(UserMixin, db.Model):
    """A person who signs in."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    #: argon2 hash (app.auth.passwords).
    password_hash: Mapped[str] = mapped_column(String(255))
    jurisdiction_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdiction_node.id"))
    active: Mapped[bool] = mapped_column(default=True)
    #: Interface language the user chose (zh_CN / en); None: the browser's or the default.
    locale: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow_default)

    jurisdiction: Mapped[JurisdictionNode | None] = relationship()
    role_rows: Mapped[list["UserRole"]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def roles(self) -> set[str]:
        return {row.role for row in self.role_rows}

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class UserRole(db.Model):
    """One role held by a user (a user may hold several)."""

    __tablename__ = "user_role"
    __table_args__ = (UniqueConstraint("user_id", "role"), Index("ix_user_role_role", "role"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(32))
