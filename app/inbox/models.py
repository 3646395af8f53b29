"""What the inbox keeps besides the engine's work items: saved filters and form drafts."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import UTCDateTime
from app.extensions import db


class SavedFilter(db.Model):
    """A named inbox filter saved by a user, optionally shared with everyone holding a role."""

    __tablename__ = "saved_filter"
    __table_args__ = (Index("ix_saved_filter_shared_role", "shared_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: The inbox query string parameters (view, stage, tier, q, ...).
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    shared_role: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TaskDraft(db.Model):
    """What a user typed into a task form and saved without submitting; deleted when the task completes."""

    __tablename__ = "task_draft"
    __table_args__ = (UniqueConstraint("work_item_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    work_item_id: Mapped[int] = mapped_column(ForeignKey("work_item.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime())
