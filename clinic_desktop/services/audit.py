"""Append-only, keyed hash chain of audit events (DESIGN.md section 6).

Each desk chains its own events (``origin``, ``seq``) with an HMAC under a per-desk key kept in
the keyring, so someone who can write the table cannot recompute the chain. Event text never
carries patient data: only ids and action names.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinic_desktop.models.audit import AuditEvent
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import ValidationError

GENESIS = "0" * 64


def _digest(key: bytes, event: AuditEvent) -> str:
    parts = [
        event.prev_hash,
        str(event.seq),
        event.occurred_at,
        event.actor_id or "",
        event.desk_code,
        event.action,
        event.entity,
        event.entity_id,
        event.detail,
        "1" if event.flagged else "0",
        event.origin,
    ]
    message = "\x1f".join(parts).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def record_event(
    session: Session,
    desk: Desk,
    actor: Actor | None,
    action: str,
    entity: str = "",
    entity_id: str = "",
    detail: str = "",
    *,
    flagged: bool = False,
) -> AuditEvent:
    """Append one event to this desk's chain inside the caller's transaction."""
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash)
        .where(AuditEvent.origin == desk.device_id)
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
    event = AuditEvent(
        clinic_id=desk.clinic_id,
        seq=seq,
        occurred_at=desk.clock.now(),
        actor_id=actor.user_id if actor else None,
        desk_code=desk.desk_code,
        action=action,
        entity=entity,
        entity_id=entity_id,
        detail=detail,
        flagged=flagged,
        prev_hash=prev_hash,
        origin=desk.device_id,
        hash="",
    )
    event.hash = _digest(desk.audit_key, event)
    session.add(event)
    return event


@dataclass(frozen=True)
class ChainReport:
    """Outcome of :func:`verify_chain`; ``problems`` is empty when the chain is intact."""

    checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(session: Session, desk: Desk) -> ChainReport:
    """Detect edited, inserted or removed events in this desk's own chain."""
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.origin == desk.device_id).order_by(AuditEvent.seq)
    ).all()
    problems: list[str] = []
    expected_prev, expected_seq = GENESIS, 1
    for event in events:
        if event.seq != expected_seq:
            problems.append(f"event #{expected_seq} is missing (next found is #{event.seq})")
        if event.prev_hash != expected_prev:
            problems.append(f"event #{event.seq} does not follow the one before it")
        if not hmac.compare_digest(event.hash, _digest(desk.audit_key, event)):
            problems.append(f"event #{event.seq} was altered")
        expected_prev, expected_seq = event.hash, event.seq + 1
    return ChainReport(checked=len(events), problems=problems)


def _day_start_ms(day: date, zone: tzinfo) -> int:
    """Milliseconds since the epoch at the clinic's local midnight starting ``day``."""
    return int(datetime.combine(day, time.min, tzinfo=zone).timestamp() * 1000)


def list_events(
    desk: Desk,
    actor: Actor,
    *,
    action: str = "",
    user_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
    flagged_only: bool = False,
    limit: int = 500,
) -> list[AuditEvent]:
    """Audit events for the admin's audit tab, newest first and at most ``limit`` of them.

    ``action`` matches as a prefix ("patient." or an exact action name). ``since`` and
    ``until`` are the clinic's local dates, both included. Reading the log is not itself
    audited: events carry ids and action names, never patient data.
    """
    # Imported here: users.py imports this module to record its own events.
    from clinic_desktop.models.hlc import format_hlc
    from clinic_desktop.services.consultation import clinic_settings, clinic_zone
    from clinic_desktop.services.users import authorize

    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError({"limit": "The number of events to show must be at least 1."})
    if since is not None and until is not None and since > until:
        raise ValidationError({"since": "The start date is after the end date."})
    with desk.reading() as session:
        authorize(session, actor, "admin", action="read the audit log")
        zone = clinic_zone(clinic_settings(session, desk))
        query = select(AuditEvent).where(AuditEvent.clinic_id == desk.clinic_id)
        prefix = action.strip()
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(AuditEvent.action.like(escaped + "%", escape="\\"))
        if user_id is not None:
            query = query.where(AuditEvent.actor_id == user_id)
        if since is not None:
            query = query.where(
                AuditEvent.occurred_at >= format_hlc(_day_start_ms(since, zone), 0, "")
            )
        if until is not None:
            next_day = until + timedelta(days=1)
            query = query.where(
                AuditEvent.occurred_at < format_hlc(_day_start_ms(next_day, zone), 0, "")
            )
        if flagged_only:
            query = query.where(AuditEvent.flagged.is_(True))
        query = query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.seq.desc()).limit(limit)
        events = list(session.scalars(query).all())
        # Detached with columns loaded: the read session rolls back (expiring rows) on exit.
        session.expunge_all()
        return events
