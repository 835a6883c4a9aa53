"""The desk's secrets (store key, audit HMAC key), kept only in the OS keyring.

Both keys are random 256-bit values made on first start. They are never written to disk by
us and never derived from a person's password (people share workstations). Each data
directory has its own entries, so several desks (or test stores) on one machine never share
a key.

Without a working keyring backend the desk refuses to open patient data. The file-based
backends of ``keyrings.alt`` store secrets next to the user's files; they are accepted only
when an administrator chose them explicitly (``PYTHON_KEYRING_BACKEND`` or keyring's own
config file), never because keyring fell back to them on its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail

from clinic_desktop.store.engine import StoreError

SERVICE = "clinic-desk"
FILE_BACKEND_HINT = (
    "Install and unlock a keyring service (GNOME Keyring or KWallet on Linux, Windows "
    "Credential Manager, macOS Keychain). On a machine without one, an administrator may "
    "choose to keep the key in a file in this user's profile: install keyrings.alt and set "
    "PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring (EncryptedKeyring also works, "
    "but asks for its password in a terminal at every start)."
)


@dataclass(frozen=True)
class DeskKeys:
    """The two secrets of one data directory. ``repr`` never shows them."""

    store_key_hex: str = field(repr=False)
    audit_key: bytes = field(repr=False)


def entry_name(kind: str, data_dir: Path) -> str:
    """Keyring user name for one secret of one data directory."""
    return f"{kind}:{data_dir.expanduser().resolve()}"


def _explicitly_chosen() -> bool:
    """True when a person picked the backend (environment variable or keyring config file)."""
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return True
    try:
        return keyring.core.load_config() is not None
    except Exception:  # a broken config file is not a choice we can honour
        return False


def _leaves(backend: KeyringBackend) -> list[KeyringBackend]:
    if isinstance(backend, chainer.ChainerBackend):
        return list(backend.backends)
    return [backend]


def _is_file_fallback(backend: KeyringBackend) -> bool:
    return type(backend).__module__.startswith("keyrings.alt")


def usable_backend(
    backend: KeyringBackend | None = None, *, explicit: bool | None = None
) -> KeyringBackend:
    """The keyring backend to use, or :class:`StoreError` naming the fix.

    Refuses the "fail" and "null" backends, an empty chain, and a ``keyrings.alt`` file
    backend that keyring picked by itself (that would be a silent plain-text fallback).
    """
    backend = backend if backend is not None else keyring.get_keyring()
    explicit = _explicitly_chosen() if explicit is None else explicit
    leaves = [b for b in _leaves(backend) if not isinstance(b, fail.Keyring)]
    leaves = [b for b in leaves if type(b).__module__ != "keyring.backends.null"]
    if not leaves:
        raise StoreError(
            "No keyring service is available to keep this workstation's encryption key, so "
            "patient data stays closed. " + FILE_BACKEND_HINT
        )
    if not explicit and all(_is_file_fallback(b) for b in leaves):
        raise StoreError(
            "The only keyring available keeps keys in a file, and nobody chose that on "
            "purpose, so patient data stays closed. " + FILE_BACKEND_HINT
        )
    _prefer_local_machine(backend)
    return backend


def _prefer_local_machine(backend: KeyringBackend) -> None:
    """On Windows keep the entry for this machine, not in the roaming profile (DESIGN 6)."""
    for leaf in _leaves(backend):
        if type(leaf).__name__ == "WinVaultKeyring":
            with contextlib.suppress(Exception):  # old pywin32 without the constant
                leaf.persist = "local machine"  # type: ignore[attr-defined]


def _get(backend: KeyringBackend, name: str) -> str | None:
    try:
        return backend.get_password(SERVICE, name)
    except keyring.errors.KeyringError as exc:
        raise StoreError(
            f"The keyring could not be read ({type(exc).__name__}); unlock it and try again. "
            + FILE_BACKEND_HINT
        ) from exc


def _set(backend: KeyringBackend, name: str, value: str) -> None:
    try:
        backend.set_password(SERVICE, name, value)
    except (keyring.errors.KeyringError, NotImplementedError) as exc:
        raise StoreError(
            f"The keyring refused to store this workstation's key ({type(exc).__name__}). "
            + FILE_BACKEND_HINT
        ) from exc
    if backend.get_password(SERVICE, name) != value:
        raise StoreError("The keyring did not keep this workstation's key. " + FILE_BACKEND_HINT)


def load_keys(data_dir: Path, *, create: bool, backend: Any = None) -> DeskKeys:
    """Read the keys of ``data_dir``; make them first if ``create`` and they are missing.

    A missing key for an existing store is an error, never a reason to make a new one: a new
    key cannot open the old file.
    """
    chosen = usable_backend(backend)
    store_name = entry_name("store-key", data_dir)
    audit_name = entry_name("audit-key", data_dir)
    store_hex = _get(chosen, store_name)
    audit_hex = _get(chosen, audit_name)
    if store_hex is None or audit_hex is None:
        if not create:
            missing = "encryption key" if store_hex is None else "audit key"
            raise StoreError(
                f"This workstation's {missing} for {data_dir} is not in the keyring (was the "
                "keyring reset, or the data folder moved, renamed or copied from another "
                "machine? Keys belong to the folder's original path). Restore the keyring or "
                "the folder's original location."
            )
        if store_hex is None:
            store_hex = secrets.token_hex(32)
            _set(chosen, store_name, store_hex)
        if audit_hex is None:
            audit_hex = secrets.token_hex(32)
            _set(chosen, audit_name, audit_hex)
    try:
        audit_key = bytes.fromhex(audit_hex)
    except ValueError as exc:
        raise StoreError("The audit key in the keyring is malformed.") from exc
    if len(audit_key) != 32:
        raise StoreError("The audit key in the keyring is malformed.")
    return DeskKeys(store_key_hex=store_hex.lower(), audit_key=audit_key)


def forget_keys(data_dir: Path, backend: Any = None) -> None:
    """Remove both entries (used when a brand-new store is abandoned before first use)."""
    chosen = backend if backend is not None else keyring.get_keyring()
    for kind in ("store-key", "audit-key"):
        try:
            chosen.delete_password(SERVICE, entry_name(kind, data_dir))
        except keyring.errors.PasswordDeleteError:
            continue
