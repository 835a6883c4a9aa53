"""Fixtures shared by every test layer.

Tests never touch the real keyring or the user's data dir: keyring uses the file backend of
``keyrings.alt`` under a temporary ``XDG_DATA_HOME``, set before anything imports keyring.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_KEYRING_HOME = tempfile.mkdtemp(prefix="clinic-keyring-")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
os.environ["XDG_DATA_HOME"] = _KEYRING_HOME
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")

from clinic_desktop.models import Base, LocalBase  # noqa: E402
from clinic_desktop.models.hlc import HybridLogicalClock  # noqa: E402
from clinic_desktop.services.context import Desk  # noqa: E402
from clinic_desktop.store.engine import create_store_engine  # noqa: E402


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
