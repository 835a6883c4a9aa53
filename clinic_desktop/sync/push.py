"""Draining the outbox: send pending mutations in outbox order and record each answer.

Crash safety: entries stay ``pending`` until the server's answers are committed locally, in
one transaction. If the desk dies between sending and that commit, the same mutation ids
go again and the server returns its stored answers, so nothing is applied twice and nothing
is lost. A rejected mutation becomes a :class:`SyncProblem` for an admin; it is never
dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from clinic_desktop.models import OutboxEntry, SyncProblem
from clinic_desktop.services.context import Desk
from clinic_desktop.sync import protocol
from clinic_desktop.sync.apply import PENDING, ChangedRows, apply_rows, entity_info
from clinic_desktop.sync.state import reading, sync_session
from clinic_desktop.sync.transport import Transport

log = logging.getLogger(__name__)

DONE = "done"
REJECTED = "rejected"
# Answered entries are kept for a while (diagnosis, crash tests), then pruned.
KEEP_DONE = 5000


@dataclass
class PushReport:
    """What one :func:`push_pending` call achieved."""

    sent: int = 0
    accepted: int = 0
    merged: int = 0
    rejected: int = 0
    changed: ChangedRows = field(default_factory=ChangedRows)


def pending_count(desk: Desk) -> int:
    with reading(desk) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(OutboxEntry).where(OutboxEntry.state == PENDING)
            )
            or 0
        )


def _next_batch(desk: Desk, limit: int) -> list[OutboxEntry]:
    with reading(desk) as session:
        entries = list(
            session.scalars(
                select(OutboxEntry)
                .where(OutboxEntry.state == PENDING)
                .order_by(OutboxEntry.seq)
                .limit(limit)
            ).all()
        )
        session.expunge_all()  # used after the session ends
        return entries


def to_mutation(entry: OutboxEntry) -> protocol.Mutation:
    op: protocol.Op = "insert" if entry.op == "insert" else "update"
    mutation: protocol.Mutation = {
        "mutation_id": entry.mutation_id,
        "entity": entry.entity,
        "row_id": entry.row_id,
        "op": op,
        "fields": dict(entry.fields or {}),
        "base_version": entry.base_version,
        "hlc": entry.hlc,
    }
    if entry.actor_id:
        mutation["actor_id"] = entry.actor_id
    return mutation


def push_batch(
    desk: Desk, transport: Transport, batch_size: int = protocol.MAX_BATCH
) -> PushReport:
    """Send one batch of pending entries and commit the answers; empty report if none."""
    report = PushReport()
    entries = _next_batch(desk, min(batch_size, protocol.MAX_BATCH))
    if not entries:
        return report
    results = transport.push([to_mutation(e) for e in entries])
    report.sent = len(entries)
    with sync_session(desk) as session:
        record_results(session, desk, entries, results, report)
    refused = [
        (e.entity, e.row_id)
        for e, r in zip(entries, results, strict=True)
        if r.get("status") == protocol.REJECTED and e.op == "update" and not r.get("row")
    ]
    if refused:
        report.changed.update(restore_server_copies(desk, transport, refused))
    return report


def restore_server_copies(
    desk: Desk, transport: Transport, rows: list[tuple[str, str]]
) -> ChangedRows:
    """Undo refused local edits: fetch each row's server copy and apply it.

    A refusal carries no row, so the copy is read through the snapshot endpoint, asking for
    the first row after the id's own prefix (that is the row itself). Best effort: if the
    server cannot be reached now, the row stays as edited until its next change arrives,
    and the sync problem stays listed.
    """
    changed = ChangedRows()
    for entity, row_id in dict.fromkeys(rows):
        try:
            page = transport.snapshot_page(entity, row_id[:-1], 1)
        except Exception:
            log.info("could not fetch the server copy of a refused %s change", entity)
            continue
        found = [row for row in page.get("rows", []) if str(row.get("id")) == row_id]
        if not found:
            continue
        with sync_session(desk) as session:
            changed.add(entity, apply_rows(session, entity, found, desk.clock, at_least=True))
    return changed


def record_results(
    session: Session,
    desk: Desk,
    entries: list[OutboxEntry],
    results: list[protocol.MutationResult],
    report: PushReport,
) -> None:
    """Commit the server's answers: entries leave ``pending`` first, then rows are updated.

    Marking first matters: the returned rows must be protected only by mutations that are
    still unanswered, not by the ones being answered now.
    """
    rows_to_apply: list[tuple[str, dict[str, Any], bool]] = []
    versions: list[tuple[OutboxEntry, int]] = []
    for entry, result in zip(entries, results, strict=True):
        status = result.get("status")
        if status in (protocol.ACCEPTED, protocol.MERGED):
            session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.seq == entry.seq, OutboxEntry.state == PENDING)
                .values(state=DONE, attempts=OutboxEntry.attempts + 1, last_error="")
            )
            if status == protocol.ACCEPTED:
                report.accepted += 1
            else:
                report.merged += 1
            version = int(result.get("version") or 0)
            if version:
                versions.append((entry, version))
            row = result.get("row")
            if row:
                rows_to_apply.append((entry.entity, dict(row), False))
        else:
            reason = str(result.get("reason") or "The server refused this change.")
            session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.seq == entry.seq, OutboxEntry.state == PENDING)
                .values(state=REJECTED, attempts=OutboxEntry.attempts + 1, last_error=reason)
            )
            if (
                session.scalar(
                    select(SyncProblem.id).where(SyncProblem.mutation_id == entry.mutation_id)
                )
                is None
            ):
                session.add(
                    SyncProblem(
                        mutation_id=entry.mutation_id,
                        entity=entry.entity,
                        row_id=entry.row_id,
                        fields={"op": entry.op, "fields": dict(entry.fields or {})},
                        reason=reason,
                        occurred_at=desk.clock.now(),
                    )
                )
            report.rejected += 1
            row = result.get("row")
            if row:
                # Undo the refused local edit: the server's copy is the truth again.
                rows_to_apply.append((entry.entity, dict(row), True))
    session.flush()
    # Rows first: they carry the new version (and what the server stamped: origin, user).
    for entity, row, at_least in rows_to_apply:
        ids = apply_rows(session, entity, [row], desk.clock, at_least=at_least)
        report.changed.add(entity, ids)
    for entry, version in versions:
        _bump_version(session, entry, version)
        report.changed.add(entry.entity, [entry.row_id])
    _prune(session)


def _bump_version(session: Session, entry: OutboxEntry, version: int) -> None:
    """The row now stands at ``version``; later local edits of it were built on this one."""
    try:
        table = entity_info(entry.entity).table
    except KeyError:
        return
    session.execute(
        table.update()
        .where(table.c.id == entry.row_id, table.c.version < version)
        .values(version=version)
    )
    session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.entity == entry.entity,
            OutboxEntry.row_id == entry.row_id,
            OutboxEntry.state == PENDING,
            OutboxEntry.seq > entry.seq,
            OutboxEntry.base_version < version,
        )
        .values(base_version=version)
    )


def _prune(session: Session) -> None:
    done = session.scalar(
        select(func.count()).select_from(OutboxEntry).where(OutboxEntry.state == DONE)
    )
    if done and done > KEEP_DONE * 2:
        cutoff = session.scalar(
            select(OutboxEntry.seq)
            .where(OutboxEntry.state == DONE)
            .order_by(OutboxEntry.seq.desc())
            .offset(KEEP_DONE)
            .limit(1)
        )
        if cutoff is not None:
            session.execute(
                delete(OutboxEntry).where(OutboxEntry.state == DONE, OutboxEntry.seq <= cutoff)
            )


def push_pending(
    desk: Desk,
    transport: Transport,
    *,
    batch_size: int = protocol.MAX_BATCH,
    max_batches: int | None = None,
) -> PushReport:
    """Drain the outbox batch by batch until it is empty (or ``max_batches`` were sent)."""
    total = PushReport()
    batches = 0
    while max_batches is None or batches < max_batches:
        report = push_batch(desk, transport, batch_size)
        if not report.sent:
            break
        batches += 1
        total.sent += report.sent
        total.accepted += report.accepted
        total.merged += report.merged
        total.rejected += report.rejected
        total.changed.update(report.changed)
    return total
