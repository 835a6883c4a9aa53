"""Today's queue: tokens per doctor, priorities, re-ordering and the visit state machine.

A token is a :class:`Visit` row. Its label carries the desk code and counts per desk per day
(``B-014``), so two desks issuing tokens offline never clash. Status only moves forward:

    waiting -> called -> in_consultation -> completed
    waiting | called -> cancelled | no_show

(a doctor may also start a waiting token directly). Nothing ever moves back; the sync server
applies the same rule to changes from other desks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from clinic_desktop.models import ClinicSettings, Patient, User, Visit
from clinic_desktop.models.visit import STATUS_RANK, TERMINAL_STATUSES
from clinic_desktop.services.audit import record_event
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import InvalidState, NotFound, PermissionDenied, ValidationError
from clinic_desktop.services.numbering import next_token_seq, token_label
from clinic_desktop.services.users import authorize

FRONT_DESK = ("admin", "receptionist")
PRIORITIES = {0: "normal", 1: "priority", 2: "emergency"}

# Allowed moves: status -> statuses it may go to.
TRANSITIONS: dict[str, frozenset[str]] = {
    "waiting": frozenset({"called", "in_consultation", "cancelled", "no_show"}),
    "called": frozenset({"in_consultation", "cancelled", "no_show"}),
    "in_consultation": frozenset({"completed"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "no_show": frozenset(),
}
_STATUS_WORDS = {
    "waiting": "waiting",
    "called": "called",
    "in_consultation": "in consultation",
    "completed": "completed",
    "cancelled": "cancelled",
    "no_show": "marked as no-show",
}
_ACTIVE = ("waiting", "called", "in_consultation")


@dataclass(frozen=True)
class QueueEntry:
    """One token as queue screens show it (the patient's name is for staff screens only)."""

    visit_id: str
    token_label: str
    status: str
    priority: int
    queue_position: int
    arrived_at: datetime
    patient_id: str
    patient_number: str
    patient_name: str
    doctor_id: str


@dataclass(frozen=True)
class Doctor:
    user_id: str
    full_name: str


@dataclass(frozen=True)
class BoardRow:
    """The waiting-room board: token labels only, never names (it faces the public)."""

    doctor_id: str
    doctor_name: str
    serving: str | None
    called: list[str]
    next: list[str]
    waiting_count: int


# ---------------------------------------------------------------------------------------------
# Helpers


def clinic_today(session: Session, desk: Desk) -> date:
    """Today's date where the clinic is (tokens restart at 001 at local midnight)."""
    settings = session.scalars(
        select(ClinicSettings).where(ClinicSettings.deleted.is_(False))
    ).first()
    zone_name = settings.timezone if settings is not None else "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return desk.now.utcnow().astimezone(zone).date()


def _order_key() -> tuple[Any, ...]:
    return (Visit.priority.desc(), Visit.queue_position, Visit.arrived_at, Visit.token_seq)


def _get_visit(session: Session, visit_id: str) -> Visit:
    visit = session.get(Visit, visit_id)
    if visit is None or visit.deleted:
        raise NotFound("That token does not exist.")
    return visit


def _get_doctor(session: Session, doctor_id: str) -> User:
    doctor = session.get(User, doctor_id)
    if doctor is None or doctor.deleted or not doctor.has_role("doctor"):
        raise NotFound("That doctor does not exist.")
    if doctor.disabled:
        raise InvalidState(f"{doctor.full_name}'s account is disabled; choose another doctor.")
    return doctor


def _check_move(visit: Visit, target: str) -> None:
    if target not in TRANSITIONS.get(visit.status, frozenset()):
        now = _STATUS_WORDS.get(visit.status, visit.status)
        wanted = _STATUS_WORDS.get(target, target)
        if visit.status in TERMINAL_STATUSES:
            raise InvalidState(f"Token {visit.token_label} is already {now}; it cannot change.")
        if STATUS_RANK.get(target, 0) > STATUS_RANK.get(visit.status, 0):
            raise InvalidState(f"Token {visit.token_label} is {now}; it cannot be {wanted} yet.")
        raise InvalidState(
            f"Token {visit.token_label} is {now}; it cannot be {wanted} again "
            "(a token never goes back a step)."
        )


def _authorize_doctor_action(session: Session, actor: Actor, visit: Visit, action: str) -> None:
    """The token's own doctor, or an admin acting for them."""
    user = authorize(session, actor, "doctor", "admin", action=action)
    if not user.has_role("admin") and visit.doctor_id != actor.user_id:
        raise PermissionDenied("This token belongs to another doctor's queue.")


def _waiting_group(session: Session, visit: Visit) -> list[Visit]:
    """Waiting tokens of the same doctor, day and priority, in queue order."""
    return list(
        session.scalars(
            select(Visit)
            .where(
                Visit.doctor_id == visit.doctor_id,
                Visit.day == visit.day,
                Visit.priority == visit.priority,
                Visit.status == "waiting",
                Visit.deleted.is_(False),
            )
            .order_by(*_order_key())
        ).all()
    )


def _renumber(group: list[Visit]) -> None:
    """Positions 1..n in list order, touching only rows whose position changes."""
    for index, visit in enumerate(group, start=1):
        if visit.queue_position != index:
            visit.queue_position = index


# ---------------------------------------------------------------------------------------------
# Reading


def list_doctors(desk: Desk) -> list[Doctor]:
    """Active users with the doctor role, by name (for the token form and the board)."""
    with desk.reading() as session:
        rows = session.scalars(
            select(User)
            .where(User.deleted.is_(False), User.disabled.is_(False))
            .order_by(User.full_name)
        ).all()
        return [Doctor(u.id, u.full_name) for u in rows if u.has_role("doctor")]


def _entries(session: Session, query: Select[Visit, str, str]) -> list[QueueEntry]:
    rows = session.execute(query).all()
    return [
        QueueEntry(
            visit_id=visit.id,
            token_label=visit.token_label,
            status=visit.status,
            priority=visit.priority,
            queue_position=visit.queue_position,
            arrived_at=visit.arrived_at,
            patient_id=visit.patient_id,
            patient_number=number,
            patient_name=name,
            doctor_id=visit.doctor_id,
        )
        for visit, number, name in rows
    ]


def doctor_queue(
    desk: Desk, doctor_id: str, day: date | None = None, *, include_finished: bool = False
) -> list[QueueEntry]:
    """A doctor's tokens for ``day`` (default today): the one in consultation, then called
    ones, then waiting ones by priority (emergency first), queue position, and arrival."""
    with desk.reading() as session:
        day = day or clinic_today(session, desk)
        stage = case(
            (Visit.status == "in_consultation", 0),
            (Visit.status == "called", 1),
            (Visit.status == "waiting", 2),
            else_=3,
        )
        statuses = list(TRANSITIONS) if include_finished else list(_ACTIVE)
        query = (
            select(Visit, Patient.patient_number, Patient.full_name)
            .join(Patient, Patient.id == Visit.patient_id)
            .where(
                Visit.doctor_id == doctor_id,
                Visit.day == day,
                Visit.deleted.is_(False),
                Visit.status.in_(statuses),
            )
            .order_by(stage, *_order_key())
        )
        return _entries(session, query)


def now_serving(desk: Desk, day: date | None = None, *, upcoming: int = 3) -> list[BoardRow]:
    """Per doctor: the token in consultation, tokens called, and the next few waiting."""
    rows: list[BoardRow] = []
    doctors = list_doctors(desk)
    for doctor in doctors:
        queue = doctor_queue(desk, doctor.user_id, day)
        serving = next((e.token_label for e in queue if e.status == "in_consultation"), None)
        called = [e.token_label for e in queue if e.status == "called"]
        waiting = [e.token_label for e in queue if e.status == "waiting"]
        rows.append(
            BoardRow(
                doctor_id=doctor.user_id,
                doctor_name=doctor.full_name,
                serving=serving,
                called=called,
                next=waiting[:upcoming],
                waiting_count=len(waiting),
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------
# Issuing and re-ordering (front desk)


def issue_token(
    desk: Desk,
    actor: Actor,
    patient_id: str,
    doctor_id: str,
    *,
    priority: int = 0,
    complaint: str = "",
) -> Visit:
    """Give a patient a token for a doctor today (label like ``B-014``).

    Refuses a second open token for the same patient and doctor on the same day.
    """
    if priority not in PRIORITIES:
        raise ValidationError(
            {"priority": "Priority is normal (0), priority (1) or emergency (2)."}
        )
    complaint = complaint.strip()
    if len(complaint) > 2000:
        raise ValidationError({"complaint": "Too long (at most 2000 characters)."})
    with desk.transaction(actor) as session:
        authorize(session, actor, *FRONT_DESK, action="issue tokens")
        patient = session.get(Patient, patient_id)
        if patient is None or patient.deleted:
            raise NotFound("That patient record does not exist.")
        if patient.merged_into is not None:
            raise InvalidState("This record was merged into another one; use the surviving record.")
        doctor = _get_doctor(session, doctor_id)
        today = clinic_today(session, desk)
        open_token = session.scalars(
            select(Visit).where(
                Visit.patient_id == patient_id,
                Visit.doctor_id == doctor_id,
                Visit.day == today,
                Visit.status.in_(_ACTIVE),
                Visit.deleted.is_(False),
            )
        ).first()
        if open_token is not None:
            raise InvalidState(
                f"{patient.full_name} already has token {open_token.token_label} "
                f"({_STATUS_WORDS[open_token.status]}) for {doctor.full_name} today."
            )
        seq = next_token_seq(session, desk.desk_code, today)
        last_position = session.scalar(
            select(func.max(Visit.queue_position)).where(
                Visit.doctor_id == doctor_id, Visit.day == today
            )
        )
        visit = Visit(
            clinic_id=desk.clinic_id,
            patient_id=patient.id,
            doctor_id=doctor.id,
            day=today,
            desk_code=desk.desk_code,
            token_seq=seq,
            token_label=token_label(desk.desk_code, seq),
            status="waiting",
            priority=priority,
            queue_position=int(last_position or 0) + 1,
            arrived_at=desk.now.utcnow(),
            complaint=complaint,
        )
        session.add(visit)
        record_event(session, desk, actor, "visit.issue", "visit", visit.id, f"priority={priority}")
    return visit


def set_priority(desk: Desk, actor: Actor, visit_id: str, priority: int) -> Visit:
    """Mark a waiting token normal, priority or emergency (moves it within the queue)."""
    if priority not in PRIORITIES:
        raise ValidationError(
            {"priority": "Priority is normal (0), priority (1) or emergency (2)."}
        )
    with desk.transaction(actor) as session:
        authorize(session, actor, *FRONT_DESK, action="change priorities")
        visit = _get_visit(session, visit_id)
        if visit.status != "waiting":
            raise InvalidState(f"Token {visit.token_label} is no longer waiting.")
        if visit.priority != priority:
            visit.priority = priority
            record_event(
                session, desk, actor, "visit.priority", "visit", visit.id, f"priority={priority}"
            )
    return visit


def move_to(desk: Desk, actor: Actor, visit_id: str, index: int) -> Visit:
    """Put a waiting token at ``index`` (0 = first) among waiting tokens of its priority.

    Priority still comes first: an emergency token is never put behind a normal one by a
    move; change its priority for that.
    """
    with desk.transaction(actor) as session:
        authorize(session, actor, *FRONT_DESK, action="re-order the queue")
        visit = _get_visit(session, visit_id)
        if visit.status != "waiting":
            raise InvalidState(f"Token {visit.token_label} is no longer waiting; it cannot move.")
        group = _waiting_group(session, visit)
        current = group.index(visit)
        target = max(0, min(index, len(group) - 1))
        if target != current:
            group.insert(target, group.pop(current))
            _renumber(group)
            record_event(
                session,
                desk,
                actor,
                "visit.reorder",
                "visit",
                visit.id,
                f"from={current + 1};to={target + 1}",
            )
    return visit


def move(desk: Desk, actor: Actor, visit_id: str, steps: int) -> Visit:
    """Move a waiting token up (negative ``steps``) or down among tokens of its priority."""
    with desk.reading() as session:
        visit = _get_visit(session, visit_id)
        if visit.status != "waiting":
            raise InvalidState(f"Token {visit.token_label} is no longer waiting; it cannot move.")
        current = [v.id for v in _waiting_group(session, visit)].index(visit_id)
    return move_to(desk, actor, visit_id, current + steps)


# ---------------------------------------------------------------------------------------------
# Status changes


def _transition(desk: Desk, actor: Actor, visit_id: str, target: str, *, by_doctor: bool) -> Visit:
    """Move a token to ``target``. ``by_doctor``: the token's own doctor (or an admin) acts;
    otherwise the front desk acts, and for a no-show also the token's own doctor."""
    with desk.transaction(actor) as session:
        visit = _get_visit(session, visit_id)
        words = _STATUS_WORDS[target]
        if by_doctor:
            _authorize_doctor_action(session, actor, visit, f"mark tokens {words}")
        else:
            roles = (*FRONT_DESK, "doctor") if target == "no_show" else FRONT_DESK
            user = authorize(session, actor, *roles, action=f"mark tokens {words}")
            front_desk = any(user.has_role(role) for role in FRONT_DESK)
            if not front_desk and visit.doctor_id != actor.user_id:
                raise PermissionDenied("This token belongs to another doctor's queue.")
        _check_move(visit, target)
        now = desk.now.utcnow()
        if target == "called":
            if visit.day != clinic_today(session, desk):
                raise InvalidState(f"Token {visit.token_label} was for {visit.day.isoformat()}.")
            visit.called_at = now
        elif target == "in_consultation":
            busy = session.scalars(
                select(Visit).where(
                    Visit.doctor_id == visit.doctor_id,
                    Visit.status == "in_consultation",
                    Visit.id != visit.id,
                    Visit.deleted.is_(False),
                )
            ).first()
            if busy is not None:
                raise InvalidState(
                    f"Token {busy.token_label} is still in consultation; finish it first."
                )
            if visit.called_at is None:
                visit.called_at = now
            visit.started_at = now
        elif target in TERMINAL_STATUSES:
            visit.finished_at = now
        visit.status = target
        record_event(session, desk, actor, f"visit.{target}", "visit", visit.id)
    return visit


def call(desk: Desk, actor: Actor, visit_id: str) -> Visit:
    """The doctor calls a token (the board shows it)."""
    return _transition(desk, actor, visit_id, "called", by_doctor=True)


def start(desk: Desk, actor: Actor, visit_id: str) -> Visit:
    """The patient is in the room: the consultation begins."""
    return _transition(desk, actor, visit_id, "in_consultation", by_doctor=True)


def complete(desk: Desk, actor: Actor, visit_id: str) -> Visit:
    """The consultation is finished (billing can now make the bill)."""
    return _transition(desk, actor, visit_id, "completed", by_doctor=True)


def cancel(desk: Desk, actor: Actor, visit_id: str) -> Visit:
    """The front desk cancels a token that was not seen (waiting or called only)."""
    return _transition(desk, actor, visit_id, "cancelled", by_doctor=False)


def no_show(desk: Desk, actor: Actor, visit_id: str) -> Visit:
    """The patient did not come when called (front desk, or the token's own doctor)."""
    return _transition(desk, actor, visit_id, "no_show", by_doctor=False)


def call_next(desk: Desk, actor: Actor, doctor_id: str | None = None) -> Visit | None:
    """Call the head of the doctor's waiting queue; ``None`` when nobody is waiting.

    ``doctor_id`` defaults to the acting doctor; an admin may name another doctor.
    """
    doctor_id = doctor_id or actor.user_id
    with desk.reading() as session:
        user = authorize(session, actor, "doctor", "admin", action="call patients")
        if doctor_id != actor.user_id and not user.has_role("admin"):
            raise PermissionDenied("You can only call patients from your own queue.")
        _get_doctor(session, doctor_id)
        today = clinic_today(session, desk)
        head = session.scalars(
            select(Visit.id)
            .where(
                Visit.doctor_id == doctor_id,
                Visit.day == today,
                Visit.status == "waiting",
                Visit.deleted.is_(False),
            )
            .order_by(*_order_key())
            .limit(1)
        ).first()
    if head is None:
        return None
    return call(desk, actor, head)
