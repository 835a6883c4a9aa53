"""Reading the change log (pull) and whole tables in id-keyed pages (snapshot)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clinic_desktop.models import SYNCED_ENTITIES
from clinic_desktop.models.serialize import row_fields
from clinic_desktop.sync import protocol
from clinic_server.tables import ChangeLog, Clinic


class CursorGone(Exception):
    """The cursor is older than the retained change log (HTTP 410)."""


class CursorAhead(Exception):
    """The cursor is ahead of the server (e.g. the server was restored from a backup)."""


def clinic_seq(session: Session, clinic_id: str) -> tuple[int, int]:
    """(committed change sequence, log floor) of a clinic."""
    row = session.execute(
        select(Clinic.change_seq, Clinic.log_floor).where(Clinic.id == clinic_id)
    ).first()
    if row is None:
        return 0, 0
    return int(row[0]), int(row[1])


def read_changes(
    session: Session, clinic_id: str, after: int, limit: int
) -> tuple[list[dict[str, Any]], int, bool]:
    """Changes after ``after``: (changes, new cursor, more).

    Each log entry whose row has moved on (``row.version != seq``) is skipped: the row comes
    at its later entry, which is also after the cursor.
    """
    head, floor = clinic_seq(session, clinic_id)
    if after < floor:
        raise CursorGone
    if after > head:
        raise CursorAhead
    entries = session.execute(
        select(ChangeLog.seq, ChangeLog.entity, ChangeLog.row_id)
        .where(ChangeLog.clinic_id == clinic_id, ChangeLog.seq > after)
        .order_by(ChangeLog.seq)
        .limit(limit + 1)
    ).all()
    more = len(entries) > limit
    entries = entries[:limit]
    if not entries:
        return [], after, False
    ids: dict[str, set[str]] = defaultdict(set)
    for _seq, entity, row_id in entries:
        ids[entity].add(row_id)
    rows: dict[tuple[str, str], Any] = {}
    for entity, wanted in ids.items():
        model = SYNCED_ENTITIES[entity]
        for row in session.scalars(
            select(model).where(model.id.in_(wanted), model.clinic_id == clinic_id)
        ):
            rows[(entity, row.id)] = row
    changes: list[dict[str, Any]] = []
    for seq, entity, row_id in entries:
        found = rows.get((entity, row_id))
        if found is None or found.version != seq:
            continue
        changes.append({"seq": seq, "entity": entity, "row": row_fields(found)})
    return changes, int(entries[-1][0]), more


def snapshot_start(session: Session, clinic_id: str) -> dict[str, Any]:
    head, _floor = clinic_seq(session, clinic_id)
    counts: dict[str, int] = {}
    for entity in protocol.ENTITY_ORDER:
        model = SYNCED_ENTITIES[entity]
        counts[entity] = int(
            session.scalar(
                select(func.count()).select_from(model).where(model.clinic_id == clinic_id)
            )
            or 0
        )
    return {"cursor": head, "entities": list(protocol.ENTITY_ORDER), "counts": counts}


def snapshot_page(
    session: Session, clinic_id: str, entity: str, after_id: str | None, limit: int
) -> dict[str, Any]:
    model = SYNCED_ENTITIES[entity]
    query = select(model).where(model.clinic_id == clinic_id)
    if after_id:
        query = query.where(model.id > after_id)
    rows = list(session.scalars(query.order_by(model.id).limit(limit)))
    return {
        "rows": [row_fields(row) for row in rows],
        "last_id": rows[-1].id if len(rows) == limit else None,
    }
