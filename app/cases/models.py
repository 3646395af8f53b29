"""The case: one person under community treatment or rehabilitation."""

import enum
from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import JurisdictionNode
from app.core.db import UTCDateTime, utcnow_default
from app.extensions import db


class Measure(enum.StrEnum):
    COMMUNITY_TREATMENT = "community_treatment"  # 社区戒毒 (法33)
    COMMUNITY_REHABILITATION = "community_rehabilitation"  # 社区康复 (法48)


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    SUSPENDED = "suspended"  # 中止 (条例24): clocks paused
    CLOSED = "closed"


class Case(db.Model):
    """A person's file; it belongs to exactly one community at a time."""

    __tablename__ = "rehab_case"
    __table_args__ = (
        Index("ix_rehab_case_jurisdiction_status", "jurisdiction_id", "status"),
        Index("ix_rehab_case_decision_date", "decision_date"),  # KPIs: cases decided in a period
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    person_name: Mapped[str] = mapped_column(String(100))
    #: 身份证号; shown masked except the last 4 characters.
    id_number: Mapped[str] = mapped_column(String(32), index=True)
    jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdiction_node.id"))
    measure: Mapped[Measure] = mapped_column(
        db.Enum(Measure, native_enum=False, length=40), default=Measure.COMMUNITY_TREATMENT
    )
    status: Mapped[CaseStatus] = mapped_column(
        db.Enum(CaseStatus, native_enum=False, length=20), default=CaseStatus.OPEN
    )
    stage: Mapped[str] = mapped_column(String(40), default="decision")
    #: red / yellow / blue (三色量化), decided by tier.dmn.
    tier: Mapped[str | None] = mapped_column(String(10))
    decision_date: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(10))
    birth_date: Mapped[date | None] = mapped_column(Date)
    #: The day the person reported (条例14): the term counts from here.
    term_started_on: Mapped[date | None] = mapped_column(Date)
    #: Facts collected by the workflows (intake answers, working group, placement, ...).
    facts: Mapped[dict] = mapped_column(JSON, default=dict)
    #: Counted toward 条例20: evaded/refused tests, unauthorised absences and their total days.
    refusal_count: Mapped[int] = mapped_column(Integer, default=0)
    absence_count: Mapped[int] = mapped_column(Integer, default=0)
    absence_days: Mapped[int] = mapped_column(Integer, default=0)
    close_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow_default)

    jurisdiction: Mapped[JurisdictionNode] = relationship()

    def __repr__(self) -> str:
        return f"<Case {self.reference}>"


class Document(db.Model):
    """A file attached to a case (a test-result photo, a signed agreement scan, ...).

    Kept in the database rather than on a local disk, so every web process on every host can serve it and
    it is backed up and transferred with the case.
    """

    __tablename__ = "case_document"
    __table_args__ = (Index("ix_case_document_case", "case_id", "uploaded_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("rehab_case.id"))
    #: The task whose form field carried it (None: uploaded on the case page).
    work_item_id: Mapped[int | None] = mapped_column(ForeignKey("work_item.id"))
    field_id: Mapped[str | None] = mapped_column(String(100))
    file_name: Mapped[str] = mapped_column(String(200))
    #: Checked against the file's first bytes, not taken from the browser.
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime())
