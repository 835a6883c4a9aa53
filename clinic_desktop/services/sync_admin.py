"""Admin tools for sync: rejected changes, merge conflicts and duplicates across desks.

- Sync problems: mutations the server refused. An admin retries (the change goes again under
  a new mutation id, with the row's current values, so a fix made meanwhile is included) or
  discards it (the server's copy stands). Both are audited; neither is ever silent.
- Conflicts: field values that lost a merge (``conflict_record``). An admin keeps the result
  or restores the lost value (a new edit that wins by clock on every desk). Audited.
- Duplicates: patients registered for the same person on two desks while offline are found
  after sync and merged by a person through the patients service, never automatically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clinic_desktop.models import (
    SYNCED_ENTITIES,
    ConflictRecord,
    OutboxEntry,
    Patient,
    SyncProblem,
)
from clinic_desktop.models.serialize import column_names, from_json_value, row_fields
from clinic_desktop.services import patients
from clinic_desktop.services.audit import record_event
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import InvalidState, NotFound, ValidationError
from clinic_desktop.services.users import authorize

OPEN = "open"
RETRIED = "retried"
DISCARDED = "discarded"

# Words for entity names, for the admin's list (no patient data: the list shows ids only).
ENTITY_WORDS = {
    "clinic_settings": "clinic settings",
    "workstation": "workstation",
    "user_account": "user account",
    "patient": "patient record",
    "visit": "visit / token",
    "medicine": "medicine",
    "prescription": "prescription",
    "prescription_item": "prescription line",
    "price_item": "price list item",
    "bill": "bill",
    "bill_item": "bill line",
    "payment": "payment",
    "audit_event": "audit event",
    "conflict_record": "conflict record",
}


@dataclass(frozen=True)
class ProblemView:
    id: str
    mutation_id: str
    entity: str
    entity_label: str
    row_id: str
    fields: list[str]
    reason: str
    occurred_at: str
    state: str


@dataclass(frozen=True)
class ConflictView:
    id: str
    entity: str
    entity_label: str
    row_id: str
    field: str
    kept_value: Any
    lost_value: Any
    lost_origin: str
    lost_by: str | None
    resolution: str
    note: str


@dataclass(frozen=True)
class DuplicatePair:
    """Two live patient records that look like one person, made on different desks."""

    first_id: str
    second_id: str
    first_number: str
    second_number: str
    reason: str  # "same phone" | "similar name and same date of birth"


def _admin(session: Session, actor: Actor, action: str) -> None:
    authorize(session, actor, "admin", action=action)


# --- sync problems ------------------------------------------------------------------------


def _problem_view(problem: SyncProblem) -> ProblemView:
    payload = problem.fields or {}
    inner = payload.get("fields") if isinstance(payload.get("fields"), dict) else payload
    names = sorted(inner.keys()) if isinstance(inner, dict) else []
    return ProblemView(
        id=problem.id,
        mutation_id=problem.mutation_id,
        entity=problem.entity,
        entity_label=ENTITY_WORDS.get(problem.entity, problem.entity),
        row_id=problem.row_id,
        fields=names,
        reason=problem.reason,
        occurred_at=problem.occurred_at,
        state=problem.state,
    )


def list_problems(desk: Desk, actor: Actor, *, include_closed: bool = False) -> list[ProblemView]:
    """Rejected changes, oldest first (open ones only unless ``include_closed``)."""
    with desk.reading() as session:
        _admin(session, actor, "review sync problems")
        query = select(SyncProblem).order_by(SyncProblem.occurred_at)
        if not include_closed:
            query = query.where(SyncProblem.state == OPEN)
        return [_problem_view(p) for p in session.scalars(query).all()]


def _open_problem(session: Session, problem_id: str) -> SyncProblem:
    problem = session.get(SyncProblem, problem_id)
    if problem is None:
        raise NotFound("That sync problem does not exist.")
    if problem.state != OPEN:
        raise InvalidState(f"That sync problem was already {problem.state}.")
    return problem


def retry_problem(desk: Desk, actor: Actor, problem_id: str) -> str:
    """Send the refused change again under a new mutation id; returns that id.

    The server remembers the old id's refusal, so the same id would only be refused again.
    The values sent are the row's current local values of the refused fields.
    """
    with desk.transaction(actor) as session:
        _admin(session, actor, "retry sync problems")
        problem = _open_problem(session, problem_id)
        cls = SYNCED_ENTITIES.get(problem.entity)
        if cls is None:
            raise InvalidState("This desk no longer knows that kind of record; discard it.")
        row = session.get(cls, problem.row_id)
        payload = problem.fields or {}
        sent = payload.get("fields") if isinstance(payload.get("fields"), dict) else {}
        op = str(payload.get("op") or "update")
        assert isinstance(sent, dict)
        if row is not None:
            if op == "insert" and row.version == 0:
                fields = row_fields(row)
            else:
                op = "update"
                known = set(column_names(cls))
                names = [n for n in sent if n in known and n not in cls.SYNC_COLUMNS]
                fields = row_fields(row, names)
            base_version = row.version
        else:
            fields, base_version = dict(sent), 0
        entry = OutboxEntry(
            entity=problem.entity,
            row_id=problem.row_id,
            op="insert" if op == "insert" else "update",
            fields=fields,
            base_version=base_version,
            hlc=desk.clock.now(),
            actor_id=actor.user_id,
        )
        session.add(entry)
        problem.state = RETRIED
        record_event(
            session,
            desk,
            actor,
            "sync.problem_retry",
            problem.entity,
            problem.row_id,
            f"mutation={problem.mutation_id}",
        )
        session.flush()
        return entry.mutation_id


def discard_problem(desk: Desk, actor: Actor, problem_id: str) -> None:
    """Give up a refused change: the server's copy stands.

    A refused new record that the server never accepted is tombstoned on this desk (as server
    data, not a new change to push), so it stops showing as if it were saved.
    """
    with desk.transaction(actor) as session:
        _admin(session, actor, "discard sync problems")
        problem = _open_problem(session, problem_id)
        cls = SYNCED_ENTITIES.get(problem.entity)
        payload = problem.fields or {}
        if cls is not None and payload.get("op") == "insert":
            table = cls.__table__  # type: ignore[attr-defined]
            session.execute(
                update(table)
                .where(table.c.id == problem.row_id, table.c.version == 0)
                .values(deleted=True)
            )
        problem.state = DISCARDED
        record_event(
            session,
            desk,
            actor,
            "sync.problem_discard",
            problem.entity,
            problem.row_id,
            f"mutation={problem.mutation_id}",
        )


# --- conflicts ----------------------------------------------------------------------------


def _conflict_view(record: ConflictRecord) -> ConflictView:
    return ConflictView(
        id=record.id,
        entity=record.entity,
        entity_label=ENTITY_WORDS.get(record.entity, record.entity),
        row_id=record.row_id,
        field=record.field,
        kept_value=(record.kept_value or {}).get("v"),
        lost_value=(record.lost_value or {}).get("v"),
        lost_origin=record.lost_origin,
        lost_by=record.lost_by,
        resolution=record.resolution,
        note=record.note,
    )


def list_conflicts(
    desk: Desk, actor: Actor, *, open_only: bool = True, row_id: str | None = None
) -> list[ConflictView]:
    """Merge conflicts to review (values are shown to the admin on screen, never logged)."""
    with desk.reading() as session:
        _admin(session, actor, "review sync conflicts")
        query = select(ConflictRecord).where(ConflictRecord.deleted.is_(False))
        if open_only:
            query = query.where(ConflictRecord.resolution == "open")
        if row_id is not None:
            query = query.where(ConflictRecord.row_id == row_id)
        query = query.order_by(ConflictRecord.updated_at)
        return [_conflict_view(r) for r in session.scalars(query).all()]


def _open_conflict(session: Session, conflict_id: str) -> ConflictRecord:
    record = session.get(ConflictRecord, conflict_id)
    if record is None or record.deleted:
        raise NotFound("That conflict record does not exist.")
    if record.resolution != "open":
        raise InvalidState(f"That conflict was already resolved ({record.resolution}).")
    return record


def _clean_note(note: str) -> str:
    note = note.strip()
    if len(note) > 1000:
        raise ValidationError({"note": "The note is too long (at most 1000 characters)."})
    return note


def keep_conflict(desk: Desk, actor: Actor, conflict_id: str, note: str = "") -> None:
    """Accept the merge result as it is."""
    note = _clean_note(note)
    with desk.transaction(actor) as session:
        _admin(session, actor, "resolve sync conflicts")
        record = _open_conflict(session, conflict_id)
        record.resolution = "kept"
        record.note = note
        record_event(
            session, desk, actor, "sync.conflict_keep", record.entity, record.row_id, record.id
        )


def restore_conflict(desk: Desk, actor: Actor, conflict_id: str, note: str = "") -> None:
    """Put the lost value back: a new edit of that field, which every desk then receives."""
    note = _clean_note(note)
    with desk.transaction(actor) as session:
        _admin(session, actor, "resolve sync conflicts")
        record = _open_conflict(session, conflict_id)
        cls = SYNCED_ENTITIES.get(record.entity)
        if cls is None or record.field not in column_names(cls):
            raise InvalidState("That field no longer exists; keep the current value instead.")
        if record.field in cls.SYNC_COLUMNS or record.field in ("id", "clinic_id"):
            raise InvalidState("That field is maintained by sync and cannot be restored.")
        row = session.get(cls, record.row_id)
        if row is None:
            raise NotFound("The record this conflict is about is not on this desk.")
        column_type = cls.__table__.c[record.field].type  # type: ignore[attr-defined]
        value = from_json_value(column_type, (record.lost_value or {}).get("v"))
        setattr(row, record.field, value)
        record.resolution = "restored"
        record.note = note
        record_event(
            session, desk, actor, "sync.conflict_restore", record.entity, record.row_id, record.id
        )


# --- duplicates across desks --------------------------------------------------------------


def _desk_of(number: str) -> str:
    parts = number.split("-")
    return parts[1] if len(parts) >= 3 else ""


def find_cross_desk_duplicates(desk: Desk, actor: Actor) -> list[DuplicatePair]:
    """Live patients that look like the same person but were registered on different desks.

    Same desk duplicates were already caught by the warning at registration; these come
    from desks that could not see each other (offline).
    """
    with desk.reading() as session:
        authorize(session, actor, *patients.WRITE_ROLES, action="review duplicate patients")
        rows = session.execute(
            select(
                Patient.id,
                Patient.patient_number,
                Patient.full_name,
                Patient.phone,
                Patient.date_of_birth,
            ).where(Patient.deleted.is_(False), Patient.merged_into.is_(None))
        ).all()
    pairs: dict[tuple[str, str], DuplicatePair] = {}
    by_phone: dict[str, list[Any]] = {}
    by_dob: dict[date, list[Any]] = {}
    for row in rows:
        if row.phone:
            by_phone.setdefault(row.phone, []).append(row)
        if row.date_of_birth is not None:
            by_dob.setdefault(row.date_of_birth, []).append(row)

    def add(a: Any, b: Any, reason: str) -> None:
        if _desk_of(a.patient_number) == _desk_of(b.patient_number):
            return
        first, second = sorted((a, b), key=lambda r: r.patient_number)
        key = (first.id, second.id)
        if key not in pairs:
            pairs[key] = DuplicatePair(
                first.id, second.id, first.patient_number, second.patient_number, reason
            )

    for group in by_phone.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if patients.names_similar(a.full_name, b.full_name):
                    add(a, b, "same phone")
    for group in by_dob.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if patients.names_similar(a.full_name, b.full_name):
                    add(a, b, "similar name and same date of birth")
    return sorted(pairs.values(), key=lambda p: (p.first_number, p.second_number))


def merge_duplicate(desk: Desk, actor: Actor, keep_id: str, merge_id: str) -> Patient:
    """Merge a reviewed pair through the patients service (audited there, synced as edits)."""
    return patients.merge(desk, actor, keep_id, merge_id)
