"""Fixtures for the installer tests: the built bundle and a clean, Python-free environment.

The bundle is built once per test session with ``installer/build.sh``; an existing
``dist/clinic-desktop`` is reused when it is newer than every source that goes into it, so a
developer who just ran ``make bundle`` does not wait for a second build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist" / "clinic-desktop"
EXE_NAME = "clinic-desktop.exe" if sys.platform == "win32" else "clinic-desktop"
BUILD_TIMEOUT_S = 900

# Everything whose change makes a built bundle stale.
BUNDLE_INPUTS = (
    "clinic_desktop",
    "resources",
    "installer/clinic-desktop.spec",
    "installer/clinic_desktop_main.py",
    "installer/bundle_filter.py",
    "pyproject.toml",
)


def _files(paths: Iterable[Path]) -> Iterable[Path]:
    for path in paths:
        if path.is_dir():
            yield from (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        elif path.is_file():
            yield path


def newest_input_mtime() -> float:
    """Modification time of the newest file that goes into the bundle."""
    return max(p.stat().st_mtime for p in _files(ROOT / name for name in BUNDLE_INPUTS))


def bundle_is_fresh(bundle: Path = DIST) -> bool:
    exe = bundle / EXE_NAME
    return exe.is_file() and exe.stat().st_mtime > newest_input_mtime()


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    """``dist/clinic-desktop``, built now unless an up-to-date build is already there."""
    if not bundle_is_fresh():
        result = subprocess.run(
            ["bash", str(ROOT / "installer" / "build.sh")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                "installer/build.sh failed:\n" + result.stdout[-3000:] + result.stderr[-5000:]
            )
        # A build touches the executable last; make "fresh" true even with coarse mtimes.
        os.utime(DIST / EXE_NAME)
    return DIST


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment like a clinic PC's: no venv, no Python on PATH, no PYTHONPATH.

    HOME and the XDG folders point into ``tmp_path`` so nothing touches the real ones.
    """
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": str(empty_bin),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmp_path),
    }
    (tmp_path / "run").mkdir(mode=0o700)
    assert shutil.which("python3", path=env["PATH"]) is None
    assert shutil.which("python", path=env["PATH"]) is None
    return env


def run_bundle(
    bundle: Path, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the bundled executable the way a person's shell would, outside the source tree."""
    return subprocess.run(
        [str(bundle / EXE_NAME), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
