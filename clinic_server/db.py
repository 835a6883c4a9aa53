"""Engines and sessions for PostgreSQL (production) and SQLite (single-process demo).

On SQLite a write transaction takes the database lock up front (``BEGIN IMMEDIATE``) so two
writers never deadlock upgrading a read lock; reads use a separate engine with ordinary
deferred transactions, which WAL lets run beside a writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from clinic_server.settings import Settings


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: object) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@dataclass
class Database:
    """The server's engines and session factories."""

    url: str
    engine: Engine  # writes
    read_engine: Engine
    writes: sessionmaker[Session]
    reads: sessionmaker[Session]

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction; committed on success, rolled back on any error."""
        with self.writes.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.reads() as session:
            try:
                yield session
            finally:
                # Detach first: what was read stays readable after the transaction ends.
                session.expunge_all()
                session.rollback()

    def ping(self) -> None:
        with self.read_engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def open_database(settings: Settings) -> Database:
    """Engines for the configured database (the SQLite data directory is created if needed)."""
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        engine = _sqlite_engine(url, immediate=True)
        read_engine = _sqlite_engine(url, immediate=False)
    else:
        engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        read_engine = engine
    return Database(
        url=url,
        engine=engine,
        read_engine=read_engine,
        writes=sessionmaker(engine, expire_on_commit=False),
        reads=sessionmaker(read_engine, expire_on_commit=False),
    )
