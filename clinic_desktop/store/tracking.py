"""Stamps sync columns and writes the outbox entry in the same flush as the change.

Registered on the desk's session factory, so no service can forget it: every insert or
update of a synced row gets ``updated_at``/``updated_by``/``origin`` and an
:class:`OutboxEntry` inside the caller's transaction (DESIGN.md section 5, first rule).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from clinic_desktop.models.base import SyncMixin
from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_desktop.models.local import OutboxEntry
from clinic_desktop.models.serialize import row_fields

# session.info keys
CLOCK = "clinic.clock"
DEVICE = "clinic.device_id"
ACTOR = "clinic.actor_id"
REMOTE_APPLY = "clinic.remote_apply"  # set by the sync client while applying pulled rows


class SyncedRowDeletion(RuntimeError):
    """Synced rows are tombstoned (``deleted = True``), never removed."""


class AppendOnlyViolation(RuntimeError):
    """Payments and audit events are never edited once written."""


def _changed_columns(obj: SyncMixin) -> list[str]:
    state = inspect(obj)
    changed: list[str] = []
    for attr in state.mapper.column_attrs:
        if attr.key in SyncMixin.SYNC_COLUMNS:
            continue
        if state.attrs[attr.key].history.has_changes():
            changed.append(attr.key)
    return changed


def _stamp(obj: SyncMixin, info: dict[str, Any]) -> str:
    clock: HybridLogicalClock = info[CLOCK]
    stamp = clock.now()
    obj.updated_at = stamp
    obj.updated_by = info.get(ACTOR)
    obj.origin = info[DEVICE]
    return stamp


def _before_flush(session: Session, _ctx: object, _instances: object) -> None:
    info = session.info
    if info.get(REMOTE_APPLY):
        return
    if CLOCK not in info or DEVICE not in info:
        raise RuntimeError("desk session opened without a clock and device id")
    for obj in list(session.deleted):
        if isinstance(obj, SyncMixin):
            raise SyncedRowDeletion(f"{type(obj).__name__} rows are tombstoned, not deleted")
    entries: list[OutboxEntry] = []
    for obj in list(session.new):
        if not isinstance(obj, SyncMixin):
            continue
        stamp = _stamp(obj, info)
        entries.append(
            OutboxEntry(
                entity=obj.__tablename__,  # type: ignore[attr-defined]
                row_id=obj.id,
                op="insert",
                fields=row_fields(obj),
                base_version=0,
                hlc=stamp,
                actor_id=info.get(ACTOR),
            )
        )
    for obj in list(session.dirty):
        if not isinstance(obj, SyncMixin) or obj in session.new:
            continue
        changed = _changed_columns(obj)
        if not changed:
            continue
        if getattr(obj, "__sync_policy__", "") == "append_only":
            raise AppendOnlyViolation(f"{type(obj).__name__} rows cannot be changed")
        stamp = _stamp(obj, info)
        entries.append(
            OutboxEntry(
                entity=obj.__tablename__,  # type: ignore[attr-defined]
                row_id=obj.id,
                op="update",
                fields=row_fields(obj, changed),
                base_version=obj.version,
                hlc=stamp,
                actor_id=info.get(ACTOR),
            )
        )
    session.add_all(entries)


def install_tracking(factory: sessionmaker[Session]) -> None:
    """Attach the outbox writer to every session this factory makes."""
    event.listen(factory, "before_flush", _before_flush)
