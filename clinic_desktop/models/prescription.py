"""Medicine catalogue and prescriptions (immutable once signed; amended by a new version)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinic_desktop.models.base import Base, SyncMixin
from clinic_desktop.models.types import UTCDateTime


class Medicine(SyncMixin, Base):
    __tablename__ = "medicine"

    name: Mapped[str] = mapped_column(String(200), index=True)
    generic_name: Mapped[str] = mapped_column(String(200), default="")
    strength: Mapped[str] = mapped_column(String(60), default="")
    form: Mapped[str] = mapped_column(String(40), default="")
    route: Mapped[str] = mapped_column(String(40), default="")
    drug_class: Mapped[str] = mapped_column(String(100), default="")


class Prescription(SyncMixin, Base):
    __tablename__ = "prescription"
    __sync_policy__ = "guarded"  # a draft can change; a signed one never does

    visit_id: Mapped[str] = mapped_column(String(36), ForeignKey("visit.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(36), ForeignKey("patient.id"), index=True)
    doctor_id: Mapped[str] = mapped_column(String(36), ForeignKey("user_account.id"))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    supersedes_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("prescription.id"), nullable=True
    )
    status: Mapped[str] = mapped_column(String(12), default="draft")  # draft | signed
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")


class PrescriptionItem(SyncMixin, Base):
    __tablename__ = "prescription_item"
    __sync_policy__ = "guarded"  # frozen with its prescription

    prescription_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("prescription.id"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    medicine_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("medicine.id"), nullable=True
    )
    medicine_name: Mapped[str] = mapped_column(String(200))
    strength: Mapped[str] = mapped_column(String(60), default="")
    form: Mapped[str] = mapped_column(String(40), default="")
    dose: Mapped[str] = mapped_column(String(60), default="")
    frequency: Mapped[str] = mapped_column(String(60), default="")
    duration: Mapped[str] = mapped_column(String(60), default="")
    route: Mapped[str] = mapped_column(String(40), default="")
    quantity: Mapped[str] = mapped_column(String(40), default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
