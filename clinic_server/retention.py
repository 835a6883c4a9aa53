"""Pruning the change log after its retention period (applied mutation ids are kept)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update

from clinic_server.db import Database
from clinic_server.tables import ChangeLog, Clinic, LoginAttempt


def prune(db: Database, retention: timedelta, now: datetime | None = None) -> int:
    """Drop change-log entries older than ``retention``; cursors below them then get 410.

    Applied mutation ids are never pruned: a desk that was away longer than the retention
    replays its outbox, and those replays must still be recognised.
    """
    cutoff = (now or datetime.now(UTC)) - retention
    removed = 0
    with db.write() as session:
        clinics = session.execute(
            select(ChangeLog.clinic_id, func.max(ChangeLog.seq))
            .where(ChangeLog.created_at < cutoff)
            .group_by(ChangeLog.clinic_id)
        ).all()
        for clinic_id, top in clinics:
            result = session.execute(
                delete(ChangeLog).where(ChangeLog.clinic_id == clinic_id, ChangeLog.seq <= top)
            )
            removed += int(getattr(result, "rowcount", 0) or 0)
            session.execute(
                update(Clinic)
                .where(Clinic.id == clinic_id, Clinic.log_floor < top)
                .values(log_floor=top)
            )
        session.execute(delete(LoginAttempt).where(LoginAttempt.at < cutoff))
    return removed
