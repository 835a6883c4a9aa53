"""Waking long-polling pulls when a change commits.

Only wake-ups live in memory; the change log in the database is the truth, so a missed
wake-up costs at most one poll interval. On PostgreSQL a push sends ``NOTIFY`` in its
transaction (delivered at commit to every server process) and one listener thread per
process turns it into wake-ups; on SQLite a push wakes waiters of its own process and
waiters re-read the database every poll interval to see other processes' pushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict

from sqlalchemy import text
from sqlalchemy.orm import Session

log = logging.getLogger("clinic_server.notify")
CHANNEL = "clinic_changes"


class ChangeNotifier:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def wait(self, clinic_id: str, timeout: float) -> bool:
        """Wait for a change of ``clinic_id``; ``True`` if woken, ``False`` on timeout."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future[None] = loop.create_future()
        self._waiters[clinic_id].add(future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters[clinic_id].discard(future)
            if not self._waiters[clinic_id]:
                self._waiters.pop(clinic_id, None)

    def _wake(self, clinic_id: str) -> None:
        for future in list(self._waiters.get(clinic_id, ())):
            if not future.done():
                future.set_result(None)

    def notify_local(self, clinic_id: str) -> None:
        """Wake this process's waiters (thread-safe)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake, clinic_id)

    @staticmethod
    def notify_in_transaction(session: Session, clinic_id: str) -> None:
        """Queue a PostgreSQL NOTIFY, sent only if and when the transaction commits."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": clinic_id})

    def start_listener(self, dsn: str) -> None:
        """Listen for NOTIFY on PostgreSQL in a daemon thread (reconnects on failure)."""
        self._thread = threading.Thread(
            target=self._listen, args=(dsn,), name="clinic-notify", daemon=True
        )
        self._thread.start()

    def _listen(self, dsn: str) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.notify_local(note.payload)
            except Exception as exc:  # keep listening after a database restart
                if self._stop.is_set():
                    return
                log.warning(
                    "notify listener reconnecting", extra={"error_type": type(exc).__name__}
                )
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
