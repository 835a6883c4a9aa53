"""Patients (demographics merge field by field during sync)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Boolean, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clinic_desktop.models.base import Base, SyncMixin

SEXES = ("female", "male", "other", "unknown")
BLOOD_GROUPS = ("", "A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-")


class Patient(SyncMixin, Base):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("clinic_id", "patient_number"),)
    __sync_policy__ = "fields"

    patient_number: Mapped[str] = mapped_column(String(32))
    full_name: Mapped[str] = mapped_column(String(200))
    sex: Mapped[str] = mapped_column(String(10), default="unknown")
    date_of_birth: Mapped[date | None] = mapped_column(Date, nullable=True)
    dob_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str] = mapped_column(String(32), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    emergency_contact_name: Mapped[str] = mapped_column(String(200), default="")
    emergency_contact_phone: Mapped[str] = mapped_column(String(32), default="")
    allergies: Mapped[str] = mapped_column(Text, default="")
    blood_group: Mapped[str] = mapped_column(String(3), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    merged_into: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("patient.id"), nullable=True
    )
