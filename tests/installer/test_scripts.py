"""The set-up scripts choose a file-based key store only when a person opted in (DESIGN 8).

``scripts/with-keyring.sh`` wraps ``make run`` / ``make demo``. It runs here with the
session bus and keyring config hidden, so keyring finds no service, as on a headless box.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.installer.conftest import ROOT

WRAPPER = ROOT / "scripts" / "with-keyring.sh"
FILE_BACKEND = "keyrings.alt.file.PlaintextKeyring"


def _run_wrapped(tmp_path: Path, **extra: str) -> tuple[dict[str, str], str]:
    """Run ``env`` through the wrapper; returns the environment it got and the wrapper's notes."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHON_KEYRING_BACKEND", "DBUS_SESSION_BUS_ADDRESS", "ALLOW_FILE_KEYRING"}
    }
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        VENV=str(ROOT / ".venv"),
        QT_QPA_PLATFORM="offscreen",
        **extra,
    )
    result = subprocess.run(
        ["bash", str(WRAPPER), "env"], env=env, capture_output=True, text=True, check=True
    )
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return seen, result.stderr


@pytest.fixture(autouse=True)
def _needs_the_venv() -> None:
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the project's .venv (scripts/bootstrap.sh)")


def test_no_keyring_service_and_no_opt_in_leaves_the_refusal_to_the_app(tmp_path: Path) -> None:
    seen, notes = _run_wrapped(tmp_path)

    assert "PYTHON_KEYRING_BACKEND" not in seen
    assert "ALLOW_FILE_KEYRING=1" in notes


def test_opting_in_selects_the_file_backend_and_says_so(tmp_path: Path) -> None:
    seen, notes = _run_wrapped(tmp_path, ALLOW_FILE_KEYRING="1")

    assert seen["PYTHON_KEYRING_BACKEND"] == FILE_BACKEND
    assert "plain-text file" in notes


def test_an_explicit_backend_is_never_overridden(tmp_path: Path) -> None:
    chosen = "keyrings.alt.file.EncryptedKeyring"

    seen, _ = _run_wrapped(tmp_path, ALLOW_FILE_KEYRING="1", PYTHON_KEYRING_BACKEND=chosen)

    assert seen["PYTHON_KEYRING_BACKEND"] == chosen
