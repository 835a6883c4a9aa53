"""Opening the desk's encrypted store: key, checks, backup-then-migrate, identity.

``open_store`` is the one way the application (and tests that want the real thing) gets at
the local database. On first start it makes the keys and the file; on every start it checks
that the driver really encrypts, that every page passes SQLCipher's HMAC check, and brings
the schema up to date after copying the file to ``backups/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlcipher3
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from clinic_desktop.models import SyncState
from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_desktop.services.context import Desk
from clinic_desktop.store import migrate
from clinic_desktop.store.engine import StoreError, connect_raw, create_store_engine
from clinic_desktop.store.keys import load_keys

log = logging.getLogger(__name__)

STORE_FILE = "clinic-desk.db"
BACKUP_DIR = "backups"
KEEP_BACKUPS = 5
# Tables a file must have to be accepted as a Clinic Desk store when restoring.
REQUIRED_TABLES = frozenset({"alembic_version", "patient", "visit", "sync_state", "outbox"})

CLINIC_ID_KEY = "clinic_id"
DESK_CODE_KEY = "desk_code"
DEVICE_ID_KEY = "device_id"


@dataclass
class OpenedStore:
    """An open, checked, migrated store and this workstation's identity in it."""

    engine: Engine
    path: Path
    data_dir: Path
    device_id: str
    audit_key: bytes = field(repr=False)
    clock: HybridLogicalClock
    key_hex: str = field(repr=False)

    def close(self) -> None:
        """Release every connection (the file can then be copied or replaced)."""
        self.engine.dispose()


def store_path(data_dir: Path) -> Path:
    return data_dir / STORE_FILE


def _wrong_key() -> StoreError:
    return StoreError(
        "The local store cannot be opened with this workstation's key (wrong key, or the file "
        "is not a Clinic Desk store). Nothing was changed. Restore the keyring of this "
        "workstation, or restore the data folder from one of its backups."
    )


def _unwrap(exc: BaseException) -> StoreError | None:
    """SQLAlchemy may wrap errors raised while connecting; find ours inside."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StoreError):
            return seen
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return None


def _check_raw(path: Path, key_hex: str) -> None:
    """Verify, before SQLAlchemy or Alembic touch the file, that the key opens it intact.

    Reads only: a wrong key leaves the file byte-for-byte as it was.
    """
    with closing(connect_raw(path, key_hex)) as conn:
        version = conn.execute("PRAGMA cipher_version").fetchone()
        if not version or not version[0]:
            raise StoreError("The database driver does not encrypt (no SQLCipher); not opening.")
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlcipher3.DatabaseError as exc:
            raise _wrong_key() from exc
        problems = conn.execute("PRAGMA cipher_integrity_check").fetchall()
        if problems:
            raise StoreError(
                f"The local store is damaged ({len(problems)} page(s) fail their integrity "
                f"check). Restore it from a backup in {path.parent / BACKUP_DIR}."
            )


def _backup_name(reason: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"clinic-desk-{stamp}-{reason}.db"


def copy_store(path: Path, key_hex: str, dest: Path) -> Path:
    """Copy a live store page by page (SQLite backup API) into ``dest``, same key.

    The copy is encrypted exactly like the original and consistent even while other
    connections write.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.unlink(missing_ok=True)
    with closing(connect_raw(path, key_hex)) as src, closing(connect_raw(tmp, key_hex)) as dst:
        src.backup(dst)
    if os.name == "posix":
        with contextlib.suppress(OSError):
            tmp.chmod(0o600)
    tmp.replace(dest)
    return dest


def _prune_backups(backups: Path, keep: int = KEEP_BACKUPS) -> None:
    """Keep the most recent automatic backups; hand-made ones (``backup_now``) stay."""
    auto = sorted(backups.glob("clinic-desk-*-auto-*.db"))
    for old in auto[:-keep] if keep else auto:
        old.unlink(missing_ok=True)


def _migrate(engine: Engine, path: Path, key_hex: str) -> Path | None:
    """Bring the schema to head; copy the file first when there is anything to change.

    Returns the backup made, if any.
    """
    head = migrate.head_revision()
    with engine.connect() as conn:
        current = migrate.current_revision(conn)
        has_tables = bool(
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE type='table'").scalar()
        )
    if current == head:
        return None
    if current is not None and current not in migrate.known_revisions():
        raise StoreError(
            "This store was last used by a newer version of Clinic Desk. Install that version "
            "(or newer) on this workstation; nothing was changed."
        )
    backup: Path | None = None
    if has_tables:
        backup = copy_store(
            path, key_hex, path.parent / BACKUP_DIR / _backup_name(f"auto-{current}-to-{head}")
        )
        _prune_backups(path.parent / BACKUP_DIR)
        log.info("store backed up before migrating %s -> %s", current, head)
    with engine.begin() as conn:
        migrate.upgrade_to_head(conn)
    return backup


def _device_id(engine: Engine) -> str:
    with Session(engine) as session, session.begin():
        row = session.get(SyncState, DEVICE_ID_KEY)
        if row is None:
            row = SyncState(key=DEVICE_ID_KEY, value=str(uuid.uuid4()))
            session.add(row)
        return row.value


def _owner_only(data_dir: Path, path: Path) -> None:
    """Encrypted or not, nobody else on the machine needs to read the store (POSIX only)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        data_dir.chmod(0o700)
        path.chmod(0o600)


def open_store(data_dir: Path) -> OpenedStore:
    """Open (or create) the store in ``data_dir``; every failure is a :class:`StoreError`."""
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"The data folder {data_dir} cannot be created ({exc.strerror}).") from exc
    path = store_path(data_dir)
    is_new = not path.exists() or path.stat().st_size == 0
    keys = load_keys(data_dir, create=is_new)
    if not is_new:
        _check_raw(path, keys.store_key_hex)
    engine = create_store_engine(path, keys.store_key_hex)
    try:
        _migrate(engine, path, keys.store_key_hex)
        device_id = _device_id(engine)
        if is_new:
            _owner_only(data_dir, path)
    except StoreError:
        engine.dispose()
        raise
    except DBAPIError as exc:
        engine.dispose()
        ours = _unwrap(exc)
        if ours is not None:
            raise ours from exc
        raise StoreError(
            f"The local store could not be opened ({type(exc.orig).__name__}). "
            f"Restore it from a backup in {data_dir / BACKUP_DIR}."
        ) from exc
    return OpenedStore(
        engine=engine,
        path=path,
        data_dir=data_dir,
        device_id=device_id,
        audit_key=keys.audit_key,
        clock=HybridLogicalClock(device_id),
        key_hex=keys.store_key_hex,
    )


def read_state(store: OpenedStore, *keys: str) -> dict[str, str]:
    """Values of the given ``sync_state`` keys that are set."""
    with Session(store.engine) as session:
        rows = session.scalars(select(SyncState).where(SyncState.key.in_(keys))).all()
        return {row.key: row.value for row in rows}


def desk_for(store: OpenedStore) -> Desk | None:
    """This workstation's :class:`Desk`, or ``None`` until first-run setup has run."""
    state = read_state(store, CLINIC_ID_KEY, DESK_CODE_KEY)
    clinic_id, desk_code = state.get(CLINIC_ID_KEY), state.get(DESK_CODE_KEY)
    if not clinic_id or not desk_code:
        return None
    return Desk(
        engine=store.engine,
        clinic_id=clinic_id,
        desk_code=desk_code,
        device_id=store.device_id,
        audit_key=store.audit_key,
        clock=store.clock,
    )


def backup_now(store: OpenedStore, dest: Path | None = None) -> Path:
    """Copy the store (encrypted, same key) to ``dest`` or a dated file in ``backups/``.

    Only this workstation's keyring can open the copy; restoring it on another machine needs
    that keyring too.
    """
    if dest is None:
        dest = store.data_dir / BACKUP_DIR / _backup_name("manual")
    elif dest.is_dir():
        dest = dest / _backup_name("manual")
    try:
        return copy_store(store.path, store.key_hex, dest)
    except (OSError, sqlcipher3.Error) as exc:
        raise StoreError(f"The backup could not be written to {dest} ({exc}).") from exc


def verify_backup(file: Path, key_hex: str) -> str:
    """Check that ``file`` opens with this desk's key and is one of our stores.

    Returns its schema revision; raises :class:`StoreError` saying what is wrong.
    """
    if not file.is_file():
        raise StoreError(f"{file} is not a file.")
    try:
        _check_raw(file, key_hex)
    except StoreError as exc:
        raise StoreError(
            f"{file.name} cannot be restored: it is not a backup of this workstation's store "
            f"({exc})"
        ) from exc
    with closing(connect_raw(file, key_hex)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not REQUIRED_TABLES.issubset(tables):
            raise StoreError(f"{file.name} cannot be restored: it is not a Clinic Desk store.")
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    revision = str(row[0]) if row else ""
    if revision not in migrate.known_revisions():
        raise StoreError(
            f"{file.name} cannot be restored: it was made by a newer version of Clinic Desk."
        )
    return revision


def restore_from(store: OpenedStore, file: Path) -> tuple[OpenedStore, Path]:
    """Replace the store with a verified backup; returns the reopened store and a safety copy.

    The current store is closed by this call (its engine is disposed); the caller must use the
    returned store from then on. A safety copy of the current file is taken first, so a
    mistaken restore can itself be undone.
    """
    verify_backup(file, store.key_hex)
    in_use = getattr(store.engine.pool, "checkedout", lambda: 0)()
    if in_use:
        raise StoreError(
            "The store is still in use by another part of Clinic Desk (for example a sync in "
            "progress). Pause sync, wait a moment and restore again; nothing was changed."
        )
    safety = copy_store(
        store.path, store.key_hex, store.data_dir / BACKUP_DIR / _backup_name("before-restore")
    )
    store.close()
    staged = store.path.with_name(store.path.name + ".restore")
    shutil.copyfile(file, staged)
    for suffix in ("-wal", "-shm"):
        Path(str(store.path) + suffix).unlink(missing_ok=True)
    staged.replace(store.path)
    return open_store(store.data_dir), safety
