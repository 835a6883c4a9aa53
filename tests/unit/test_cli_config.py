"""Workstation settings (``settings.json`` in the data folder): no secrets, clear errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import pytest

from clinic_desktop import config
from clinic_desktop.config import ConfigError, Settings, load_settings, save_settings


def test_defaults_when_nothing_was_saved(tmp_path: Path) -> None:
    assert load_settings(tmp_path) == Settings(server_url="", desk_code="", idle_lock_minutes=None)


def test_save_then_load_roundtrip(tmp_path: Path) -> None:
    saved = Settings(server_url="https://clinic.example:8443", desk_code="B", idle_lock_minutes=10)
    path = save_settings(tmp_path / "new", saved)
    assert path == tmp_path / "new" / "settings.json"
    assert load_settings(tmp_path / "new") == saved
    assert not list((tmp_path / "new").glob("*.tmp"))  # written atomically


def test_unknown_keys_from_a_newer_version_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text(json.dumps({"desk_code": "C", "theme": "dark"}))
    assert load_settings(tmp_path).desk_code == "C"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "damaged"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"server_url": "ftp://x"}), "server address"),
        (json.dumps({"server_url": 42}), "must be text"),
        (json.dumps({"desk_code": "b1"}), "desk code"),
        (json.dumps({"idle_lock_minutes": 0}), "idle lock"),
        (json.dumps({"idle_lock_minutes": True}), "whole number"),
    ],
)
def test_bad_settings_are_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "settings.json").write_text(content)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(tmp_path)
    assert "settings.json" in str(caught.value)


def test_invalid_values_are_never_saved(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="desk code"):
        save_settings(tmp_path, Settings(desk_code="toolong"))
    assert not (tmp_path / "settings.json").exists()


def test_a_field_that_looks_like_a_secret_is_refused(tmp_path: Path) -> None:
    @dataclass
    class Leaky(Settings):
        device_secret: str = "s3cr3t"

    with pytest.raises(ConfigError, match="keyring"):
        save_settings(tmp_path, Leaky())
    assert not (tmp_path / "settings.json").exists()


def test_data_dir_comes_from_the_flag_then_the_environment_then_platformdirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(config.DATA_DIR_ENV, raising=False)
    expected = Path(platformdirs.user_data_dir("clinic-desk", appauthor=False)).resolve()
    assert config.resolve_data_dir(None) == expected
    monkeypatch.setenv(config.DATA_DIR_ENV, str(tmp_path / "env"))
    assert config.resolve_data_dir(None) == (tmp_path / "env").resolve()
    assert config.resolve_data_dir(str(tmp_path / "flag")) == (tmp_path / "flag").resolve()
