"""Versioning rows and writing the change log at the end of a write transaction.

Sequence numbers come from the clinic's counter row as the transaction's last step. The
row lock taken by that ``UPDATE`` is held until commit, so a second transaction of the same
clinic waits for the first to commit before it gets its numbers: changes commit in sequence
order and a pull that has seen ``seq`` N has seen every change up to N. Only this short tail
of a push is serialised; validation, merging and row writes run concurrently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from clinic_desktop.models import SyncMixin
from clinic_server.tables import ChangeLog, Clinic, RowStamp

# Field stamps written in this transaction carry this version until the real one is known.
PENDING = 2**62


def entity_of(row: SyncMixin) -> str:
    return str(row.__tablename__)  # type: ignore[attr-defined]


class ChangeSet:
    """Rows changed in one transaction; :meth:`finish` gives them versions and log entries."""

    def __init__(self, clinic_id: str) -> None:
        self.clinic_id = clinic_id
        self._rows: dict[tuple[str, str], tuple[SyncMixin, str | None]] = {}
        self._stamps: dict[tuple[str, str], RowStamp] = {}
        self._absent: set[tuple[str, str]] = set()  # known to have no stamp row yet

    def __len__(self) -> int:
        return len(self._rows)

    def touch(self, row: SyncMixin, mutation_id: str | None = None) -> None:
        key = (entity_of(row), row.id)
        previous = self._rows.pop(key, None)  # re-inserted last: its entry follows the latest
        self._rows[key] = (row, mutation_id or (previous[1] if previous else None))

    def stamp_row(self, session: Session, row: SyncMixin) -> RowStamp:
        """The row's field stamps, locked for this transaction (created when missing)."""
        key = (entity_of(row), row.id)
        stamp = self._stamps.get(key)
        if stamp is None:
            if key not in self._absent:
                with session.no_autoflush:
                    stamp = session.get(RowStamp, key, with_for_update=True)
            if stamp is None:
                stamp = RowStamp(entity=key[0], row_id=key[1], clinic_id=row.clinic_id, stamps={})
                session.add(stamp)
            self._stamps[key] = stamp
        return stamp

    def peek_stamp(self, session: Session, row: SyncMixin) -> RowStamp | None:
        """The row's stamps if it has any (read-only: nothing is created)."""
        key = (entity_of(row), row.id)
        if key in self._stamps:
            return self._stamps[key]
        if key in self._absent:
            return None
        with session.no_autoflush:
            return session.get(RowStamp, key)

    def prefetch_stamps(self, session: Session, keys: list[tuple[str, str]]) -> None:
        """Read (and lock) the stamps of many rows in one query per entity."""
        by_entity: dict[str, set[str]] = {}
        for entity, row_id in keys:
            if (entity, row_id) not in self._stamps:
                by_entity.setdefault(entity, set()).add(row_id)
        with session.no_autoflush:
            for entity, ids in sorted(by_entity.items()):
                found = session.scalars(
                    select(RowStamp)
                    .where(RowStamp.entity == entity, RowStamp.row_id.in_(ids))
                    .order_by(RowStamp.row_id)
                    .with_for_update()
                ).all()
                for stamp in found:
                    self._stamps[(entity, stamp.row_id)] = stamp
                self._absent.update((entity, row_id) for row_id in ids)
                self._absent.difference_update((entity, stamp.row_id) for stamp in found)

    def set_stamps(
        self,
        session: Session,
        row: SyncMixin,
        fields: list[str],
        hlc: str,
        origin: str,
        user_id: str | None,
    ) -> None:
        stamp = self.stamp_row(session, row)
        stamps = dict(stamp.stamps or {})
        for name in fields:
            stamps[name] = {"at": hlc, "v": PENDING, "o": origin, "by": user_id}
        stamp.stamps = stamps

    def merge_from(self, other: ChangeSet) -> None:
        """Adopt what a nested unit of work (one mutation's savepoint) touched."""
        for key, (row, mutation_id) in other._rows.items():
            self._rows.pop(key, None)
            self._rows[key] = (row, mutation_id)
        self._stamps.update(other._stamps)
        self._absent.difference_update(other._stamps)

    def finish(self, session: Session) -> None:
        """Allocate sequence numbers (taking the clinic's counter lock), version every row,
        then write rows and log entries together (new rows are inserted with their version)."""
        if not self._rows:
            return
        count = len(self._rows)
        with session.no_autoflush:
            top = session.execute(
                update(Clinic)
                .where(Clinic.id == self.clinic_id)
                .values(change_seq=Clinic.change_seq + count)
                .returning(Clinic.change_seq)
                .execution_options(synchronize_session=False)
            ).scalar_one()
        first = int(top) - count + 1
        now = datetime.now(UTC)
        entries: list[dict[str, Any]] = []
        for offset, (key, (row, mutation_id)) in enumerate(self._rows.items()):
            seq = first + offset
            row.version = seq
            entries.append(
                {
                    "clinic_id": self.clinic_id,
                    "seq": seq,
                    "entity": key[0],
                    "row_id": key[1],
                    "mutation_id": mutation_id,
                    "created_at": now,
                }
            )
            stamp = self._stamps.get(key)
            if stamp is not None and stamp.stamps:
                stamp.stamps = {
                    name: ({**value, "v": seq} if value.get("v") == PENDING else value)
                    for name, value in stamp.stamps.items()
                    if isinstance(value, dict)
                }
        session.flush()
        session.execute(insert(ChangeLog), entries)
        self._rows.clear()
        self._stamps.clear()
        self._absent.clear()
