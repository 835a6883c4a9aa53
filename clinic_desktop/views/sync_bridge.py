"""The sync worker's plain callbacks as Qt signals, and its status as one readable line.

The worker (``clinic_desktop.sync.worker``) runs its own threads and calls listeners there;
emitting a Qt signal from those threads queues the call to the main thread, where windows
may touch widgets. Nothing here talks to the network itself.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from clinic_desktop.services.context import Desk
    from clinic_desktop.store.open import OpenedStore

log = logging.getLogger(__name__)

# Entities whose arrival from other desks should refresh a kind of list.
QUEUE_ENTITIES = frozenset({"visit"})
PATIENT_ENTITIES = frozenset({"patient"})
BILL_ENTITIES = frozenset({"bill", "bill_item", "payment", "price_item"})
USER_ENTITIES = frozenset({"user_account"})
SETTINGS_ENTITIES = frozenset({"clinic_settings"})


def describe(status: Any) -> str:
    """A status-bar line: online or not, changes waiting, last success, problems."""
    from clinic_desktop.sync import worker

    parts: list[str] = []
    phase = status.phase
    if phase == worker.OFFLINE:
        parts.append("Offline: working on this desk")
    elif phase == worker.SIGN_IN_NEEDED:
        parts.append("Server: sign in again to sync")
    elif phase == worker.UPDATE_NEEDED:
        parts.append("Server needs a newer Clinic Desk; changes are kept")
    elif phase == worker.REFUSED:
        parts.append("Server refused this desk or user")
    elif phase == worker.NOT_ENROLLED:
        parts.append("Not enrolled with the server")
    elif phase == worker.SNAPSHOT:
        parts.append("Downloading the clinic's records")
    elif phase == worker.SYNCING:
        parts.append("Syncing")
    elif phase == worker.STOPPED:
        parts.append("Sync stopped")
    else:
        parts.append("Online")
    if status.pending:
        parts.append(f"{status.pending} change(s) waiting")
    elif phase == worker.IDLE:
        parts.append("up to date")
    if status.last_success is not None:
        local: datetime = status.last_success.astimezone()
        parts.append(f"last sync {local.strftime('%H:%M')}")
    if status.problems:
        parts.append(f"{status.problems} problem(s) for the admin")
    return " · ".join(parts)


class SyncBridge(QObject):
    """Owns the sync worker of a desk that has a server, and re-emits what it reports."""

    status_text = Signal(str)
    rows_changed = Signal(dict)
    snapshot_progress = Signal(int, int)

    def __init__(self) -> None:
        super().__init__()
        self.worker: Any = None
        self.transport: Any = None
        self.last_status: Any = None

    @property
    def connected(self) -> bool:
        return self.transport is not None

    def start(self, store: OpenedStore, desk: Desk, *, allow_insecure: bool = False) -> bool:
        """Start syncing if this desk is enrolled with a server; False when standalone."""
        from clinic_desktop.sync.enrolment import server_url, transport_for
        from clinic_desktop.sync.worker import SyncEvents, SyncWorker

        if not server_url(store):
            return False
        try:
            self.transport = transport_for(store, allow_insecure=allow_insecure)
        except Exception as exc:  # a broken credential must not keep the desk from working
            log.warning("sync not started: %s", type(exc).__name__)
            self.status_text.emit("Sync not started: this desk's server credential is missing")
            return False
        events = SyncEvents()
        events.on_status(self._on_status)
        events.on_rows_changed(lambda changes: self.rows_changed.emit(dict(changes)))
        events.on_snapshot_progress(lambda done, total: self.snapshot_progress.emit(done, total))
        self.worker = SyncWorker(desk, self.transport, events=events)
        self.worker.start()
        return True

    def _on_status(self, status: Any) -> None:
        self.last_status = status
        self.status_text.emit(describe(status))

    def set_tokens(self, tokens: Any) -> None:
        if self.worker is not None:
            self.worker.set_tokens(tokens)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.transport is not None:
            try:
                self.transport.close()
            except Exception:
                log.warning("closing the sync transport failed")
            self.transport = None
