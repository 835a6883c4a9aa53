"""Desk-only tables: the sync outbox, pull cursor, number counters and rejected mutations."""

from __future__ import annotations

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinic_desktop.models.base import LocalBase, new_id
from clinic_desktop.models.types import JSONDict


class OutboxEntry(LocalBase):
    """One local mutation waiting to be pushed, written in the same transaction as the change."""

    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mutation_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    entity: Mapped[str] = mapped_column(String(40))
    row_id: Mapped[str] = mapped_column(String(36), index=True)
    op: Mapped[str] = mapped_column(String(10))  # insert | update
    fields: Mapped[dict[str, object]] = mapped_column(JSONDict)
    base_version: Mapped[int] = mapped_column(Integer)
    hlc: Mapped[str] = mapped_column(String(48))
    actor_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    state: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")


class SyncState(LocalBase):
    """Key/value bookkeeping for the sync client (pull cursor, snapshot page, last success)."""

    __tablename__ = "sync_state"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")


class DeskCounter(LocalBase):
    """Counters behind human-facing numbers made offline (patient and invoice series)."""

    __tablename__ = "desk_counter"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class SyncProblem(LocalBase):
    """A mutation the server rejected; shown to an admin, never dropped silently."""

    __tablename__ = "sync_problem"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    mutation_id: Mapped[str] = mapped_column(String(36), unique=True)
    entity: Mapped[str] = mapped_column(String(40))
    row_id: Mapped[str] = mapped_column(String(36))
    fields: Mapped[dict[str, object]] = mapped_column(JSONDict)
    reason: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[str] = mapped_column(String(48))
    state: Mapped[str] = mapped_column(String(12), default="open")  # open|retried|discarded
