"""Applying a pushed batch: exactly once per mutation id, one transaction per batch.

Each mutation runs in a savepoint, so a rejected one (or one that trips a database
constraint in a race with another process) leaves the rest of the batch intact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import UniqueConstraint, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from clinic_desktop.models import SYNCED_ENTITIES, ConflictRecord, SyncMixin, User, new_id
from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_desktop.models.serialize import decode_fields, row_fields, to_json_value
from clinic_desktop.models.visit import STATUS_RANK, TERMINAL_STATUSES
from clinic_desktop.sync import protocol
from clinic_server.db import Database
from clinic_server.sync.changes import ChangeSet, entity_of
from clinic_server.sync.rules import Actor, frozen_problem, permission_problem, value_problem
from clinic_server.sync.validate import column_specs, fields_problem, missing_required
from clinic_server.tables import AppliedMutation, DeviceUser

log = logging.getLogger("clinic_server.sync")

SERVER_ORIGIN = "server"


@dataclass(frozen=True)
class MutationIn:
    mutation_id: str
    entity: str
    row_id: str
    op: str
    fields: dict[str, Any]
    base_version: int
    hlc: str
    actor_id: str | None = None


@dataclass
class PushContext:
    clinic_id: str
    device_id: str
    user: Actor  # the signed-in user of the request
    clock: HybridLogicalClock
    _actors: dict[str, Actor | str] = field(default_factory=dict)


class Rejected(Exception):
    """This mutation is not applied; the message goes back to the desk as ``reason``."""


@dataclass
class PushStats:
    accepted: int = 0
    merged: int = 0
    rejected: int = 0
    replayed: int = 0
    conflicts: int = 0


def _result(
    mutation_id: str,
    status: str,
    version: int | None = None,
    reason: str | None = None,
    row: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "mutation_id": mutation_id,
        "status": status,
        "version": version,
        "reason": reason,
        "row": row,
    }


def push(
    db: Database,
    ctx: PushContext,
    mutations: list[MutationIn],
    *,
    after_apply: Callable[[Session], None] | None = None,
    before_commit: Callable[[Session], None] | None = None,
) -> tuple[list[dict[str, Any]], PushStats]:
    """Apply a batch, retried whole on a deadlock or serialization failure.

    The first attempt writes without savepoints (every rule is checked before anything is
    written, so a rejection leaves nothing behind). A database constraint can still trip
    when another process saved the same number a moment earlier, or two mutations in the
    batch clash with each other; then the batch runs again in careful mode, one savepoint
    per mutation, so only the clashing mutation is rejected.
    """
    careful = False
    for attempt in range(6):
        try:
            with db.write() as session:
                answer = _push_once(session, ctx, mutations, after_apply, careful=careful)
                if before_commit is not None:
                    before_commit(session)
                return answer
        except IntegrityError:
            if careful:
                raise
            careful = True
        except OperationalError as exc:  # deadlock, lock timeout, "database is locked"
            if attempt == 5:
                raise
            log.warning("push retried", extra={"error_type": type(exc.orig).__name__})
            time.sleep(0.05 * (attempt + 1))
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            if code not in ("40001", "40P01") or attempt == 5:
                raise
            log.warning("push retried", extra={"error_type": type(exc.orig).__name__})
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _claim_all(session: Session, ctx: PushContext, mutation_ids: list[str]) -> set[str]:
    """Remember mutation ids; returns those seen for the first time (the rest are replays).

    ``INSERT ... ON CONFLICT DO NOTHING``: a concurrent push of the same id waits on the
    unique index until the other transaction ends, so each id is applied exactly once.
    """
    if not mutation_ids:
        return set()
    now = datetime.now(UTC)
    values = [
        {
            "mutation_id": mutation_id,
            "clinic_id": ctx.clinic_id,
            "device_id": ctx.device_id,
            "created_at": now,
            "answer": None,
        }
        for mutation_id in mutation_ids
    ]
    table: Any = AppliedMutation.__table__
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(table).values(values).on_conflict_do_nothing()
    with session.no_autoflush:
        return set(session.scalars(stmt.returning(table.c.mutation_id)))


class BatchRows:
    """The rows a batch touches, read (and locked) up front in one query per entity.

    Rows inserted earlier in the same batch are found here too, before they are flushed.
    """

    def __init__(self, session: Session, clinic_id: str, *, careful: bool) -> None:
        self.session = session
        self.clinic_id = clinic_id
        # Fast mode leaves unique numbers to the database's unique indexes (one round trip
        # per batch instead of one per mutation); a clash makes the batch run again in
        # careful mode, which checks each mutation and rejects only the clashing one.
        self.careful = careful
        self._rows: dict[tuple[str, str], Any] = {}

    def prefetch(self, mutations: list[MutationIn]) -> None:
        wanted: dict[str, set[str]] = {}
        for mutation in mutations:
            if mutation.entity in SYNCED_ENTITIES:
                wanted.setdefault(mutation.entity, set()).add(mutation.row_id)
        with self.session.no_autoflush:
            for entity in protocol.ENTITY_ORDER:  # one lock order for every process
                ids = wanted.get(entity)
                if not ids:
                    continue
                model = SYNCED_ENTITIES[entity]
                found = self.session.scalars(
                    select(model).where(model.id.in_(ids)).order_by(model.id).with_for_update()
                ).all()
                for row_id in ids:
                    self._rows[(entity, row_id)] = None
                for row in found:
                    self._rows[(entity, row.id)] = row

    def get(self, model: type[Any], row_id: str, *, lock: bool = False) -> Any:
        key = (model.__tablename__, row_id)
        if key in self._rows:
            return self._rows[key]
        with self.session.no_autoflush:
            row = self.session.get(model, row_id, with_for_update=lock or None)
        self._rows[key] = row
        return row

    def added(self, row: SyncMixin) -> None:
        self._rows[(entity_of(row), row.id)] = row

    def forget(self) -> None:
        """After a savepoint rollback: read again from the session."""
        self._rows.clear()

    def lookup(self, model: type[Any], row_id: str | None) -> Any:
        if not row_id:
            return None
        row = self.get(model, row_id)
        return row if row is not None and row.clinic_id == self.clinic_id else None


def _push_once(
    session: Session,
    ctx: PushContext,
    mutations: list[MutationIn],
    after_apply: Callable[[Session], None] | None,
    *,
    careful: bool,
) -> tuple[list[dict[str, Any]], PushStats]:
    stats = PushStats()
    changes = ChangeSet(ctx.clinic_id)
    results: list[dict[str, Any] | int] = []  # an int points at an earlier result in the batch
    pending: dict[int, tuple[MutationIn, SyncMixin | None, str]] = {}
    first_index: dict[str, int] = {}
    for index, mutation in enumerate(mutations):
        first_index.setdefault(mutation.mutation_id, index)
    fresh = _claim_all(session, ctx, list(first_index))
    replays = [mid for mid in first_index if mid not in fresh]
    stored_answers: dict[str, AppliedMutation] = {}
    if replays:
        for stored in session.scalars(
            select(AppliedMutation).where(AppliedMutation.mutation_id.in_(replays))
        ):
            stored_answers[stored.mutation_id] = stored
    rows = BatchRows(session, ctx.clinic_id, careful=careful)
    rows.prefetch([m for m in mutations if m.mutation_id in fresh])
    changes.prefetch_stamps(
        session, [(m.entity, m.row_id) for m in mutations if m.mutation_id in fresh]
    )
    for index, mutation in enumerate(mutations):
        if first_index[mutation.mutation_id] != index:
            results.append(first_index[mutation.mutation_id])
            continue
        if mutation.mutation_id not in fresh:
            known = stored_answers.get(mutation.mutation_id)
            stats.replayed += 1
            if known is None or known.clinic_id != ctx.clinic_id or known.answer is None:
                results.append(
                    _result(
                        mutation.mutation_id, "rejected", reason="This change id was already used."
                    )
                )
            else:
                results.append(dict(known.answer))
            continue
        target = ChangeSet(ctx.clinic_id) if careful else changes
        savepoint = session.begin_nested() if careful else None
        try:
            row, status, conflicts = _apply_one(session, ctx, mutation, target, rows)
            if savepoint is not None:
                session.flush()
        except Rejected as exc:
            if savepoint is not None:
                savepoint.rollback()
                rows.forget()
            stats.rejected += 1
            results.append(_result(mutation.mutation_id, "rejected", reason=str(exc)))
            continue
        except IntegrityError:
            if savepoint is None:
                raise
            savepoint.rollback()
            rows.forget()
            stats.rejected += 1
            reason = (
                "This clashes with a record another workstation saved at the same moment "
                "(a number or id already in use)."
            )
            results.append(_result(mutation.mutation_id, "rejected", reason=reason))
            continue
        if savepoint is not None:
            savepoint.commit()
            changes.merge_from(target)
        stats.conflicts += conflicts
        if status == "merged":
            stats.merged += 1
        else:
            stats.accepted += 1
        pending[index] = (mutation, row, status)
        results.append({})  # filled in once versions are known
    if after_apply is not None:
        after_apply(session)
    changes.finish(session)
    answers: list[dict[str, Any]] = []
    to_store: list[dict[str, Any]] = []
    for index, item in enumerate(results):
        if isinstance(item, int):
            answers.append(answers[item])
            continue
        if index in pending:
            mutation, row, status = pending[index]
            item = _result(
                mutation.mutation_id,
                status,
                version=row.version if row is not None else None,
                row=row_fields(row) if row is not None else None,
            )
        if item["mutation_id"] in fresh:
            to_store.append({"mutation_id": item["mutation_id"], "answer": item})
        answers.append(item)
    if to_store:
        session.execute(update(AppliedMutation), to_store)
    return answers, stats


def resolve_actor(session: Session, ctx: PushContext, actor_id: str | None) -> Actor:
    """The actor a mutation is attributed to (see docs/sync-protocol.md, ``actor_id``)."""
    if actor_id is None or actor_id == ctx.user.user_id:
        return ctx.user
    cached = ctx._actors.get(actor_id)
    if cached is None:
        user = session.get(User, actor_id)
        if user is None or user.clinic_id != ctx.clinic_id or user.deleted:
            cached = "The user who made this change is unknown to the server."
        elif user.disabled:
            cached = "The account of the user who made this change is disabled."
        elif session.get(DeviceUser, (ctx.device_id, actor_id)) is None:
            cached = (
                "The user who made this change has not signed in on this workstation "
                "while it was connected; sign in once online, then retry."
            )
        else:
            cached = Actor(user.id, frozenset(user.roles or []))
        ctx._actors[actor_id] = cached
    if isinstance(cached, str):
        raise Rejected(cached)
    return cached


def _stamp_origin(session: Session, changes: ChangeSet) -> Callable[[Any, str], str | None]:
    def stamp_origin(row: Any, name: str) -> str | None:
        stamp = changes.peek_stamp(session, row)
        value = (stamp.stamps or {}).get(name) if stamp is not None else None
        if isinstance(value, dict):
            return str(value.get("o"))
        return row.origin

    return stamp_origin


def _references_problem(rows: BatchRows, model: type[Any], values: dict[str, Any]) -> None:
    """Every reference must point at a row of the same clinic that the server has."""
    for column in model.__table__.columns:
        value = values.get(column.name)
        if value is None:
            continue
        for fk in column.foreign_keys:
            target_name = fk.column.table.name
            target = SYNCED_ENTITIES.get(target_name)
            if target is not None and rows.lookup(target, value) is None:
                raise Rejected(
                    f"Field {column.name!r} refers to a {target_name.replace('_', ' ')} the "
                    "server does not have (its own change may have been rejected)."
                )


def _unique_message(table: str, columns: list[str], values: list[Any]) -> str:
    if "patient_number" in columns:
        return f"Patient number {values[-1]} is already used by another patient."
    if "invoice_number" in columns:
        return f"Invoice number {values[-1]} is already used by another bill."
    if "token_label" in columns:
        return f"Token {values[-1]} is already used on {values[-2]}."
    if "desk_code" in columns:
        return f"Desk code {values[-1]} is already used by another workstation."
    if "username" in columns:
        return f"The user name {values[-1]} is already taken."
    return f"This {table.replace('_', ' ')} duplicates one the server already has."


def _unique_problem(
    session: Session, model: type[Any], row_id: str, after: dict[str, Any], changed: set[str]
) -> None:
    """Human-facing numbers stay unique; a clash is rejected, never renumbered.

    Checked against committed rows; a clash inside one batch, or with a push committing at
    the same moment, trips the database's unique index instead (see :func:`push`).
    """
    for constraint in model.__table__.constraints:
        if not isinstance(constraint, UniqueConstraint):
            continue
        names = [column.name for column in constraint.columns]
        if not set(names) & changed:
            continue
        values = [after.get(name) for name in names]
        if any(value is None for value in values):
            continue
        query = select(model.id).where(model.id != row_id)
        for name, value in zip(names, values, strict=True):
            query = query.where(getattr(model, name) == value)
        with session.no_autoflush:
            clash = session.execute(query.limit(1)).first()
        if clash is not None:
            raise Rejected(
                _unique_message(model.__tablename__, names, [to_json_value(v) for v in values])
            )


def _apply_one(
    session: Session, ctx: PushContext, mutation: MutationIn, changes: ChangeSet, rows: BatchRows
) -> tuple[SyncMixin | None, str, int]:
    """Apply one mutation; returns (row, status, number of conflict records).

    Every check runs before the first write, so a :class:`Rejected` leaves nothing behind.
    """
    model = SYNCED_ENTITIES.get(mutation.entity)
    if model is None:
        raise Rejected(f"Unknown entity {mutation.entity!r}.")
    actor = resolve_actor(session, ctx, mutation.actor_id)
    fields = {k: v for k, v in mutation.fields.items() if k not in SyncMixin.SYNC_COLUMNS}
    if fields.pop("id", mutation.row_id) != mutation.row_id:
        raise Rejected("The row id in the fields does not match row_id.")
    if fields.pop("clinic_id", ctx.clinic_id) != ctx.clinic_id:
        raise Rejected("This record belongs to another clinic.")
    problem = fields_problem(model, fields)
    if problem:
        raise Rejected(problem)
    problem = value_problem(mutation.entity, fields)
    if problem:
        raise Rejected(problem)
    values = decode_fields(model, fields)
    ctx.clock.observe(mutation.hlc)
    row = rows.get(model, mutation.row_id, lock=True)
    if row is not None and row.clinic_id != ctx.clinic_id:
        raise Rejected("This id is already used by a record the server cannot share.")
    if row is None:
        if mutation.op == "update":
            raise Rejected(
                f"The server has no such {mutation.entity.replace('_', ' ')}; the change that "
                "created it was probably rejected."
            )
        inserted = _insert(session, ctx, mutation, model, values, actor, changes, rows)
        return inserted, "accepted", 0
    if getattr(model, "__sync_policy__", "fields") == "append_only":
        label = mutation.entity.replace("_", " ")
        if mutation.op == "update":
            raise Rejected(f"{label.capitalize()}s never change once written.")
        if all(getattr(row, key) == value for key, value in values.items()):
            return row, "accepted", 0  # the same row again: idempotent
        raise Rejected(f"A {label} with this id already exists with other content.")
    return _update(session, ctx, mutation, model, row, values, actor, changes, rows)


def _insert(
    session: Session,
    ctx: PushContext,
    mutation: MutationIn,
    model: type[Any],
    values: dict[str, Any],
    actor: Actor,
    changes: ChangeSet,
    rows: BatchRows,
) -> SyncMixin:
    missing = missing_required(model, values)
    if missing:
        raise Rejected(f"Missing field(s): {', '.join(missing)}.")
    row = model(
        id=mutation.row_id,
        clinic_id=ctx.clinic_id,
        updated_at=mutation.hlc,
        updated_by=actor.user_id,
        origin=ctx.device_id,
        **values,
    )
    after = {name: getattr(row, name) for name in column_specs(model)}
    problem = permission_problem(mutation.entity, "insert", actor, None, values, after, rows.lookup)
    if problem:
        raise Rejected(problem)
    problem = frozen_problem(
        mutation.entity,
        "insert",
        None,
        values,
        after,
        rows.lookup,
        _stamp_origin(session, changes),
        ctx.device_id,
    )
    if problem:
        raise Rejected(problem)
    _references_problem(rows, model, values)
    if rows.careful:
        _unique_problem(session, model, row.id, after, set(values) | {"clinic_id"})
    session.add(row)
    rows.added(row)
    if getattr(model, "__sync_policy__", "fields") != "append_only":
        names = [name for name in values if name not in SyncMixin.SYNC_COLUMNS]
        changes.set_stamps(session, row, names, mutation.hlc, ctx.device_id, actor.user_id)
    changes.touch(row, mutation.mutation_id)
    return row


def _update(
    session: Session,
    ctx: PushContext,
    mutation: MutationIn,
    model: type[Any],
    row: SyncMixin,
    values: dict[str, Any],
    actor: Actor,
    changes: ChangeSet,
    rows: BatchRows,
) -> tuple[SyncMixin, str, int]:
    entity = mutation.entity
    attempted = {k: v for k, v in values.items() if getattr(row, k) != v}
    stamp_row = changes.stamp_row(session, row)
    stamps: dict[str, Any] = dict(stamp_row.stamps or {})
    default_stamp: dict[str, Any] = {
        "at": row.updated_at,
        "v": row.version,
        "o": row.origin,
        "by": row.updated_by,
    }
    foreign_change = any(
        isinstance(s, dict)
        and s.get("v", 0) > mutation.base_version
        and s.get("o") != ctx.device_id
        for s in (stamps.values() if stamps else [default_stamp])
    )
    if not attempted:
        return row, ("merged" if foreign_change else "accepted"), 0
    after = {name: getattr(row, name) for name in column_specs(model)} | attempted
    problem = permission_problem(entity, "update", actor, row, attempted, after, rows.lookup)
    if problem:
        raise Rejected(problem)
    problem = frozen_problem(
        entity,
        "update",
        row,
        attempted,
        after,
        rows.lookup,
        _stamp_origin(session, changes),
        ctx.device_id,
    )
    if problem:
        raise Rejected(problem)

    def concurrent(stamp: dict[str, Any]) -> bool:
        return bool(stamp.get("v", 0) > mutation.base_version and stamp.get("o") != ctx.device_id)

    lost: list[tuple[str, Any, dict[str, Any], Any, dict[str, Any]]] = []
    applied: dict[str, Any] = {}
    incoming_stamp = {"at": mutation.hlc, "o": ctx.device_id, "by": actor.user_id}
    if entity == "visit" and "status" in attempted:
        current, wanted = getattr(row, "status"), attempted.pop("status")  # noqa: B009
        server_stamp = stamps.get("status") or default_stamp
        backwards = current in TERMINAL_STATUSES or STATUS_RANK.get(wanted, -1) <= STATUS_RANK.get(
            current, -1
        )
        if backwards:
            if not attempted:
                raise Rejected(
                    f"The visit is already {current.replace('_', ' ')}; its status cannot "
                    f"change to {wanted.replace('_', ' ')}."
                )
            lost.append(("status", current, server_stamp, wanted, incoming_stamp))
        else:
            applied["status"] = wanted
            if concurrent(server_stamp):
                lost.append(("status", wanted, incoming_stamp, current, server_stamp))

    for name, value in attempted.items():
        server_stamp = stamps.get(name) or default_stamp
        current = getattr(row, name)
        if not concurrent(server_stamp):
            applied[name] = value
        elif mutation.hlc > str(server_stamp.get("at", "")):
            applied[name] = value
            lost.append((name, value, incoming_stamp, current, server_stamp))
        else:
            lost.append((name, current, server_stamp, value, incoming_stamp))

    if applied:
        prospective = {name: getattr(row, name) for name in column_specs(model)} | applied
        _references_problem(rows, model, applied)
        if rows.careful:
            _unique_problem(session, model, row.id, prospective, set(applied))
        for name, value in applied.items():
            setattr(row, name, value)
        row.updated_at = max(row.updated_at or "", mutation.hlc)
        row.updated_by = actor.user_id
        row.origin = ctx.device_id
        changes.set_stamps(session, row, list(applied), mutation.hlc, ctx.device_id, actor.user_id)
        changes.touch(row, mutation.mutation_id)
    for name, kept, kept_stamp, loser, loser_stamp in lost:
        record = ConflictRecord(
            id=new_id(),
            clinic_id=ctx.clinic_id,
            entity=entity,
            row_id=row.id,
            field=name,
            kept_value={
                "v": to_json_value(kept),
                "at": kept_stamp.get("at"),
                "origin": kept_stamp.get("o"),
            },
            lost_value={
                "v": to_json_value(loser),
                "at": loser_stamp.get("at"),
                "origin": loser_stamp.get("o"),
            },
            lost_origin=str(loser_stamp.get("o") or ""),
            lost_by=loser_stamp.get("by"),
            resolution="open",
            note="",
            updated_at=ctx.clock.now(),
            updated_by=None,
            origin=SERVER_ORIGIN,
        )
        session.add(record)
        rows.added(record)
        changes.touch(record, mutation.mutation_id)
    status = "merged" if (foreign_change or lost) else "accepted"
    return row, status, len(lost)


def server_write(
    session: Session,
    changes: ChangeSet,
    row: SyncMixin,
    values: dict[str, Any],
    clock: HybridLogicalClock,
    user_id: str | None = None,
) -> None:
    """A change the server makes itself (sign-in lock-out, enrolment, bootstrap)."""
    stamp = clock.now()
    is_new = row not in session
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = stamp
    row.updated_by = user_id
    row.origin = SERVER_ORIGIN
    if is_new:
        session.add(row)
    session.flush()
    names = (
        list(values)
        if not is_new
        else [
            n
            for n in row_fields(row)
            if n not in SyncMixin.SYNC_COLUMNS and n not in ("id", "clinic_id")
        ]
    )
    if getattr(type(row), "__sync_policy__", "fields") != "append_only":
        changes.set_stamps(session, row, names, stamp, SERVER_ORIGIN, user_id)
    changes.touch(row)


__all__ = ["MutationIn", "PushContext", "PushStats", "Rejected", "push", "server_write"]
