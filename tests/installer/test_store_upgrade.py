"""Installing a newer version over an older one keeps the clinic's data (issue 6, item 4).

A store is made the way an older release left it: at an earlier migration revision, with
rows written at that revision's schema. Opening it with this version's ``open_store`` must
back it up, migrate it to head and keep every row and value. The test runs once for every
revision before head, so each new migration is covered from every release it can meet.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, Table, insert, inspect, select, text
from sqlalchemy.types import Boolean, Date, DateTime, Integer, Numeric, String

from clinic_desktop.store import migrate
from clinic_desktop.store.engine import create_store_engine
from clinic_desktop.store.keys import load_keys
from clinic_desktop.store.open import BACKUP_DIR, open_store, store_path, verify_backup

# Values that must survive every migration, byte for byte.
PATIENTS = [
    ("Amina Yusuf", "0712555010"),
    ("Zoë O'Brien-Łukasz", "+442079460958"),
    ("राम प्रसाद", "9841012345"),
    ("李小龍 🙂", "13800138000"),
]


def _revisions_before_head() -> list[str]:
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    ordered = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    return ordered[:-1]


def _value_for(column: Any, index: int) -> Any:
    """A plausible value for a required column we have no specific value for."""
    kind = column.type
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer | Numeric):
        return 0
    if isinstance(kind, DateTime):
        return dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    if isinstance(kind, Date):
        return dt.date(1980, 1, 1 + index)
    if isinstance(kind, String) and kind.length:
        return f"v{index}"[: kind.length]
    return f"value {index}"


def _patient_rows(table: Table) -> list[dict[str, Any]]:
    rows = []
    for index, (name, phone) in enumerate(PATIENTS):
        specific = {
            "id": str(uuid.UUID(int=index + 1)),
            "clinic_id": "clinic-upgrade",
            "patient_number": f"P-A-{index + 1:06d}",
            "full_name": name,
            "phone": phone,
            "version": index,
            "updated_at": f"000001732547{index:06d}-000000-old-desk",
            "origin": "old-desk",
            "deleted": False,
            "merged_into": None,
        }
        row = {}
        for column in table.columns:
            if column.name in specific:
                row[column.name] = specific[column.name]
            elif not column.nullable and column.server_default is None:
                row[column.name] = _value_for(column, index)
        rows.append(row)
    return rows


def _old_release_store(
    data_dir: Path, revision: str
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A store at ``revision`` with patients in it; returns the rows and every table's count."""
    data_dir.mkdir(parents=True)
    keys = load_keys(data_dir, create=True)
    engine: Engine = create_store_engine(store_path(data_dir), keys.store_key_hex)
    try:
        with engine.begin() as conn:
            command.upgrade(migrate.alembic_config(conn), revision)
        with engine.begin() as conn:
            table = Table("patient", MetaData(), autoload_with=conn)
            rows = _patient_rows(table)
            conn.execute(insert(table), rows)
            # An older release had opened this store before, so it knows its device id.
            conn.execute(
                text("INSERT INTO sync_state (key, value) VALUES ('device_id', 'old-desk')")
            )
        with engine.connect() as conn:
            counts = {
                name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
                for name in inspect(conn).get_table_names()
            }
            assert migrate.current_revision(conn) == revision
    finally:
        engine.dispose()
    return rows, counts


@pytest.mark.parametrize("old_revision", _revisions_before_head())
def test_store_from_an_older_release_opens_with_its_data_intact(
    tmp_path: Path, old_revision: str
) -> None:
    data_dir = tmp_path / "desk"
    rows, counts = _old_release_store(data_dir, old_revision)

    store = open_store(data_dir)
    try:
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()
            table = Table("patient", MetaData(), autoload_with=conn)
            found = {row["id"]: dict(row) for row in conn.execute(select(table)).mappings()}
            new_counts = {
                name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
                for name in counts
                if name != "alembic_version"
            }
    finally:
        store.close()

    assert store.device_id == "old-desk"
    assert set(found) == {row["id"] for row in rows}
    for row in rows:
        kept = found[row["id"]]
        for column, value in row.items():
            assert kept[column] == value, f"{column} changed by the upgrade"
    assert new_counts == {k: v for k, v in counts.items() if k != "alembic_version"}

    backups = list((data_dir / BACKUP_DIR).glob("*.db"))
    assert len(backups) == 1, "the upgrade must back the store up first"
    assert verify_backup(backups[0], load_keys(data_dir, create=False).store_key_hex) == (
        old_revision
    )


@pytest.mark.parametrize("old_revision", _revisions_before_head())
def test_upgraded_store_finds_old_patients_by_name_and_phone(
    tmp_path: Path, old_revision: str
) -> None:
    """Later revisions (the FTS5 index) must cover rows that were there before them."""
    from clinic_desktop.services import patients
    from clinic_desktop.services.context import Desk

    data_dir = tmp_path / "desk"
    _old_release_store(data_dir, old_revision)
    store = open_store(data_dir)
    desk = Desk(
        engine=store.engine,
        clinic_id="clinic-upgrade",
        desk_code="A",
        device_id=store.device_id,
        audit_key=store.audit_key,
        clock=store.clock,
    )
    try:
        by_name = [hit.id for hit in patients.search(desk, "Amina")]
        by_phone = [hit.id for hit in patients.search(desk, "7946")]
        by_script = [hit.id for hit in patients.search(desk, "राम")]
    finally:
        store.close()

    assert by_name == [str(uuid.UUID(int=1))]
    assert by_phone == [str(uuid.UUID(int=2))]
    assert by_script == [str(uuid.UUID(int=3))]


def test_there_is_an_upgrade_path_to_test() -> None:
    """With only one revision the upgrade tests above would silently run zero cases."""
    assert _revisions_before_head(), "only one migration: nothing to upgrade from yet"
