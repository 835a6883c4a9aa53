"""Server-only tables: tenancy, change log, applied mutations, identity and devices.

They live in their own metadata (never on desks). The synced tables come from
``clinic_desktop.models.Base.metadata``; both are created by the server's migrations.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from clinic_desktop.models.base import NAMING
from clinic_desktop.models.types import JSONDict, UTCDateTime


class ServerBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Clinic(ServerBase):
    """A tenant. ``change_seq`` is its change counter: the row lock taken when a push
    allocates numbers from it is held until commit, so one clinic's changes commit in
    sequence order and a pull cursor can never pass a change that is still committing."""

    __tablename__ = "srv_clinic"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    change_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # Cursors below this were pruned from the change log (retention): they get 410.
    log_floor: Mapped[int] = mapped_column(BigInteger, default=0)


class ChangeLog(ServerBase):
    """One entry per accepted change of a row; pulls deliver a row at its latest entry."""

    __tablename__ = "srv_change_log"
    __table_args__ = (Index("ix_srv_change_log_created_at", "created_at"),)

    clinic_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entity: Mapped[str] = mapped_column(String(40))
    row_id: Mapped[str] = mapped_column(String(36))
    mutation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AppliedMutation(ServerBase):
    """Every mutation id ever seen, with the answer given, so a replay gets the same one."""

    __tablename__ = "srv_applied_mutation"

    mutation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(String(36))
    device_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answer: Mapped[dict[str, object] | None] = mapped_column(JSONDict, nullable=True)


class RowStamp(ServerBase):
    """Per row: for each field, the clock, version, origin and user of its last change.

    Field-level merge needs to know whether a field changed after the version a desk based
    its edit on, and which clock wins; the row itself only has one ``updated_at``.
    """

    __tablename__ = "srv_row_stamp"

    entity: Mapped[str] = mapped_column(String(40), primary_key=True)
    row_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(String(36))
    stamps: Mapped[dict[str, object]] = mapped_column(JSONDict, default=dict)


class DeviceCredential(ServerBase):
    """The secret of an enrolled workstation (``device_id`` = ``workstation.id``); hash only."""

    __tablename__ = "srv_device_credential"

    device_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(String(36), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DeviceUser(ServerBase):
    """A user who signed in through a workstation: that desk may push their offline work."""

    __tablename__ = "srv_device_user"

    device_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EnrolmentCode(ServerBase):
    """A one-time code an admin hands to a new workstation (hash only)."""

    __tablename__ = "srv_enrolment_code"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(String(36), index=True)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    used_by_device: Mapped[str | None] = mapped_column(String(36), nullable=True)


class AuthSession(ServerBase):
    """A sign-in: the refresh token's hash (rotated on every refresh) and its revocation."""

    __tablename__ = "srv_auth_session"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    device_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_reason: Mapped[str] = mapped_column(Text, default="")


class LoginAttempt(ServerBase):
    """Sign-in attempts per user name + address, for rate limiting across processes."""

    __tablename__ = "srv_login_attempt"
    __table_args__ = (Index("ix_srv_login_attempt_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    success: Mapped[bool] = mapped_column(Boolean, default=False)
