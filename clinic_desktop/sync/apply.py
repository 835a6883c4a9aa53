"""Writing server rows into the local store (pull pages, snapshot pages, push answers).

The one apply rule (DESIGN.md section 5):

- versions only move forward: a row whose version is not newer than the local one is
  ignored (``at_least=True`` also takes an equal version, for a rejected mutation whose
  local edit must be undone);
- a pulled row overwrites local fields, except fields that still have a pending local
  mutation for that row: those stay as the person typed them until their push is answered;
- the desk's hybrid logical clock observes every row's clock, so a later local edit sorts
  after what this desk has seen.

Core statements (not ORM objects) keep an initial sync of hundreds of thousands of rows fast.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlcipher3
from sqlalchemy import Date, Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clinic_desktop.models import SYNCED_ENTITIES, OutboxEntry, SyncMixin, SyncProblem, new_id
from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_desktop.models.types import UTCDateTime

log = logging.getLogger(__name__)

PENDING = "pending"
# Stamp columns follow the fields: while a row has a pending local edit, its local stamp stays.
_STAMPS = ("updated_at", "updated_by", "origin")
_CHUNK = 500  # ids per IN (...) query
# The store's driver is sqlcipher3, whose errors SQLAlchemy's sqlite dialect does not wrap.
_CLASH = (IntegrityError, sqlcipher3.IntegrityError)


@dataclass
class ChangedRows:
    """Row ids touched per entity, for the views' "rows changed" notification."""

    by_entity: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, entity: str, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.by_entity[entity].update(ids)

    def update(self, other: ChangedRows) -> None:
        for entity, ids in other.by_entity.items():
            self.add(entity, ids)

    def __bool__(self) -> bool:
        return any(self.by_entity.values())

    def count(self) -> int:
        return sum(len(ids) for ids in self.by_entity.values())

    def as_dict(self) -> dict[str, list[str]]:
        return {entity: sorted(ids) for entity, ids in self.by_entity.items() if ids}


def _decoder(column_type: Any) -> Callable[[Any], Any] | None:
    if isinstance(column_type, UTCDateTime):
        return lambda v: datetime.fromisoformat(v) if isinstance(v, str) else v
    if isinstance(column_type, Date):
        return lambda v: date.fromisoformat(v) if isinstance(v, str) else v
    return None


@dataclass(frozen=True)
class _EntityInfo:
    table: Table
    columns: tuple[str, ...]
    decoders: dict[str, Callable[[Any], Any]]
    defaults: dict[str, Any]


_INFO: dict[str, _EntityInfo] = {}


def entity_info(entity: str) -> _EntityInfo:
    """Table, column list, value decoders and defaults of a synced entity (cached)."""
    info = _INFO.get(entity)
    if info is not None:
        return info
    cls: type[SyncMixin] | None = SYNCED_ENTITIES.get(entity)
    if cls is None:
        raise KeyError(entity)
    table: Table = cls.__table__  # type: ignore[attr-defined]
    decoders: dict[str, Callable[[Any], Any]] = {}
    defaults: dict[str, Any] = {}
    for column in table.columns:
        decoder = _decoder(column.type)
        if decoder is not None:
            decoders[column.key] = decoder
        default: Any = column.default
        if default is not None and getattr(default, "is_scalar", False):
            defaults[column.key] = default.arg
        elif default is not None and getattr(default, "is_callable", False):
            defaults[column.key] = default.arg(None)
        else:
            defaults[column.key] = None
    info = _EntityInfo(table, tuple(c.key for c in table.columns), decoders, defaults)
    _INFO[entity] = info
    return info


def _decode(info: _EntityInfo, row: dict[str, Any]) -> dict[str, Any]:
    """JSON row to column values; unknown fields (a newer server schema) are left out."""
    out: dict[str, Any] = {}
    for key in info.columns:
        if key in row:
            value = row[key]
            decoder = info.decoders.get(key)
            out[key] = decoder(value) if decoder is not None and value is not None else value
        else:
            out[key] = info.defaults[key]
    return out


def pending_fields(session: Session, entity: str, row_ids: Iterable[str]) -> dict[str, set[str]]:
    """For each row, the field names a still-pending local mutation changed."""
    ids = list(row_ids)
    found: dict[str, set[str]] = defaultdict(set)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = session.execute(
            select(OutboxEntry.row_id, OutboxEntry.fields).where(
                OutboxEntry.entity == entity,
                OutboxEntry.state == PENDING,
                OutboxEntry.row_id.in_(chunk),
            )
        ).all()
        for row_id, fields in rows:
            found[row_id].update((fields or {}).keys())
    return found


def _local_versions(session: Session, table: Table, ids: list[str]) -> dict[str, int]:
    versions: dict[str, int] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for row_id, version in session.execute(
            select(table.c.id, table.c.version).where(table.c.id.in_(chunk))
        ).all():
            versions[row_id] = int(version)
    return versions


def _record_unstorable(session: Session, entity: str, row: dict[str, Any], clock: str) -> None:
    """A server row that clashes with a local one: shown to an admin, never lost silently."""
    session.add(
        SyncProblem(
            id=new_id(),
            mutation_id=new_id(),
            entity=entity,
            row_id=str(row.get("id", "")),
            fields={"server_row": row},
            reason=(
                "A record from the server could not be stored on this desk because it clashes "
                "with a local record (same number or name). Review both and discard one."
            ),
            occurred_at=clock,
        )
    )


def apply_rows(
    session: Session,
    entity: str,
    rows: list[dict[str, Any]],
    clock: HybridLogicalClock,
    *,
    at_least: bool = False,
) -> list[str]:
    """Apply server rows of one entity by the apply rule; returns the ids that changed."""
    if not rows:
        return []
    try:
        info = entity_info(entity)
    except KeyError:
        log.warning("ignoring rows of unknown entity %s", entity)
        return []
    table = info.table
    # The same row may appear twice in one batch; the newest version wins.
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        row_id = str(row["id"])
        seen = newest.get(row_id)
        if seen is None or int(row.get("version", 0)) >= int(seen.get("version", 0)):
            newest[row_id] = row
    ids = list(newest)
    local = _local_versions(session, table, ids)
    protected = pending_fields(session, entity, local) if local else {}
    inserts: list[dict[str, Any]] = []
    changed: list[str] = []
    for row_id, row in newest.items():
        clock.observe(row.get("updated_at") or None)
        version = int(row.get("version", 0))
        if row_id not in local:
            inserts.append(_decode(info, row))
            changed.append(row_id)
            continue
        current = local[row_id]
        if version < current or (version == current and not at_least):
            continue
        values = _decode(info, row)
        keep = protected.get(row_id, set())
        if keep:
            keep = keep | set(_STAMPS)
        update = {k: v for k, v in values.items() if k != "id" and k not in keep}
        update["version"] = max(version, current)
        session.execute(table.update().where(table.c.id == row_id).values(**update))
        changed.append(row_id)
    if inserts:
        _insert(session, entity, table, inserts, clock)
    return changed


def _insert(
    session: Session,
    entity: str,
    table: Table,
    inserts: list[dict[str, Any]],
    clock: HybridLogicalClock,
) -> None:
    """Insert all rows at once; on a clash, row by row so one bad row cannot block a page."""
    try:
        with session.begin_nested():
            session.execute(table.insert(), inserts)
        return
    except _CLASH:
        pass
    for values in inserts:
        try:
            with session.begin_nested():
                session.execute(table.insert(), [values])
        except _CLASH:
            log.warning("a %s row from the server clashes with a local row", entity)
            _record_unstorable(session, entity, _jsonable(values), clock.now())


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime | date) else v for k, v in values.items()}
