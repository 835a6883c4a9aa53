"""SQLAlchemy engine over SQLCipher with a raw 256-bit key.

The key goes in as ``x'<hex>'`` so SQLCipher skips its passphrase KDF (about 100 ms per
connection otherwise); the key is random, so the KDF would add nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlcipher3
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import QueuePool

_HEX_KEY = re.compile(r"^[0-9a-f]{64}$")

READ_ONLY = "read_only"  # execution option: begin a deferred (non-locking) transaction


class StoreError(Exception):
    """The local store cannot be opened; the message is meant for a person."""


def connect_raw(path: Path, key_hex: str, *, check_same_thread: bool = True) -> Any:
    """A bare keyed SQLCipher connection (backups, checks); nothing is read until first use.

    SQLCipher's own logging is switched off first: with a wrong key it would print page
    decryption errors on stderr, which a person would read as a crash.
    """
    if not _HEX_KEY.match(key_hex):
        raise StoreError("The store key is malformed (expected 64 hex digits).")
    conn = sqlcipher3.connect(str(path), check_same_thread=check_same_thread, timeout=30)
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute(f"PRAGMA key = \"x'{key_hex}'\"")
    return conn


def create_store_engine(path: Path, key_hex: str, *, pool_size: int = 5) -> Engine:
    """An engine whose every connection is keyed, checked, and set up for durable WAL."""
    if not _HEX_KEY.match(key_hex):
        raise StoreError("The store key is malformed (expected 64 hex digits).")

    def connect() -> Any:
        return connect_raw(path, key_hex, check_same_thread=False)

    engine = create_engine(
        "sqlite://",
        creator=connect,
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=10,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: object) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA cipher_version")
            row = cursor.fetchone()
            if not row or not row[0]:
                raise StoreError("The database driver does not encrypt (no SQLCipher).")
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
            except sqlcipher3.DatabaseError as exc:
                raise StoreError(
                    "The local store cannot be opened with this workstation's key "
                    "(wrong key, or the file is not a Clinic Desk store)."
                ) from exc
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA busy_timeout = 30000")
        finally:
            cursor.close()

    # pysqlite's default transaction handling defers BEGIN; take the write lock up front so
    # two writers on one file never deadlock on lock upgrade.
    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_conn: Any, _record: object) -> None:
        dbapi_conn.isolation_level = None

    # Read-only work (``engine.execution_options(read_only=True)``) begins deferred instead:
    # in WAL mode a reader never waits for the writer, so screens stay live during a sync.
    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN DEFERRED")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
