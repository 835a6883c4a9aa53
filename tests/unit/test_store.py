"""The encrypted local store: keys in the keyring, checks at open, backup-then-migrate."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from pathlib import Path

import keyring
import pytest
from alembic import command
from keyring.backends import chainer, fail, null
from keyrings.alt.file import PlaintextKeyring
from sqlalchemy import select, text

from clinic_desktop.models import Patient, SyncState
from clinic_desktop.services.context import Desk
from clinic_desktop.store import keys as store_keys
from clinic_desktop.store import migrate
from clinic_desktop.store import open as store_open
from clinic_desktop.store.engine import StoreError, connect_raw
from clinic_desktop.store.open import (
    BACKUP_DIR,
    OpenedStore,
    backup_now,
    desk_for,
    open_store,
    restore_from,
    verify_backup,
)

DISTINCTIVE = "Zyxwquorth Fennimore-Okonkwo"


def _set_identity(store: OpenedStore, clinic_id: str = "clinic-1", desk_code: str = "A") -> Desk:
    with store.engine.begin() as conn:
        conn.execute(
            SyncState.__table__.insert(),  # type: ignore[attr-defined]
            [{"key": "clinic_id", "value": clinic_id}, {"key": "desk_code", "value": desk_code}],
        )
    desk = desk_for(store)
    assert desk is not None
    return desk


def _add_patient(desk: Desk, name: str, number: str) -> str:
    with desk.transaction(None) as session:
        patient = Patient(
            clinic_id=desk.clinic_id,
            patient_number=number,
            full_name=name,
            date_of_birth=date(1980, 5, 17),
        )
        session.add(patient)
        return patient.id


def _names(store: OpenedStore) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(select(Patient.full_name)).scalars())


def _raw_bytes(path: Path) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            data += part.read_bytes()
    return data


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OpenedStore]:
    opened = open_store(tmp_path / "desk")
    yield opened
    opened.close()


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


# --- encryption -------------------------------------------------------------------------


def test_names_never_reach_the_disk_in_clear(store: OpenedStore) -> None:
    desk = _set_identity(store)
    _add_patient(desk, DISTINCTIVE, "P-A-000001")
    needle = DISTINCTIVE.encode()
    # While connections are open the change may still sit in the WAL file.
    assert Path(str(store.path) + "-wal").exists()
    assert needle not in _raw_bytes(store.path)
    store.close()
    assert needle not in _raw_bytes(store.path)
    # ...and it really is there, readable with the key.
    again = open_store(store.data_dir)
    try:
        assert DISTINCTIVE in _names(again)
    finally:
        again.close()


def test_a_plain_sqlite_reader_cannot_read_the_file(store: OpenedStore) -> None:
    store.close()
    with closing(sqlite3.connect(store.path)) as conn, pytest.raises(sqlite3.DatabaseError):
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()


def test_store_is_in_wal_mode_with_durable_commits_and_foreign_keys(store: OpenedStore) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_a_driver_that_ignores_the_key_is_refused(
    store: OpenedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.close()
    # Stand-in for a plain-SQLite build: no cipher_version, the key pragma silently ignored.
    monkeypatch.setattr(store_open, "connect_raw", lambda path, key: sqlite3.connect(path))
    with pytest.raises(StoreError, match="does not encrypt"):
        open_store(store.data_dir)


# --- keys ---------------------------------------------------------------------------------


def test_second_open_reuses_the_keys_and_device_id(store: OpenedStore) -> None:
    desk = _set_identity(store)
    _add_patient(desk, "Amal Haddad", "P-A-000001")
    first_key, first_audit, first_device = store.key_hex, store.audit_key, store.device_id
    store.close()
    again = open_store(store.data_dir)
    try:
        assert again.key_hex == first_key
        assert again.audit_key == first_audit
        assert again.device_id == first_device
        assert _names(again) == {"Amal Haddad"}
    finally:
        again.close()


def test_each_data_dir_gets_its_own_random_keys(tmp_path: Path) -> None:
    one, two = open_store(tmp_path / "one"), open_store(tmp_path / "two")
    try:
        assert len(one.key_hex) == 64
        assert len(one.audit_key) == 32
        assert one.key_hex != two.key_hex
        assert one.audit_key != two.audit_key
        assert one.audit_key.hex() != one.key_hex
        assert one.device_id != two.device_id
    finally:
        one.close()
        two.close()


def test_keys_live_in_the_keyring_not_in_the_data_dir(store: OpenedStore) -> None:
    stored = keyring.get_password(
        store_keys.SERVICE, store_keys.entry_name("store-key", store.data_dir)
    )
    assert stored == store.key_hex
    store.close()
    for file in store.data_dir.rglob("*"):
        if file.is_file():
            assert store.key_hex.encode() not in file.read_bytes(), file
            assert store.audit_key not in file.read_bytes(), file


def test_wrong_key_is_a_clear_error_and_leaves_the_file_untouched(
    store: OpenedStore, capfd: pytest.CaptureFixture[str]
) -> None:
    desk = _set_identity(store)
    _add_patient(desk, "Amal Haddad", "P-A-000001")
    store.close()
    before = store.path.read_bytes()
    keyring.set_password(
        store_keys.SERVICE, store_keys.entry_name("store-key", store.data_dir), "ab" * 32
    )
    capfd.readouterr()
    with pytest.raises(StoreError, match="cannot be opened with this workstation's key"):
        open_store(store.data_dir)
    assert store.path.read_bytes() == before
    assert not Path(str(store.path) + "-wal").exists()
    assert capfd.readouterr().err == ""  # SQLCipher's own logging stays quiet


def test_a_missing_key_for_an_existing_store_is_not_replaced_by_a_new_one(
    store: OpenedStore,
) -> None:
    store.close()
    store_keys.forget_keys(store.data_dir)
    with pytest.raises(StoreError, match="not in the keyring"):
        open_store(store.data_dir)
    name = store_keys.entry_name("store-key", store.data_dir)
    assert keyring.get_password(store_keys.SERVICE, name) is None


@pytest.mark.parametrize(
    "backend",
    [fail.Keyring(), null.Keyring()],
    ids=["fail-backend", "null-backend"],
)
def test_no_keyring_backend_refuses_and_names_the_fix(
    tmp_path: Path, backend: object, restore_keyring: None
) -> None:
    keyring.set_keyring(backend)  # type: ignore[arg-type]
    with pytest.raises(StoreError) as caught:
        open_store(tmp_path / "desk")
    message = str(caught.value)
    assert "No keyring service" in message
    assert "PYTHON_KEYRING_BACKEND=keyrings.alt.file" in message
    assert not (tmp_path / "desk" / store_open.STORE_FILE).exists()


def test_an_empty_keyring_chain_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [])
    with pytest.raises(StoreError, match="No keyring service"):
        store_keys.usable_backend(chainer.ChainerBackend(), explicit=False)


def test_file_backend_is_refused_unless_someone_chose_it() -> None:
    with pytest.raises(StoreError, match="nobody chose that on purpose"):
        store_keys.usable_backend(PlaintextKeyring(), explicit=False)
    chosen = store_keys.usable_backend(PlaintextKeyring(), explicit=True)
    assert isinstance(chosen, PlaintextKeyring)


def test_the_environment_variable_counts_as_a_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    assert isinstance(store_keys.usable_backend(PlaintextKeyring()), PlaintextKeyring)


# --- integrity ----------------------------------------------------------------------------


def test_a_damaged_page_is_reported_not_opened(store: OpenedStore) -> None:
    desk = _set_identity(store)
    for i in range(200):
        _add_patient(desk, f"Patient {i}", f"P-A-{i:06d}")
    store.close()
    raw = bytearray(store.path.read_bytes())
    page = 4096
    assert len(raw) > 10 * page
    raw[5 * page + 100] ^= 0xFF
    store.path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="damaged"):
        open_store(store.data_dir)


# --- migrations ---------------------------------------------------------------------------


def test_a_new_store_is_at_the_head_revision_without_a_backup(store: OpenedStore) -> None:
    with store.engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()
        tables = set(
            conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'")).scalars()
        )
    assert {"patient", "visit", "bill", "payment", "outbox", "sync_state"} <= tables
    assert not (store.data_dir / BACKUP_DIR).exists()


PROBE_REVISION = '''
"""test probe"""
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("probe", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("probe")
'''


@pytest.fixture
def newer_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The application's migrations plus one more revision, as after an update."""
    old_head = migrate.head_revision()
    scripts = tmp_path / "scripts"
    shutil.copytree(migrate.SCRIPT_LOCATION, scripts)
    (scripts / "versions" / "9999_probe.py").write_text(PROBE_REVISION.format(head=old_head))
    monkeypatch.setattr(migrate, "SCRIPT_LOCATION", scripts)
    return old_head


def test_an_update_backs_up_before_migrating_and_runs_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "desk"
    first = open_store(data_dir)
    desk = _set_identity(first)
    _add_patient(desk, DISTINCTIVE, "P-A-000001")
    old_head = migrate.head_revision()
    first.close()

    with pytest.MonkeyPatch.context() as mp:
        scripts = tmp_path / "scripts"
        shutil.copytree(migrate.SCRIPT_LOCATION, scripts)
        (scripts / "versions" / "9999_probe.py").write_text(PROBE_REVISION.format(head=old_head))
        mp.setattr(migrate, "SCRIPT_LOCATION", scripts)

        updated = open_store(data_dir)
        backups = sorted((data_dir / BACKUP_DIR).glob("*.db"))
        assert len(backups) == 1
        assert f"auto-{old_head}-to-9999" in backups[0].name
        # The backup is the pre-migration store: old revision, no probe table, still encrypted.
        assert verify_backup(backups[0], updated.key_hex) == old_head
        with closing(connect_raw(backups[0], updated.key_hex)) as conn:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            assert "probe" not in names
        assert DISTINCTIVE.encode() not in backups[0].read_bytes()
        with updated.engine.connect() as conn:
            assert migrate.current_revision(conn) == "9999"
            assert conn.exec_driver_sql("SELECT count(*) FROM probe").scalar() == 0
        assert DISTINCTIVE in _names(updated)
        updated.close()

        # Idempotent: opening again changes nothing and takes no further backup.
        again = open_store(data_dir)
        with again.engine.connect() as conn:
            assert migrate.current_revision(conn) == "9999"
        again.close()
        assert len(list((data_dir / BACKUP_DIR).glob("*.db"))) == 1


def test_automatic_backups_are_pruned_to_the_most_recent(tmp_path: Path) -> None:
    backups = tmp_path / BACKUP_DIR
    backups.mkdir()
    for i in range(8):
        (backups / f"clinic-desk-2026010{i}T000000000000Z-auto-a-to-b.db").write_bytes(b"x")
    (backups / "clinic-desk-20250101T000000000000Z-manual.db").write_bytes(b"x")
    store_open._prune_backups(backups, keep=5)
    left = sorted(p.name for p in backups.iterdir())
    assert len([n for n in left if "-auto-" in n]) == 5
    assert "clinic-desk-20260100T000000000000Z-auto-a-to-b.db" not in left
    assert "clinic-desk-20250101T000000000000Z-manual.db" in left  # hand-made ones stay


def test_a_store_from_a_newer_version_is_refused(store: OpenedStore) -> None:
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    store.close()
    with pytest.raises(StoreError, match="newer version"):
        open_store(store.data_dir)


# --- identity -----------------------------------------------------------------------------


def test_desk_for_is_none_before_setup_and_a_desk_after(store: OpenedStore) -> None:
    assert desk_for(store) is None
    desk = _set_identity(store, clinic_id="c-42", desk_code="B")
    assert (desk.clinic_id, desk.desk_code, desk.device_id) == ("c-42", "B", store.device_id)
    assert desk.audit_key == store.audit_key
    assert desk.clock is store.clock
    # The desk writes through the tracking hook: an outbox entry per change.
    _add_patient(desk, "Amal Haddad", "P-B-000001")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar() == 1


# --- backup and restore -------------------------------------------------------------------


def test_backup_and_restore_roundtrip(store: OpenedStore) -> None:
    desk = _set_identity(store)
    _add_patient(desk, "Before Backup", "P-A-000001")
    backup = backup_now(store)
    assert backup.parent == store.data_dir / BACKUP_DIR
    if os.name == "posix":
        assert backup.stat().st_mode & 0o077 == 0  # owner only, like the store itself
        assert store.path.stat().st_mode & 0o077 == 0
    assert b"Before Backup" not in backup.read_bytes()
    _add_patient(desk, "After Backup", "P-A-000002")

    restored, safety = restore_from(store, backup)
    try:
        assert _names(restored) == {"Before Backup"}
        assert restored.device_id == store.device_id
        assert verify_backup(safety, restored.key_hex) == migrate.head_revision()
        with closing(connect_raw(safety, restored.key_hex)) as conn:
            kept = {r[0] for r in conn.execute("SELECT full_name FROM patient")}
        assert kept == {"Before Backup", "After Backup"}  # the restore itself can be undone
    finally:
        restored.close()


def test_backup_to_a_chosen_folder(store: OpenedStore, tmp_path: Path) -> None:
    target = tmp_path / "usb"
    target.mkdir()
    made = backup_now(store, target)
    assert made.parent == target
    assert verify_backup(made, store.key_hex) == migrate.head_revision()


def test_restore_refuses_a_file_from_another_workstation(
    store: OpenedStore, tmp_path: Path
) -> None:
    desk = _set_identity(store)
    _add_patient(desk, "Stays Put", "P-A-000001")
    other = open_store(tmp_path / "other")
    foreign = backup_now(other, tmp_path / "foreign.db")
    other.close()
    with pytest.raises(StoreError, match="not a backup of this workstation's store"):
        restore_from(store, foreign)
    assert _names(store) == {"Stays Put"}


def test_restore_refuses_a_keyed_file_without_our_schema(
    store: OpenedStore, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.db"
    with closing(connect_raw(stranger, store.key_hex)) as conn:
        conn.execute("CREATE TABLE notes(x)")
        conn.commit()
    with pytest.raises(StoreError, match="not a Clinic Desk store"):
        restore_from(store, stranger)
    with pytest.raises(StoreError, match="is not a file"):
        restore_from(store, tmp_path / "missing.db")
    assert desk_for(store) is None  # still open and usable


# --- patient search index (revision 0002) -------------------------------------------------


def _fts_hits(store: OpenedStore, query: str) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM patient_name_fts WHERE patient_name_fts MATCH :q"),
                {"q": query},
            ).scalar_one()
        )


def test_migrations_create_the_patient_search_index(store: OpenedStore) -> None:
    desk = _set_identity(store)
    _add_patient(desk, "Fennimore Okafor", "P-A-000001")
    assert _fts_hits(store, "fenn*") == 1
    assert _fts_hits(store, "zzz*") == 0


def test_search_index_revision_downgrades_and_rebuilds_from_patients(
    store: OpenedStore,
) -> None:
    desk = _set_identity(store)
    _add_patient(desk, "Fennimore Okafor", "P-A-000001")
    with store.engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0001")
    with store.engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM sqlite_master")).scalars())
    assert not any(name.startswith("patient_search") or "_fts" in name for name in names)
    store.close()
    reopened = open_store(store.data_dir)  # upgrades again, after a backup
    try:
        assert _fts_hits(reopened, "okaf*") == 1
        assert len(list((store.data_dir / BACKUP_DIR).glob("*-auto-0001-to-*.db"))) == 1
    finally:
        reopened.close()


def test_migrations_build_exactly_the_schema_the_models_declare(store: OpenedStore) -> None:
    """Fails when a model changed without regenerating 0001 (scripts/regen_store_migration.py)
    or adding a revision: a desk would otherwise run with a schema the code does not expect."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from clinic_desktop.models import Base, LocalBase
    from clinic_desktop.store.migrate import include_object

    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
        diff = compare_metadata(context, [Base.metadata, LocalBase.metadata])
    assert diff == [], "store migrations are behind the models; regenerate 0001"


def test_restore_waits_while_another_part_of_the_app_holds_the_store(
    store: OpenedStore,
) -> None:
    desk = _set_identity(store)
    _add_patient(desk, "Kept Safe", "P-A-000001")
    backup = backup_now(store)
    _add_patient(desk, "Also Kept", "P-A-000002")
    with store.engine.connect() as busy:  # e.g. the sync worker in the middle of a pull
        busy.exec_driver_sql("SELECT 1")
        with pytest.raises(StoreError, match="still in use"):
            restore_from(store, backup)
    assert _names(store) == {"Kept Safe", "Also Kept"}
