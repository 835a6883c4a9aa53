"""The ``clinic-desktop`` command line (DESIGN.md section 8)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import keyring
import pytest

from clinic_desktop import __version__, app, demo
from clinic_desktop.store import keys as store_keys
from clinic_desktop.store.open import open_store


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clinic_desktop.app", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_version_prints_name_and_version() -> None:
    result = _cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"clinic-desktop {__version__}"
    assert result.stderr == ""


def test_the_command_module_imports_neither_qt_nor_the_database_stack() -> None:
    """The sign-in window must come up fast: heavy imports wait until they are needed."""
    probe = (
        "import sys; from clinic_desktop.app import main; rc = main(['--version']); "
        "heavy = [m for m in ('PySide6', 'sqlalchemy', 'sqlcipher3', 'keyring', 'alembic') "
        "if m in sys.modules]; print(rc, heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout + result.stderr


def test_no_keyring_backend_is_one_clear_line_and_a_failure(tmp_path: Path) -> None:
    result = _cli(
        "--data-dir",
        str(tmp_path / "desk"),
        "--load-demo",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    assert result.returncode == app.EXIT_FAILED
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("clinic-desktop:")]
    assert len(errors) == 1
    assert "No keyring service" in errors[0]
    assert "PYTHON_KEYRING_BACKEND=keyrings.alt.file" in errors[0]
    assert not (tmp_path / "desk" / "clinic-desk.db").exists()


def test_wrong_key_is_one_clear_line_and_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "desk"
    open_store(data_dir).close()
    keyring.set_password(
        store_keys.SERVICE, store_keys.entry_name("store-key", data_dir), "cd" * 32
    )
    before = (data_dir / "clinic-desk.db").read_bytes()
    assert app.main(["--data-dir", str(data_dir), "--load-demo"]) == app.EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "cannot be opened with this workstation's key" in err
    assert (data_dir / "clinic-desk.db").read_bytes() == before


def test_missing_faker_names_the_demo_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "faker" else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert app.main(["--data-dir", str(tmp_path / "desk"), "--load-demo"]) == app.EXIT_FAILED
    err = capsys.readouterr().err
    assert "Faker" in err
    assert "clinic-desk[demo]" in err
    assert not (tmp_path / "desk").exists()  # nothing was opened or created


def test_an_unexpected_error_names_type_and_place_but_never_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise ValueError("patient Zyxwquorth Fennimore, phone +15551234567")

    monkeypatch.setattr(demo, "load_demo", broken)
    assert app.main(["--data-dir", str(tmp_path), "--load-demo"]) == app.EXIT_UNEXPECTED
    err = capsys.readouterr().err
    assert "ValueError" in err
    assert "test_cli.py" in err
    assert "Zyxwquorth" not in err
    assert "5551234567" not in err
    assert "Traceback" not in err


def test_self_test_is_handed_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Path] = []

    def run(data_dir: Path) -> int:
        seen.append(data_dir)
        return 7

    fake = types.ModuleType("clinic_desktop.selftest")
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clinic_desktop.selftest", fake)
    assert app.main(["--data-dir", str(tmp_path / "x"), "--self-test"]) == 7
    assert seen == [(tmp_path / "x").resolve()]


def test_without_an_action_the_gui_runs_on_the_default_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Path, bool]] = []

    def run_gui(data_dir: Path, *, allow_insecure_local_server: bool = False) -> int:
        seen.append((data_dir, allow_insecure_local_server))
        return 0

    fake = types.ModuleType("clinic_desktop.views.application")
    fake.run_gui = run_gui  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clinic_desktop.views.application", fake)
    monkeypatch.setenv("CLINIC_DESK_DATA_DIR", str(tmp_path / "kiosk"))
    assert app.main([]) == 0
    assert seen == [((tmp_path / "kiosk").resolve(), False)]
    assert app.main(["--allow-insecure-local-server"]) == 0
    assert seen[-1] == ((tmp_path / "kiosk").resolve(), True)


def test_load_demo_and_self_test_cannot_be_combined(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        app.main(["--load-demo", "--self-test"])
    assert stopped.value.code == app.EXIT_USAGE
    assert "not allowed with" in capsys.readouterr().err
