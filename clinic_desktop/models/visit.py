"""Visits: a queue token and, once the doctor sees the patient, the consultation record."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clinic_desktop.models.base import Base, SyncMixin
from clinic_desktop.models.types import JSONList, UTCDateTime

# Forward-only state machine; the sync server never lets a status move backwards.
VISIT_STATUSES = ("waiting", "called", "in_consultation", "completed", "cancelled", "no_show")
STATUS_RANK = {
    "waiting": 0,
    "called": 1,
    "in_consultation": 2,
    "completed": 3,
    "cancelled": 3,
    "no_show": 3,
}
TERMINAL_STATUSES = frozenset({"completed", "cancelled", "no_show"})


class Visit(SyncMixin, Base):
    __tablename__ = "visit"
    __table_args__ = (UniqueConstraint("clinic_id", "day", "token_label"),)
    __sync_policy__ = "guarded"

    patient_id: Mapped[str] = mapped_column(String(36), ForeignKey("patient.id"), index=True)
    doctor_id: Mapped[str] = mapped_column(String(36), ForeignKey("user_account.id"), index=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    desk_code: Mapped[str] = mapped_column(String(3))
    token_seq: Mapped[int] = mapped_column(Integer)
    token_label: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    priority: Mapped[int] = mapped_column(Integer, default=0)  # 0 normal, 1 priority, 2 emergency
    queue_position: Mapped[int] = mapped_column(Integer, default=0)  # manual re-order
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime)
    called_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    complaint: Mapped[str] = mapped_column(Text, default="")
    bp_systolic: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bp_diastolic: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pulse: Mapped[int | None] = mapped_column(Integer, nullable=True)
    temperature_dc: Mapped[int | None] = mapped_column(Integer, nullable=True)  # tenths of °C
    weight_hg: Mapped[int | None] = mapped_column(Integer, nullable=True)  # tenths of kg
    height_cm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    spo2: Mapped[int | None] = mapped_column(Integer, nullable=True)
    examination: Mapped[str] = mapped_column(Text, default="")
    diagnosis_codes: Mapped[list[str]] = mapped_column(JSONList, default=list)
    advice: Mapped[str] = mapped_column(Text, default="")
    follow_up_date: Mapped[date | None] = mapped_column(Date, nullable=True)
