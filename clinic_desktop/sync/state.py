"""The sync client's bookkeeping in the desk-only ``sync_state`` table, and its sessions.

Every value the client needs to resume after a crash (pull cursor, snapshot position) is
written in the same transaction as the rows it describes, so the two can never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clinic_desktop.models import SyncState
from clinic_desktop.services.context import Desk
from clinic_desktop.store.tracking import CLOCK, DEVICE, REMOTE_APPLY

PULL_CURSOR = "sync.pull_cursor"
LAST_SUCCESS = "sync.last_success"
SNAPSHOT_CURSOR = "sync.snap.cursor"
SNAPSHOT_ENTITIES = "sync.snap.entities"
SNAPSHOT_INDEX = "sync.snap.index"
SNAPSHOT_AFTER_ID = "sync.snap.after_id"
SNAPSHOT_DONE = "sync.snap.done"
SNAPSHOT_TOTAL = "sync.snap.total"
SNAPSHOT_KEYS = (
    SNAPSHOT_CURSOR,
    SNAPSHOT_ENTITIES,
    SNAPSHOT_INDEX,
    SNAPSHOT_AFTER_ID,
    SNAPSHOT_DONE,
    SNAPSHOT_TOTAL,
)


def get(session: Session, key: str) -> str | None:
    row = session.get(SyncState, key)
    return row.value if row is not None else None


def get_many(session: Session, *keys: str) -> dict[str, str]:
    rows = session.scalars(select(SyncState).where(SyncState.key.in_(keys))).all()
    return {row.key: row.value for row in rows}


def put(session: Session, key: str, value: Any) -> None:
    """Set ``key``; non-strings are stored as JSON."""
    text = value if isinstance(value, str) else json.dumps(value)
    row = session.get(SyncState, key)
    if row is None:
        session.add(SyncState(key=key, value=text))
    else:
        row.value = text


def drop(session: Session, *keys: str) -> None:
    session.execute(delete(SyncState).where(SyncState.key.in_(keys)))


def get_int(session: Session, key: str) -> int | None:
    value = get(session, key)
    if value is None or value == "":
        return None
    return int(value)


@contextmanager
def sync_session(desk: Desk) -> Iterator[Session]:
    """One write transaction for applying server data to the local store.

    - ``REMOTE_APPLY`` is set, so the outbox writer ignores what happens here (a pulled row
      is not a local change to push back).
    - Foreign keys are not enforced on this connection: the server is the authority on
      references, and changes arrive in change-log order, where a visit can come before the
      patient it points at (the patient was edited later) and a merged patient before the
      record it points at. Every other connection keeps foreign keys on.
    """
    with desk.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with Session(bind=conn, expire_on_commit=False) as session:
                session.info[REMOTE_APPLY] = True
                session.info[CLOCK] = desk.clock
                session.info[DEVICE] = desk.device_id
                with session.begin():
                    yield session
        finally:
            # The pool hands this connection to services next; never leave checks off.
            if conn.in_transaction():
                conn.rollback()
            raw.execute("PRAGMA foreign_keys = ON")


@contextmanager
def reading(desk: Desk) -> Iterator[Session]:
    """A read-only session for the sync client's own queries."""
    with Session(desk.engine) as session:
        try:
            yield session
        finally:
            session.rollback()
