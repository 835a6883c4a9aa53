"""One synchronous sync cycle, for tools, tests and benchmarks (the app uses the worker).

Same order and rules as :class:`~clinic_desktop.sync.worker.SyncWorker`: push the whole
outbox first, take a snapshot if this desk has none (or the server said 410), then pull
until there is nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clinic_desktop.services.context import Desk
from clinic_desktop.sync import protocol
from clinic_desktop.sync.apply import ChangedRows
from clinic_desktop.sync.errors import CursorGone
from clinic_desktop.sync.pull import (
    ProgressCallback,
    forget_cursor,
    mark_success,
    needs_snapshot,
    pull_all,
    run_snapshot,
)
from clinic_desktop.sync.push import PushReport, push_pending
from clinic_desktop.sync.transport import Transport


@dataclass
class CycleReport:
    push: PushReport
    snapshots: int = 0
    snapshot_rows: int = 0
    pulled_rows: int = 0
    changed: ChangedRows = field(default_factory=ChangedRows)

    @property
    def rejected(self) -> int:
        return self.push.rejected


def sync_once(
    desk: Desk,
    transport: Transport,
    *,
    push_batch_size: int = protocol.MAX_BATCH,
    pull_limit: int = protocol.DEFAULT_PULL_LIMIT,
    snapshot_page: int = protocol.DEFAULT_SNAPSHOT_LIMIT,
    progress: ProgressCallback | None = None,
) -> CycleReport:
    """Push everything, snapshot if needed, pull everything; a 410 leads to a new snapshot."""
    report = CycleReport(push=push_pending(desk, transport, batch_size=push_batch_size))
    report.changed.update(report.push.changed)
    for _attempt in range(3):
        if needs_snapshot(desk):
            snap = run_snapshot(desk, transport, page_size=snapshot_page, progress=progress)
            report.snapshots += 1
            report.snapshot_rows += snap.rows
        try:
            pulled = pull_all(desk, transport, limit=pull_limit)
        except CursorGone:
            forget_cursor(desk)  # the outbox stays; it is pushed again after the snapshot
            continue
        report.pulled_rows += pulled.rows
        report.changed.update(pulled.changed)
        break
    else:
        raise CursorGone("The server keeps refusing this desk's position; try again later.")
    # Anything written locally meanwhile (or kept through a snapshot) goes now.
    more = push_pending(desk, transport, batch_size=push_batch_size)
    report.push.sent += more.sent
    report.push.accepted += more.accepted
    report.push.merged += more.merged
    report.push.rejected += more.rejected
    report.changed.update(more.changed)
    mark_success(desk)
    return report
