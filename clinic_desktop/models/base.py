"""Declarative bases and the columns every synced row carries (DESIGN.md section 3)."""

from __future__ import annotations

import uuid

from sqlalchemy import Boolean, Integer, MetaData, String, event, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A client-made primary key: desks create rows offline, so ids cannot come from a server."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Tables shared by every desk and the server, carried by the sync protocol."""

    metadata = MetaData(naming_convention=NAMING)


class LocalBase(DeclarativeBase):
    """Desk-only bookkeeping tables (outbox, cursors, counters); never synced."""

    metadata = MetaData(naming_convention=NAMING)


class SyncMixin:
    """Columns the sync protocol relies on.

    ``version`` is the server's change sequence of the last accepted change (0 = never
    accepted); ``updated_at`` is a hybrid logical clock string; ``deleted`` is a tombstone,
    since nothing synced is ever hard-deleted.
    """

    # Subclasses set these: how the sync server treats concurrent edits of this entity.
    #   "fields"      demographics-like: merge field by field, later clock wins a field
    #   "append_only" never edited after creation (payments, audit events)
    #   "guarded"     edits allowed, but an entity-specific rule decides (visits, bills, ...)
    __sync_policy__: str = "fields"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    clinic_id: Mapped[str] = mapped_column(String(36), index=True)
    version: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # An HLC with a UUID node id is 59 characters; 64 leaves room (PostgreSQL enforces it).
    updated_at: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    updated_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    origin: Mapped[str] = mapped_column(String(36), default="", nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)

    # Columns maintained by the sync machinery, never shipped as "changed fields".
    SYNC_COLUMNS = frozenset({"version", "updated_at", "updated_by", "origin"})


@event.listens_for(SyncMixin, "init", propagate=True)
def _fill_defaults(target: SyncMixin, _args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    """Give new rows their id and column defaults at construction, not at flush.

    Services link rows (and write audit events naming them) before anything is flushed.
    """
    for attr in inspect(type(target)).column_attrs:
        if attr.key in kwargs:
            continue
        default = attr.columns[0].default
        if default is None:
            continue
        if getattr(default, "is_scalar", False):
            kwargs[attr.key] = default.arg
        elif getattr(default, "is_callable", False):
            kwargs[attr.key] = default.arg(None)
