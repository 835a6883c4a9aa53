"""``clinic-server --load-demo``: the same demo clinic as ``clinic-desktop --load-demo``.

The desktop's generator (``clinic_desktop.demo``) fills a throw-away encrypted desk store
(its key kept in a private in-memory keyring for the few seconds this takes); the rows are
then copied into the server as one versioned batch, so desks that sync get exactly what a
demo desk has. The demo's own workstation is left revoked: real desks enrol with codes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from clinic_desktop.models import SYNCED_ENTITIES, ClinicSettings
from clinic_desktop.services.errors import InvalidState
from clinic_desktop.sync import protocol
from clinic_server.db import Database
from clinic_server.tables import ChangeLog, Clinic


@dataclass
class DemoLoaded:
    clinic_id: str
    rows: int
    sign_ins: str

    def __str__(self) -> str:
        return f"Demo clinic {self.clinic_id}: {self.rows:,} rows.\n{self.sign_ins}"


def _memory_keyring() -> Any:
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        """Holds the throw-away store's key for the length of the load only."""

        priority = 1

        def __init__(self) -> None:
            super().__init__()
            self._data: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self._data.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self._data[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self._data.pop((service, username), None)

    return MemoryKeyring()


def load_demo(db: Database, *, progress: Callable[[str], None] | None = None) -> DemoLoaded:
    import keyring

    from clinic_desktop import demo as desk_demo
    from clinic_desktop.store.open import open_store

    say = progress or (lambda _text: None)
    previous = keyring.get_keyring()
    keyring.set_keyring(_memory_keyring())
    try:
        with tempfile.TemporaryDirectory(prefix="clinic-demo-") as tmp:
            summary = desk_demo.load_demo(Path(tmp), progress=say)
            store = open_store(Path(tmp))
            try:
                say("copying to the server")
                return _copy(db, store.engine, desk_demo.sign_in_table(summary))
            finally:
                store.close()
    finally:
        keyring.set_keyring(previous)


def _copy(db: Database, desk_engine: Any, sign_ins: str) -> DemoLoaded:
    with desk_engine.connect() as desk:
        settings_row = desk.execute(select(ClinicSettings.__table__)).mappings().first()
        if settings_row is None:
            raise InvalidState("The demo store has no clinic.")
        clinic_id = settings_row["clinic_id"]
        with db.write() as session:
            if session.get(Clinic, clinic_id) is not None:
                raise InvalidState("The demo clinic is already loaded on this server.")
            session.add(
                Clinic(
                    id=clinic_id,
                    name=settings_row["name"],
                    created_at=datetime.now(UTC),
                    change_seq=0,
                    log_floor=0,
                )
            )
            session.flush()
            seq = 0
            now = datetime.now(UTC)
            for entity in protocol.ENTITY_ORDER:
                table = SYNCED_ENTITIES[entity].__table__  # type: ignore[attr-defined]
                rows = [dict(r) for r in desk.execute(select(table)).mappings()]
                if not rows:
                    continue
                log: list[dict[str, Any]] = []
                for row in rows:
                    seq += 1
                    row["version"] = seq
                    if entity == "workstation":
                        row["revoked"] = True
                    log.append(
                        {
                            "clinic_id": clinic_id,
                            "seq": seq,
                            "entity": entity,
                            "row_id": row["id"],
                            "mutation_id": None,
                            "created_at": now,
                        }
                    )
                for start in range(0, len(rows), 2000):
                    session.execute(table.insert(), rows[start : start + 2000])
                    session.execute(insert(ChangeLog), log[start : start + 2000])
            session.execute(update(Clinic).where(Clinic.id == clinic_id).values(change_seq=seq))
    return DemoLoaded(clinic_id=clinic_id, rows=seq, sign_ins=sign_ins)
