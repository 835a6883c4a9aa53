"""Clinic settings, workstations and user accounts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clinic_desktop.models.base import Base, SyncMixin
from clinic_desktop.models.types import JSONList, UTCDateTime

ROLES = ("admin", "receptionist", "doctor", "billing")


class ClinicSettings(SyncMixin, Base):
    """One row per clinic: what prints on documents and the clinic-wide knobs."""

    __tablename__ = "clinic_settings"

    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    tax_rate_bp: Mapped[int] = mapped_column(Integer, default=0)  # basis points: 500 = 5 %
    idle_lock_minutes: Mapped[int] = mapped_column(Integer, default=5)


class Workstation(SyncMixin, Base):
    """An enrolled desk. Its ``desk_code`` goes into every human-facing number it makes."""

    __tablename__ = "workstation"
    __table_args__ = (UniqueConstraint("clinic_id", "desk_code"),)

    desk_code: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(100), default="")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class User(SyncMixin, Base):
    """A person who signs in. Several roles are allowed (a doctor who also bills)."""

    __tablename__ = "user_account"
    __table_args__ = (UniqueConstraint("clinic_id", "username"),)

    username: Mapped[str] = mapped_column(String(64))
    full_name: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSONList, default=list)
    password_hash: Mapped[str] = mapped_column(String(100))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Lock-out state is per desk and security-sensitive, but syncing it lets an admin unlock
    # from any desk; the server applies the same rule to its own sign-ins.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)

    def has_role(self, role: str) -> bool:
        return role in (self.roles or [])
