"""Audit events (append-only, hash-chained per desk) and sync conflict records."""

from __future__ import annotations

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clinic_desktop.models.base import Base, SyncMixin
from clinic_desktop.models.types import JSONDict


class AuditEvent(SyncMixin, Base):
    """Who did what, where and when. ``detail`` never holds patient data, only ids."""

    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("origin", "seq"),)
    __sync_policy__ = "append_only"

    seq: Mapped[int] = mapped_column(Integer)  # per desk (origin), gap-free
    occurred_at: Mapped[str] = mapped_column(String(64), index=True)  # HLC: 23 + node id (a UUID)
    actor_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    desk_code: Mapped[str] = mapped_column(String(3), default="")
    action: Mapped[str] = mapped_column(String(40), index=True)
    entity: Mapped[str] = mapped_column(String(40), default="")
    entity_id: Mapped[str] = mapped_column(String(36), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    flagged: Mapped[bool] = mapped_column(default=False)  # break-glass and other review items
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ConflictRecord(SyncMixin, Base):
    """A field value that lost a merge, kept for an admin to review and, if needed, restore."""

    __tablename__ = "conflict_record"
    __sync_policy__ = "fields"

    entity: Mapped[str] = mapped_column(String(40))
    row_id: Mapped[str] = mapped_column(String(36), index=True)
    field: Mapped[str] = mapped_column(String(64))
    kept_value: Mapped[dict[str, object]] = mapped_column(JSONDict)  # {"v": ..., "at": hlc}
    lost_value: Mapped[dict[str, object]] = mapped_column(JSONDict)
    lost_origin: Mapped[str] = mapped_column(String(36), default="")
    lost_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    resolution: Mapped[str] = mapped_column(String(16), default="open")  # open|kept|restored
    note: Mapped[str] = mapped_column(Text, default="")
