"""Fixtures shared by every test layer.

Tests never touch the real keyring or the user's data dir: keyring uses the file backend of
``keyrings.alt`` under a temporary ``XDG_DATA_HOME``, set before anything imports keyring.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

_KEYRING_HOME = tempfile.mkdtemp(prefix="clinic-keyring-")
# Forced, not defaulted: a developer whose shell selects the real keyring must not get test
# keys written into it.
os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
os.environ["XDG_DATA_HOME"] = _KEYRING_HOME
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")

from clinic_desktop.models import Base, LocalBase  # noqa: E402
from clinic_desktop.models.hlc import HybridLogicalClock  # noqa: E402
from clinic_desktop.services.context import Desk  # noqa: E402
from clinic_desktop.store.engine import create_store_engine  # noqa: E402
from clinic_desktop.store.open import OpenedStore, open_store  # noqa: E402

if TYPE_CHECKING:
    from clinic_desktop.services.context import Actor
    from clinic_desktop.services.users import SetupResult

# The first admin the ``desk`` fixture creates (password meets the password rules).
TEST_ADMIN_USERNAME = "admin"
TEST_ADMIN_PASSWORD = "Quiet-harbour-17"


@pytest.fixture
def bare_desk(tmp_path: Path) -> Iterator[Desk]:
    """An encrypted, empty store with the schema created directly (no migrations, no users)."""
    engine = create_store_engine(tmp_path / "desk.db", secrets.token_hex(32))
    Base.metadata.create_all(engine)
    LocalBase.metadata.create_all(engine)
    desk = Desk(
        engine=engine,
        clinic_id="clinic-test",
        desk_code="B",
        device_id="device-test",
        audit_key=secrets.token_bytes(32),
        clock=HybridLogicalClock("device-test"),
    )
    yield desk
    engine.dispose()


@pytest.fixture
def opened_store(tmp_path: Path) -> Iterator[OpenedStore]:
    """A store opened exactly as the application opens it: key from the keyring, integrity
    check, migrations (with the FTS patient index), device id. Not set up for a clinic yet."""
    store = open_store(tmp_path / "desk-data")
    yield store
    store.close()


@pytest.fixture
def desk_setup(opened_store: OpenedStore, monkeypatch: pytest.MonkeyPatch) -> SetupResult:
    """First-run setup on a real store: clinic "Test Clinic" (USD), desk code "A", first admin
    ``TEST_ADMIN_USERNAME`` / ``TEST_ADMIN_PASSWORD``. bcrypt runs at its cheapest cost."""
    from clinic_desktop.services import passwords, users

    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)
    return users.setup_clinic(
        opened_store.engine,
        device_id=opened_store.device_id,
        audit_key=opened_store.audit_key,
        clock=opened_store.clock,
        clinic_name="Test Clinic",
        currency="USD",
        desk_code="A",
        admin_username=TEST_ADMIN_USERNAME,
        admin_full_name="Test Admin",
        password=TEST_ADMIN_PASSWORD,
        workstation_name="Front desk",
    )


@pytest.fixture
def desk(desk_setup: SetupResult) -> Desk:
    """A set-up desk on a real encrypted, migrated store (see ``desk_setup``)."""
    return desk_setup.desk


@pytest.fixture
def admin(desk_setup: SetupResult) -> Actor:
    """The first admin of the ``desk`` fixture, as services see them."""
    return desk_setup.admin


@pytest.fixture(scope="session")
def demo_clinic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo clinic, loaded once per test run by the real command line
    (``clinic-desktop --data-dir DIR --load-demo``) into a temporary folder. The child
    inherits this process's keyring settings, so tests can open the store it made.
    Returns the data folder and the command's standard output."""
    data_dir = tmp_path_factory.mktemp("demo") / "desk"
    result = subprocess.run(
        [sys.executable, "-m", "clinic_desktop.app", "--data-dir", str(data_dir), "--load-demo"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return data_dir, result.stdout
