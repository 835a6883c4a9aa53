"""Workstation settings: where the data lives, which server to sync with, the desk code.

Kept in ``settings.json`` in the data folder, next to the encrypted store. Nothing secret goes
in it (keys and the device credential live in the keyring), so the file is plain JSON an
administrator may read. Imports stay light: the command line reads this before any window.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

APP_NAME = "clinic-desk"
SETTINGS_FILE = "settings.json"
DATA_DIR_ENV = "CLINIC_DESK_DATA_DIR"
_DESK_CODE = re.compile(r"^[A-Z]{1,3}$")
# Names that must never be written into the settings file.
_SECRET_HINTS = ("key", "secret", "password", "token")


class ConfigError(Exception):
    """The settings cannot be read or would be invalid; the message is meant for a person."""


@dataclass
class Settings:
    """What a workstation remembers between starts (no secrets)."""

    server_url: str = ""  # empty: runs standalone until an admin sets it
    desk_code: str = ""  # set by first-run setup; the store's sync_state is the authority
    idle_lock_minutes: int | None = None  # local override of the clinic setting, if any

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad value."""
        if not isinstance(self.server_url, str) or not isinstance(self.desk_code, str):
            raise ConfigError("The server address and desk code must be text.")
        if self.idle_lock_minutes is not None and (
            not isinstance(self.idle_lock_minutes, int) or isinstance(self.idle_lock_minutes, bool)
        ):
            raise ConfigError("The idle lock must be a whole number of minutes.")
        if self.server_url:
            parts = urlsplit(self.server_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    "The server address must look like https://clinic-server.example:8443 "
                    f"(got {self.server_url!r})."
                )
        if self.desk_code and not _DESK_CODE.match(self.desk_code):
            raise ConfigError("The desk code is 1 to 3 capital letters, such as A or B.")
        if self.idle_lock_minutes is not None and not 1 <= self.idle_lock_minutes <= 240:
            raise ConfigError("The idle lock is between 1 and 240 minutes.")


def default_data_dir() -> Path:
    """The per-user data folder (``~/.local/share/clinic-desk`` on Linux), or the env override.

    ``CLINIC_DESK_DATA_DIR`` lets an installer or kiosk profile move it without a flag.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, roaming=False))


def resolve_data_dir(arg: str | os.PathLike[str] | None) -> Path:
    """``--data-dir`` if given, else the default; always absolute."""
    chosen = Path(arg).expanduser() if arg else default_data_dir()
    return chosen.resolve()


def settings_path(data_dir: Path) -> Path:
    return data_dir / SETTINGS_FILE


def load_settings(data_dir: Path) -> Settings:
    """The saved settings, or defaults when none were saved yet. Unknown keys are ignored
    (a newer version may have added some); a damaged file is a :class:`ConfigError`."""
    path = settings_path(data_dir)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        raise ConfigError(f"The settings file {path} cannot be read ({exc.strerror}).") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"The settings file {path} is damaged (line {exc.lineno}). Fix or delete it; "
            "deleting it only forgets the server address."
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"The settings file {path} is damaged (not a JSON object).")
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in data.items() if k in known})
    try:
        settings.validate()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return settings


def save_settings(data_dir: Path, settings: Settings) -> Path:
    """Validate and write the settings atomically (a crash never leaves half a file)."""
    settings.validate()
    data = asdict(settings)
    for name in data:
        if any(hint in name for hint in _SECRET_HINTS):  # guard against a future field
            raise ConfigError(f"{name!r} looks like a secret; secrets belong in the keyring.")
    data_dir.mkdir(parents=True, exist_ok=True)
    path = settings_path(data_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
