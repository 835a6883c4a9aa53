"""``clinic-desktop --self-test`` from the source tree: passes, and names the step that broke.

The same command on the built bundle is covered by test_bundle.py (marked ``installer``).
These run the real command line in a subprocess, as support staff would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clinic_desktop import __version__
from clinic_desktop.selftest import STEP_CODES
from tests.installer.conftest import ROOT


def _self_test(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    env.pop("QT_QPA_PLATFORM", None)  # the self-test must go offscreen by itself
    env.pop("DISPLAY", None)
    env.update(XDG_DATA_HOME=str(tmp_path / "xdg"), TMPDIR=str(tmp_path), **extra)
    return subprocess.run(
        [sys.executable, "-m", "clinic_desktop.app", "--self-test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_self_test_passes_headless_with_a_throw_away_store(tmp_path: Path) -> None:
    result = _self_test(tmp_path, CLINIC_DESK_DATA_DIR=str(tmp_path / "desk"))

    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f"self-test OK: clinic-desktop {__version__};")
    assert "keyring in-memory (self-test store only)" in line
    assert "web view loaded a local page" in line
    # The throw-away store is gone and no keyring file was written for it.
    desk = tmp_path / "desk"
    assert (list(desk.rglob("*")) if desk.exists() else []) == []
    assert not (tmp_path / "xdg" / "python_keyring").exists()


def test_a_missing_resource_fails_the_resources_step_with_its_code(tmp_path: Path) -> None:
    empty = tmp_path / "no-resources"
    empty.mkdir()

    result = _self_test(tmp_path, CLINIC_DESK_RESOURCES=str(empty))

    assert result.returncode == STEP_CODES["resources"]
    assert "self-test FAILED at resources: missing in" in result.stderr
    assert "style.qss" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_keyring_that_cannot_store_fails_the_store_step(tmp_path: Path) -> None:
    """With a chosen backend that refuses writes, the self-test says so instead of crashing."""
    result = _self_test(tmp_path, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")

    assert result.returncode == STEP_CODES["store"], result.stdout + result.stderr[-2000:]
    assert "self-test FAILED at store:" in result.stderr
    assert "keyring" in result.stderr.lower()
    assert "Traceback" not in result.stderr
