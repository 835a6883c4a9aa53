"""Pulling changes after the cursor, and the paged snapshot of a first sync (or after 410).

Each pulled page is applied and the cursor moved in ONE local transaction; each snapshot
page is committed together with its page cursor. A crash at any point therefore resumes
exactly where the last commit left off, and re-applying a row is harmless (versions only
move forward).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clinic_desktop.services.context import Desk
from clinic_desktop.sync import protocol, state
from clinic_desktop.sync.apply import ChangedRows, apply_rows
from clinic_desktop.sync.state import reading, sync_session
from clinic_desktop.sync.transport import Transport

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
# Wraps each local apply step; the worker uses it to keep pulls and pushes apart.
Guard = Callable[[], AbstractContextManager[Any]]


@dataclass
class PullReport:
    pages: int = 0
    rows: int = 0
    cursor: int = 0
    changed: ChangedRows = field(default_factory=ChangedRows)


def current_cursor(desk: Desk) -> int | None:
    """The pull cursor, or ``None`` when this desk has never completed a snapshot."""
    with reading(desk) as session:
        return state.get_int(session, state.PULL_CURSOR)


def needs_snapshot(desk: Desk) -> bool:
    with reading(desk) as session:
        values = state.get_many(session, state.PULL_CURSOR, state.SNAPSHOT_CURSOR)
    return state.PULL_CURSOR not in values or state.SNAPSHOT_CURSOR in values


def forget_cursor(desk: Desk) -> None:
    """After 410: the next cycle takes a fresh snapshot. The outbox is left untouched."""
    with sync_session(desk) as session:
        state.drop(session, state.PULL_CURSOR, *state.SNAPSHOT_KEYS)


def mark_success(desk: Desk) -> datetime:
    now = datetime.now(UTC)
    with sync_session(desk) as session:
        state.put(session, state.LAST_SUCCESS, now.isoformat())
    return now


def last_success(desk: Desk) -> datetime | None:
    with reading(desk) as session:
        value = state.get(session, state.LAST_SUCCESS)
    return datetime.fromisoformat(value) if value else None


def apply_changes(
    desk: Desk, changes: list[protocol.Change], cursor: int, *, expect_after: int | None = None
) -> ChangedRows:
    """Apply one page and move the cursor, in one transaction."""
    changed = ChangedRows()
    by_entity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    order: list[str] = []
    for change in changes:
        entity = change["entity"]
        if entity not in by_entity:
            order.append(entity)
        by_entity[entity].append(change["row"])
    # Parents first where the protocol defines an order; unknown entities last.
    rank = {name: i for i, name in enumerate(protocol.ENTITY_ORDER)}
    order.sort(key=lambda name: rank.get(name, len(rank)))
    with sync_session(desk) as session:
        if expect_after is not None:
            stored = state.get_int(session, state.PULL_CURSOR)
            if stored is not None and stored != expect_after:
                # Someone else (another sync loop on this store) moved the cursor meanwhile;
                # re-applying is harmless, but never move the cursor backwards.
                cursor = max(cursor, stored)
        for entity in order:
            changed.add(entity, apply_rows(session, entity, by_entity[entity], desk.clock))
        state.put(session, state.PULL_CURSOR, str(cursor))
    return changed


def pull_page(
    desk: Desk, transport: Transport, *, wait: float, limit: int, guard: Guard | None = None
) -> tuple[PullReport, bool]:
    """Fetch and apply one page; returns the report and whether the server has more."""
    report = PullReport()
    cursor = current_cursor(desk)
    if cursor is None:
        raise RuntimeError("pull before the first snapshot")
    page = transport.changes(cursor, limit=limit, wait=wait)
    new_cursor = int(page["cursor"])
    changes = list(page["changes"])
    if changes or new_cursor != cursor:
        with guard() if guard is not None else nullcontext():
            report.changed = apply_changes(
                desk, changes, max(new_cursor, cursor), expect_after=cursor
            )
    report.pages = 1
    report.rows = len(changes)
    report.cursor = max(new_cursor, cursor)
    return report, bool(page.get("more"))


def pull_all(
    desk: Desk,
    transport: Transport,
    *,
    wait: float = 0.0,
    limit: int = protocol.DEFAULT_PULL_LIMIT,
    max_pages: int | None = None,
) -> PullReport:
    """Pull until the server says there is no more; the first request may long-poll."""
    total = PullReport()
    while max_pages is None or total.pages < max_pages:
        report, more = pull_page(desk, transport, wait=wait if total.pages == 0 else 0, limit=limit)
        total.pages += 1
        total.rows += report.rows
        total.cursor = report.cursor
        total.changed.update(report.changed)
        if not more:
            break
    return total


@dataclass
class SnapshotReport:
    rows: int = 0
    total: int = 0
    cursor: int = 0


def run_snapshot(
    desk: Desk,
    transport: Transport,
    *,
    page_size: int = protocol.DEFAULT_SNAPSHOT_LIMIT,
    progress: ProgressCallback | None = None,
    changed_sink: Callable[[ChangedRows], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    guard: Guard | None = None,
) -> SnapshotReport:
    """Download the whole clinic page by page; resumes an interrupted download.

    On success the pull cursor is the snapshot's high-water mark and the snapshot keys are
    gone. ``should_stop`` lets the worker end cleanly between pages.
    """
    with reading(desk) as session:
        saved = state.get_many(session, *state.SNAPSHOT_KEYS)
    if state.SNAPSHOT_CURSOR not in saved:
        start = transport.snapshot_start()
        entities = [e for e in start["entities"]]
        total = int(sum(int(v) for v in (start.get("counts") or {}).values()))
        with sync_session(desk) as session:
            state.put(session, state.SNAPSHOT_CURSOR, str(int(start["cursor"])))
            state.put(session, state.SNAPSHOT_ENTITIES, entities)
            state.put(session, state.SNAPSHOT_INDEX, "0")
            state.put(session, state.SNAPSHOT_AFTER_ID, "")
            state.put(session, state.SNAPSHOT_DONE, "0")
            state.put(session, state.SNAPSHOT_TOTAL, str(total))
        saved = {
            state.SNAPSHOT_CURSOR: str(int(start["cursor"])),
            state.SNAPSHOT_ENTITIES: json.dumps(entities),
            state.SNAPSHOT_INDEX: "0",
            state.SNAPSHOT_AFTER_ID: "",
            state.SNAPSHOT_DONE: "0",
            state.SNAPSHOT_TOTAL: str(total),
        }
    snap_cursor = int(saved[state.SNAPSHOT_CURSOR])
    entities = list(json.loads(saved[state.SNAPSHOT_ENTITIES]))
    index = int(saved.get(state.SNAPSHOT_INDEX) or 0)
    after_id = saved.get(state.SNAPSHOT_AFTER_ID) or None
    done = int(saved.get(state.SNAPSHOT_DONE) or 0)
    total = int(saved.get(state.SNAPSHOT_TOTAL) or 0)
    report = SnapshotReport(rows=0, total=total, cursor=snap_cursor)
    if progress is not None:
        progress(done, total)
    # The next page is fetched while this one is written: the server's work and the local
    # insert overlap (the page cursor is known as soon as a page arrives).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="clinic-snapshot") as pool:
        ahead: Future[protocol.SnapshotPage] | None = None
        while index < len(entities):
            if should_stop is not None and should_stop():
                return report
            entity = entities[index]
            page = (
                ahead.result()
                if ahead is not None
                else transport.snapshot_page(entity, after_id, page_size)
            )
            ahead = None
            rows = list(page["rows"])
            # ``last_id`` is null once the entity is done (protocol: snapshot step 2).
            last_id = page.get("last_id")
            finished = not rows or last_id is None
            next_index, next_after = (index + 1, None) if finished else (index, last_id)
            if next_index < len(entities):
                ahead = pool.submit(
                    transport.snapshot_page, entities[next_index], next_after, page_size
                )
            with guard() if guard is not None else nullcontext(), sync_session(desk) as session:
                changed_ids = apply_rows(session, entity, rows, desk.clock)
                done += len(rows)
                index, after_id = next_index, next_after
                state.put(session, state.SNAPSHOT_INDEX, str(index))
                state.put(session, state.SNAPSHOT_AFTER_ID, after_id or "")
                state.put(session, state.SNAPSHOT_DONE, str(done))
            report.rows += len(rows)
            if changed_ids and changed_sink is not None:
                page_changes = ChangedRows()
                page_changes.add(entity, changed_ids)
                changed_sink(page_changes)
            if progress is not None:
                progress(done, max(total, done))
    with sync_session(desk) as session:
        state.put(session, state.PULL_CURSOR, str(snap_cursor))
        state.drop(session, *state.SNAPSHOT_KEYS)
    if progress is not None:
        progress(max(total, done), max(total, done))
    return report
