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
from clinic_server.sync.rules import Actor, frozen_problem, permission_problem
from clinic_server.sync.validate import column_specs, fields_problem, missing_required
from clinic_server.tables import AppliedMutation, DeviceUser, RowStamp

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
    """Apply a batch; retried whole when the database reports a deadlock or serialization
    failure (two pushes locking the same rows in opposite order)."""
    for attempt in range(5):
        try:
            with db.write() as session:
                answer = _push_once(session, ctx, mutations, after_apply)
                if before_commit is not None:
                    before_commit(session)
                return answer
        except OperationalError as exc:  # deadlock, lock timeout, "database is locked"
            if attempt == 4:
                raise
            log.warning("push retried", extra={"error_type": type(exc.orig).__name__})
            time.sleep(0.05 * (attempt + 1))
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            if code not in ("40001", "40P01") or attempt == 4:
                raise
            log.warning("push retried", extra={"error_type": type(exc.orig).__name__})
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _claim(session: Session, ctx: PushContext, mutation_id: str) -> bool:
    """Remember the mutation id; ``False`` when it was seen before (a replay)."""
    values = {
        "mutation_id": mutation_id,
        "clinic_id": ctx.clinic_id,
        "device_id": ctx.device_id,
        "created_at": datetime.now(UTC),
        "answer": None,
    }
    table: Any = AppliedMutation.__table__
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(table).values(values).on_conflict_do_nothing()
    result = session.execute(stmt.returning(table.c.mutation_id))
    return result.first() is not None


def _push_once(
    session: Session,
    ctx: PushContext,
    mutations: list[MutationIn],
    after_apply: Callable[[Session], None] | None,
) -> tuple[list[dict[str, Any]], PushStats]:
    stats = PushStats()
    changes = ChangeSet(ctx.clinic_id)
    results: list[dict[str, Any] | int] = []  # an int points at an earlier result in the batch
    pending: dict[int, tuple[MutationIn, SyncMixin | None, str]] = {}
    first_index: dict[str, int] = {}
    for index, mutation in enumerate(mutations):
        if mutation.mutation_id in first_index:
            results.append(first_index[mutation.mutation_id])
            continue
        first_index[mutation.mutation_id] = index
        if not _claim(session, ctx, mutation.mutation_id):
            stored = session.get(AppliedMutation, mutation.mutation_id)
            stats.replayed += 1
            if stored is None or stored.clinic_id != ctx.clinic_id or stored.answer is None:
                results.append(
                    _result(
                        mutation.mutation_id, "rejected", reason="This change id was already used."
                    )
                )
            else:
                results.append(dict(stored.answer))
            continue
        local = ChangeSet(ctx.clinic_id)
        savepoint = session.begin_nested()
        try:
            row, status, conflicts = _apply_one(session, ctx, mutation, local)
            session.flush()
        except Rejected as exc:
            savepoint.rollback()
            stats.rejected += 1
            results.append(_result(mutation.mutation_id, "rejected", reason=str(exc)))
            continue
        except IntegrityError:
            savepoint.rollback()
            stats.rejected += 1
            reason = (
                "This clashes with a record another workstation saved at the same moment "
                "(a number or id already in use)."
            )
            results.append(_result(mutation.mutation_id, "rejected", reason=reason))
            continue
        savepoint.commit()
        changes.merge_from(local)
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
            to_store.append({"mutation_id": mutation.mutation_id, "answer": item})
        elif item.get("status") == "rejected" and index == first_index.get(item["mutation_id"]):
            stored = session.get(AppliedMutation, item["mutation_id"])
            if stored is not None and stored.answer is None:
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


def _lookup(session: Session, clinic_id: str) -> Callable[[type[Any], str | None], Any]:
    def lookup(model: type[Any], row_id: str | None) -> Any:
        if not row_id:
            return None
        row = session.get(model, row_id)
        return row if row is not None and row.clinic_id == clinic_id else None

    return lookup


def _stamp_origin(session: Session) -> Callable[[Any, str], str | None]:
    def stamp_origin(row: Any, name: str) -> str | None:
        stamp = session.get(RowStamp, (entity_of(row), row.id))
        value = (stamp.stamps or {}).get(name) if stamp is not None else None
        if isinstance(value, dict):
            return str(value.get("o"))
        return row.origin

    return stamp_origin


def _references_problem(
    session: Session, model: type[Any], values: dict[str, Any], clinic_id: str
) -> None:
    """Every reference must point at a row of the same clinic that the server has."""
    lookup = _lookup(session, clinic_id)
    for column in model.__table__.columns:
        value = values.get(column.name)
        if value is None:
            continue
        for fk in column.foreign_keys:
            target_name = fk.column.table.name
            target = SYNCED_ENTITIES.get(target_name)
            if target is not None and lookup(target, value) is None:
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


def _unique_problem(session: Session, model: type[Any], row: SyncMixin, changed: set[str]) -> None:
    """Human-facing numbers stay unique; a clash is rejected, never renumbered."""
    for constraint in model.__table__.constraints:
        if not isinstance(constraint, UniqueConstraint):
            continue
        names = [column.name for column in constraint.columns]
        if not set(names) & changed:
            continue
        values = [getattr(row, name) for name in names]
        if any(value is None for value in values):
            continue
        query = select(model.id).where(model.id != row.id)
        for name, value in zip(names, values, strict=True):
            query = query.where(getattr(model, name) == value)
        with session.no_autoflush:
            clash = session.execute(query.limit(1)).first()
        if clash is not None:
            raise Rejected(
                _unique_message(model.__tablename__, names, [to_json_value(v) for v in values])
            )


def _apply_one(
    session: Session, ctx: PushContext, mutation: MutationIn, changes: ChangeSet
) -> tuple[SyncMixin | None, str, int]:
    """Apply one mutation; returns (row, status, number of conflict records)."""
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
    values = decode_fields(model, fields)
    ctx.clock.observe(mutation.hlc)
    row = session.get(model, mutation.row_id, with_for_update=True, populate_existing=True)
    if row is not None and row.clinic_id != ctx.clinic_id:
        raise Rejected("This id is already used by a record the server cannot share.")
    if row is None:
        if mutation.op == "update":
            raise Rejected(
                f"The server has no such {mutation.entity.replace('_', ' ')}; the change that "
                "created it was probably rejected."
            )
        return _insert(session, ctx, mutation, model, values, actor, changes), "accepted", 0
    if getattr(model, "__sync_policy__", "fields") == "append_only":
        if mutation.op == "update":
            raise Rejected(
                f"{mutation.entity.replace('_', ' ').capitalize()}s never change once written."
            )
        if all(getattr(row, key) == value for key, value in values.items()):
            return row, "accepted", 0  # the same row again: idempotent
        raise Rejected(
            f"A {mutation.entity.replace('_', ' ')} with this id already exists with other content."
        )
    return _update(session, ctx, mutation, model, row, values, actor, changes)


def _insert(
    session: Session,
    ctx: PushContext,
    mutation: MutationIn,
    model: type[Any],
    values: dict[str, Any],
    actor: Actor,
    changes: ChangeSet,
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
    lookup = _lookup(session, ctx.clinic_id)
    problem = permission_problem(mutation.entity, "insert", actor, None, values, after, lookup)
    if problem:
        raise Rejected(problem)
    problem = frozen_problem(
        mutation.entity,
        "insert",
        None,
        values,
        after,
        lookup,
        _stamp_origin(session),
        ctx.device_id,
    )
    if problem:
        raise Rejected(problem)
    _references_problem(session, model, values, ctx.clinic_id)
    _unique_problem(session, model, row, set(values) | {"clinic_id"})
    session.add(row)
    session.flush()
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
    lookup = _lookup(session, ctx.clinic_id)
    after = {name: getattr(row, name) for name in column_specs(model)} | attempted
    problem = permission_problem(entity, "update", actor, row, attempted, after, lookup)
    if problem:
        raise Rejected(problem)
    problem = frozen_problem(
        entity, "update", row, attempted, after, lookup, _stamp_origin(session), ctx.device_id
    )
    if problem:
        raise Rejected(problem)

    lost: list[tuple[str, Any, dict[str, Any], Any, dict[str, Any]]] = []
    applied: dict[str, Any] = {}
    incoming_stamp = {"at": mutation.hlc, "o": ctx.device_id, "by": actor.user_id}
    if entity == "visit" and "status" in attempted:
        current, wanted = row.status, attempted["status"]  # type: ignore[attr-defined]
        backwards = current in TERMINAL_STATUSES or STATUS_RANK.get(wanted, -1) <= STATUS_RANK.get(
            current, -1
        )
        if backwards:
            if len(attempted) == 1:
                raise Rejected(
                    f"The visit is already {current.replace('_', ' ')}; its status cannot "
                    f"change to {wanted.replace('_', ' ')}."
                )
            del attempted["status"]
            server_stamp = stamps.get("status") or default_stamp
            lost.append(("status", current, server_stamp, wanted, incoming_stamp))
        else:
            applied["status"] = wanted
            server_stamp = stamps.get("status") or default_stamp
            if (
                server_stamp.get("v", 0) > mutation.base_version
                and server_stamp.get("o") != ctx.device_id
            ):
                lost.append(("status", wanted, incoming_stamp, current, server_stamp))
            del attempted["status"]

    for name, value in attempted.items():
        server_stamp = stamps.get(name) or default_stamp
        concurrent = (
            server_stamp.get("v", 0) > mutation.base_version
            and server_stamp.get("o") != ctx.device_id
        )
        current = getattr(row, name)
        if not concurrent:
            applied[name] = value
        elif mutation.hlc > str(server_stamp.get("at", "")):
            applied[name] = value
            lost.append((name, value, incoming_stamp, current, server_stamp))
        else:
            lost.append((name, current, server_stamp, value, incoming_stamp))

    if applied:
        for name, value in applied.items():
            setattr(row, name, value)
        _references_problem(session, model, applied, ctx.clinic_id)
        _unique_problem(session, model, row, set(applied))
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


__all__ = ["MutationIn", "PushContext", "PushStats", "Rejected", "protocol", "push", "server_write"]
