"""Background sync: a push thread and a pull thread per desk, with plain observer hooks.

Why two threads: a long poll can hold the pull request open for many seconds, and a save at
the desk must reach the server at once, not when that poll returns. Why that stays correct
("push before pull"): every pulled page is applied under the same lock the push holds from
sending a batch until its answers are committed, and no page is applied while a batch's
fate is unknown (sent, then the connection failed) until a later push has settled it. So a
pulled row can never overwrite or be shadowed by a mutation that is in flight.

The views wrap :class:`SyncEvents` with Qt signals. Callbacks run on the worker threads,
must be quick, and must not touch widgets directly (queue a signal instead). Nothing here
blocks a UI call: services write to the store as usual and the worker is poked on commit.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from clinic_desktop.models import SyncProblem
from clinic_desktop.services.context import Desk
from clinic_desktop.sync import protocol
from clinic_desktop.sync.errors import (
    AuthRequired,
    CursorGone,
    Forbidden,
    NotEnrolled,
    Offline,
    RequestRejected,
    ServerError,
    SyncError,
    UpgradeRequired,
)
from clinic_desktop.sync.pull import (
    forget_cursor,
    last_success,
    mark_success,
    needs_snapshot,
    pull_page,
    run_snapshot,
)
from clinic_desktop.sync.push import pending_count, push_batch
from clinic_desktop.sync.state import reading
from clinic_desktop.sync.transport import Tokens, Transport

log = logging.getLogger(__name__)

# Phases shown in the status bar.
IDLE = "idle"  # online and up to date
SYNCING = "syncing"
SNAPSHOT = "snapshot"  # first download (progress available)
OFFLINE = "offline"
SIGN_IN_NEEDED = "sign_in_needed"
UPDATE_NEEDED = "update_needed"
REFUSED = "refused"  # workstation revoked or user disabled
NOT_ENROLLED = "not_enrolled"
STOPPED = "stopped"


@dataclass(frozen=True)
class SyncStatus:
    """What the status bar shows; a new object on every change."""

    phase: str = STOPPED
    online: bool = False
    pending: int = 0
    last_success: datetime | None = None
    last_error: str = ""
    problems: int = 0


StatusListener = Callable[[SyncStatus], None]
RowsListener = Callable[[dict[str, list[str]]], None]
ProgressListener = Callable[[int, int], None]


class SyncEvents:
    """Observer hooks: status changes, rows changed (entity -> ids), snapshot progress."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: list[StatusListener] = []
        self._rows: list[RowsListener] = []
        self._progress: list[ProgressListener] = []

    def on_status(self, listener: StatusListener) -> None:
        with self._lock:
            self._status.append(listener)

    def on_rows_changed(self, listener: RowsListener) -> None:
        with self._lock:
            self._rows.append(listener)

    def on_snapshot_progress(self, listener: ProgressListener) -> None:
        with self._lock:
            self._progress.append(listener)

    def _call(self, listeners: list[Any], *args: Any) -> None:
        with self._lock:
            targets = list(listeners)
        for listener in targets:
            try:
                listener(*args)
            except Exception:
                log.exception("a sync listener failed")

    def status(self, status: SyncStatus) -> None:
        self._call(self._status, status)

    def rows_changed(self, changes: dict[str, list[str]]) -> None:
        if changes:
            self._call(self._rows, changes)

    def snapshot_progress(self, done: int, total: int) -> None:
        self._call(self._progress, done, total)


class _Stop(Exception):
    pass


class SyncWorker:
    """Keeps one desk in sync with the server until :meth:`stop`.

    ``transport`` must carry the device credential; tokens come from the person who signed
    in (:meth:`set_tokens`). Without them the worker waits quietly and says so in its status.
    """

    def __init__(
        self,
        desk: Desk,
        transport: Transport,
        *,
        events: SyncEvents | None = None,
        long_poll: float = 20.0,
        push_batch_size: int = protocol.MAX_BATCH,
        pull_limit: int = protocol.DEFAULT_PULL_LIMIT,
        snapshot_page: int = protocol.DEFAULT_SNAPSHOT_LIMIT,
        min_backoff: float = 0.5,
        max_backoff: float = 60.0,
        watch_commits: bool = True,
    ) -> None:
        self.desk = desk
        self.transport = transport
        self.events = events or SyncEvents()
        self.long_poll = min(long_poll, float(protocol.MAX_WAIT_SECONDS))
        self.push_batch_size = push_batch_size
        self.pull_limit = pull_limit
        self.snapshot_page = snapshot_page
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._watch_commits = watch_commits
        self._apply_lock = threading.Lock()
        self._wake_push = threading.Event()
        self._wake_pull = threading.Event()
        self._stopping = threading.Event()
        # Set while no sent batch has an unknown fate; pulled pages wait for it.
        self._settled = threading.Event()
        self._status_lock = threading.Lock()
        self._status = SyncStatus()
        self._threads: list[threading.Thread] = []
        self._listener_installed = False

    # --- public API ---------------------------------------------------------------------

    @property
    def status(self) -> SyncStatus:
        with self._status_lock:
            return self._status

    def start(self) -> None:
        """Start the push and pull threads (idempotent)."""
        if self._threads:
            return
        self._stopping.clear()
        if pending_count(self.desk) == 0:
            self._settled.set()
        else:
            self._settled.clear()  # entries may have been sent just before a crash
        self._update(
            phase=SYNCING,
            pending=pending_count(self.desk),
            last_success=last_success(self.desk),
            problems=_open_problems(self.desk),
        )
        if self._watch_commits and not self._listener_installed:
            event.listen(self.desk.sessions, "after_commit", self._after_commit)
            self._listener_installed = True
        for name, target in (("push", self._push_loop), ("pull", self._pull_loop)):
            thread = threading.Thread(target=target, name=f"clinic-sync-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 3.0) -> None:
        """End both threads; returns within about ``timeout`` seconds.

        A long poll cannot be interrupted; once stopping, the pull thread writes nothing
        more to the store, so it is left to finish its request in the background.
        """
        self._stopping.set()
        self._wake_push.set()
        self._wake_pull.set()
        self._settled.set()
        if self._listener_installed:
            event.remove(self.desk.sessions, "after_commit", self._after_commit)
            self._listener_installed = False
        for thread in self._threads:
            # The pull thread may sit in a long poll; it writes nothing once stopping.
            thread.join(timeout if thread.name.endswith("push") else min(timeout, 0.5))
        self._threads = []
        self._update(phase=STOPPED, online=False)

    def poke(self) -> None:
        """A local write happened: push now (also retries at once after a failure)."""
        self._wake_push.set()

    def set_tokens(self, tokens: Tokens | None) -> None:
        """The signed-in person's tokens (``None`` on sign-out of the last user)."""
        self.transport.set_tokens(tokens)
        self._wake_push.set()
        self._wake_pull.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the outbox is empty and a pull found nothing new (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status
            if status.phase == IDLE and status.pending == 0:
                return True
            time.sleep(0.05)
        return False

    # --- internals ----------------------------------------------------------------------

    def _after_commit(self, session: Session) -> None:
        self._wake_push.set()

    def _update(self, **changes: Any) -> None:
        if self._stopping.is_set() and changes.get("phase") != STOPPED:
            return
        with self._status_lock:
            new = replace(self._status, **changes)
            if new == self._status:
                return
            self._status = new
        self.events.status(new)

    def _sleep(self, wake: threading.Event, seconds: float) -> None:
        wake.wait(seconds)
        wake.clear()
        if self._stopping.is_set():
            raise _Stop

    def _backoff(self, failures: int) -> float:
        """Exponential back-off with full jitter (many desks must not retry in lock-step)."""
        ceiling = min(self.max_backoff, self.min_backoff * (2 ** min(failures, 16)))
        return random.uniform(self.min_backoff, max(self.min_backoff, ceiling))

    def _failure(self, exc: BaseException) -> tuple[str, bool, float | None]:
        """Phase, online flag and a fixed wait (None: back off) for an error."""
        if isinstance(exc, Offline):
            return OFFLINE, False, None
        if isinstance(exc, ServerError):
            return OFFLINE, False, None
        if isinstance(exc, AuthRequired):
            return SIGN_IN_NEEDED, True, 30.0
        if isinstance(exc, NotEnrolled):
            return NOT_ENROLLED, False, 60.0
        if isinstance(exc, UpgradeRequired):
            return UPDATE_NEEDED, True, 600.0
        if isinstance(exc, Forbidden):
            return REFUSED, True, 120.0
        if isinstance(exc, RequestRejected):
            return SYNCING, True, None
        return OFFLINE, False, None

    def _message(self, exc: BaseException) -> str:
        if isinstance(exc, SyncError):
            return str(exc)
        # Unexpected errors may carry row values in their text (SQL parameters): log the type.
        log.error("sync step failed: %s", type(exc).__name__)
        return "Sync hit an unexpected problem; it will try again."

    def _ready(self) -> bool:
        if self.transport.credential is None:
            self._update(phase=NOT_ENROLLED, online=False, last_error="")
            return False
        if self.transport.tokens is None:
            self._update(phase=SIGN_IN_NEEDED, last_error="Sign in while online to sync this desk.")
            return False
        return True

    def _push_loop(self) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                if not self._ready():
                    self._sleep(self._wake_push, 5.0)
                    continue
                try:
                    sent = self._push_step()
                except _Stop:
                    raise
                except Exception as exc:
                    self._settled.clear()
                    phase, online, wait = self._failure(exc)
                    self._update(
                        phase=phase,
                        online=online,
                        last_error=self._message(exc),
                        pending=pending_count(self.desk),
                    )
                    failures += 1
                    self._sleep(
                        self._wake_push, wait if wait is not None else self._backoff(failures)
                    )
                    continue
                failures = 0
                if sent:
                    continue  # more may be waiting; drain before sleeping
                self._sleep(self._wake_push, 30.0)
        except _Stop:
            return

    def _push_step(self) -> int:
        """Send one batch under the apply lock; returns how many entries were sent."""
        with self._apply_lock:
            report = push_batch(self.desk, self.transport, self.push_batch_size)
            self._settled.set()
        pending = pending_count(self.desk)
        if report.sent:
            self._update(
                online=True,
                pending=pending,
                last_error="",
                problems=_open_problems(self.desk) if report.rejected else self.status.problems,
            )
            self.events.rows_changed(report.changed.as_dict())
        else:
            self._update(online=True, pending=pending)
        return report.sent

    def _guarded(self) -> Any:
        """Context for applying pulled data: only when no batch is in doubt, under the lock."""
        worker = self

        class _Guard:
            def __enter__(self) -> None:
                while not worker._settled.wait(0.5):
                    if worker._stopping.is_set():
                        raise _Stop
                worker._apply_lock.acquire()
                if worker._stopping.is_set():
                    worker._apply_lock.release()
                    raise _Stop

            def __exit__(self, *exc: object) -> None:
                worker._apply_lock.release()

        return _Guard()

    def _pull_loop(self) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                if not self._ready():
                    self._sleep(self._wake_pull, 5.0)
                    continue
                try:
                    self._pull_step()
                except _Stop:
                    raise
                except CursorGone:
                    log.info("pull cursor gone; taking a fresh snapshot")
                    with self._guarded():
                        forget_cursor(self.desk)
                    continue
                except Exception as exc:
                    phase, online, wait = self._failure(exc)
                    self._update(phase=phase, online=online, last_error=self._message(exc))
                    failures += 1
                    self._sleep(
                        self._wake_pull, wait if wait is not None else self._backoff(failures)
                    )
                    continue
                failures = 0
        except _Stop:
            return

    def _pull_step(self) -> None:
        if needs_snapshot(self.desk):
            self._update(phase=SNAPSHOT)
            run_snapshot(
                self.desk,
                self.transport,
                page_size=self.snapshot_page,
                progress=self.events.snapshot_progress,
                changed_sink=lambda changed: self.events.rows_changed(changed.as_dict()),
                should_stop=self._stopping.is_set,
                guard=self._guarded,
            )
            if self._stopping.is_set():
                raise _Stop
        wait = 0.0 if self.status.phase != IDLE else self.long_poll
        report, more = pull_page(
            self.desk, self.transport, wait=wait, limit=self.pull_limit, guard=self._guarded
        )
        if report.changed:
            self.events.rows_changed(report.changed.as_dict())
        if self._stopping.is_set():
            raise _Stop
        if not more:
            now = datetime.now(UTC)
            previous = self.status.last_success
            if previous is None or (now - previous).total_seconds() > 60 or report.rows:
                now = mark_success(self.desk)  # persisted for the next start, not every poll
            self._update(
                phase=IDLE,
                online=True,
                last_error="",
                pending=pending_count(self.desk),
                last_success=now,
            )
        else:
            self._update(phase=SYNCING, online=True, last_error="")


def _open_problems(desk: Desk) -> int:
    with reading(desk) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(SyncProblem).where(SyncProblem.state == "open")
            )
            or 0
        )
