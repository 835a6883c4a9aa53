"""Joining a server: enrolment, the device credential in the keyring, and online sign-in.

- :func:`enrol` trades an admin's one-time code for this workstation's credential. The
  secret goes to the OS keyring (the store's keyring rules apply: no silent file fallback);
  the server's ``device_id`` becomes this store's device id, because the server stamps
  ``origin`` with it and the audit chain is kept per origin.
- :func:`server_sign_in` checks a password against the server when it is reachable. The
  server wins: a password changed or an account disabled there is copied into this desk's
  cached account at once, so the local offline sign-in agrees with the server from then on.
  When the server cannot be reached it raises :class:`Offline` and the caller signs in
  locally (``services.users.sign_in``) for people who have signed in on this desk before.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import keyring.errors
from sqlalchemy import func, select, update

from clinic_desktop.models import SYNCED_ENTITIES, OutboxEntry, SyncState, User
from clinic_desktop.services import passwords
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import AuthenticationFailed, InvalidState
from clinic_desktop.store import keys
from clinic_desktop.store.engine import StoreError
from clinic_desktop.store.open import (
    CLINIC_ID_KEY,
    DESK_CODE_KEY,
    DEVICE_ID_KEY,
    OpenedStore,
)
from clinic_desktop.sync import state
from clinic_desktop.sync.errors import AuthRequired, Forbidden, RequestRejected
from clinic_desktop.sync.state import reading, sync_session
from clinic_desktop.sync.transport import DeviceCredential, Tokens, Transport

log = logging.getLogger(__name__)

SERVER_URL_KEY = "sync.server_url"
CREDENTIAL_KIND = "device-credential"


# --- the credential in the keyring ----------------------------------------------------------


def save_credential(data_dir: Path, credential: DeviceCredential) -> None:
    """Keep the device credential in the keyring entry of this data directory."""
    backend = keys.usable_backend()
    payload = json.dumps(
        {
            "device_id": credential.device_id,
            "secret": credential.secret,
            "clinic_id": credential.clinic_id,
        }
    )
    name = keys.entry_name(CREDENTIAL_KIND, data_dir)
    try:
        backend.set_password(keys.SERVICE, name, payload)
    except (keyring.errors.KeyringError, NotImplementedError) as exc:
        raise StoreError(
            "The keyring refused to keep this workstation's server credential. "
            + keys.FILE_BACKEND_HINT
        ) from exc


def load_credential(data_dir: Path) -> DeviceCredential | None:
    """The stored device credential, or ``None`` if this workstation is not enrolled."""
    backend = keys.usable_backend()
    try:
        raw = backend.get_password(keys.SERVICE, keys.entry_name(CREDENTIAL_KIND, data_dir))
    except keyring.errors.KeyringError as exc:
        raise StoreError("The keyring could not be read; unlock it and try again.") from exc
    if not raw:
        return None
    data = json.loads(raw)
    return DeviceCredential(
        device_id=str(data["device_id"]),
        secret=str(data["secret"]),
        clinic_id=str(data.get("clinic_id", "")),
    )


def forget_credential(data_dir: Path) -> None:
    backend = keys.usable_backend()
    try:
        backend.delete_password(keys.SERVICE, keys.entry_name(CREDENTIAL_KIND, data_dir))
    except keyring.errors.PasswordDeleteError:
        return


def server_url(store_or_desk: OpenedStore | Desk) -> str | None:
    with reading(_desk_like(store_or_desk)) as session:
        return state.get(session, SERVER_URL_KEY)


# --- enrolment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    """The result of :func:`enrol`: who this workstation now is on the server."""

    device_id: str
    clinic_id: str
    clinic_name: str
    desk_code: str
    server_url: str


class _EngineOnly:
    """Just enough of a Desk for :func:`reading` before the store has an identity."""

    def __init__(self, store: OpenedStore) -> None:
        self.engine = store.engine
        self.clock = store.clock
        self.device_id = store.device_id


def _desk_like(obj: OpenedStore | Desk) -> Desk:
    return obj if isinstance(obj, Desk) else _EngineOnly(obj)  # type: ignore[return-value]


def _has_local_rows(store: OpenedStore) -> bool:
    with reading(_desk_like(store)) as session:
        if session.scalar(select(func.count()).select_from(OutboxEntry)):
            return True
        for cls in SYNCED_ENTITIES.values():
            if session.scalar(select(func.count()).select_from(cls)):
                return True
    return False


def enrol(
    store: OpenedStore,
    server: str,
    code: str,
    desk_code: str,
    name: str,
    *,
    allow_insecure: bool = False,
) -> Enrolment:
    """Enrol this workstation with an admin's one-time ``code``.

    Only a store without clinic data can join a server (its rows would carry another
    clinic's ids). Afterwards ``store.device_id``/``store.clock`` are this desk's server
    identity and :func:`clinic_desktop.store.open.desk_for` returns its :class:`Desk`.
    """
    with reading(_desk_like(store)) as session:
        existing_clinic = state.get(session, CLINIC_ID_KEY)
    if existing_clinic is not None or _has_local_rows(store):
        raise InvalidState(
            "This workstation already holds clinic data, so it cannot join a server as a new "
            "desk. Enrol a freshly installed workstation instead."
        )
    transport = Transport(server, allow_insecure=allow_insecure)
    try:
        try:
            answer = transport.enrol(code.strip(), desk_code.strip().upper(), name.strip())
        except RequestRejected as exc:
            raise InvalidState(str(exc)) from exc
        except (AuthRequired, Forbidden) as exc:
            raise AuthenticationFailed(str(exc)) from exc
    finally:
        transport.close()
    credential = DeviceCredential(
        device_id=answer["device_id"], secret=answer["device_secret"], clinic_id=answer["clinic_id"]
    )
    save_credential(store.data_dir, credential)
    with sync_session(_desk_like(store)) as session:
        for key, value in (
            (DEVICE_ID_KEY, answer["device_id"]),
            (CLINIC_ID_KEY, answer["clinic_id"]),
            (DESK_CODE_KEY, answer["desk_code"]),
            (SERVER_URL_KEY, transport.base_url),
        ):
            row = session.get(SyncState, key)
            if row is None:
                session.add(SyncState(key=key, value=value))
            else:
                row.value = value
    # The store object now speaks as the enrolled device.
    from clinic_desktop.models.hlc import HybridLogicalClock

    store.device_id = answer["device_id"]
    store.clock = HybridLogicalClock(answer["device_id"])
    return Enrolment(
        device_id=answer["device_id"],
        clinic_id=answer["clinic_id"],
        clinic_name=answer.get("clinic_name", ""),
        desk_code=answer["desk_code"],
        server_url=transport.base_url,
    )


def transport_for(
    store: OpenedStore, *, allow_insecure: bool = False, server: str | None = None
) -> Transport:
    """A transport to this store's server with its credential; raises if not enrolled."""
    url = server or server_url(store)
    if not url:
        raise InvalidState("No server address is set for this workstation.")
    credential = load_credential(store.data_dir)
    return Transport(url, allow_insecure=allow_insecure, credential=credential)


# --- sign-in against the server -------------------------------------------------------------


def server_sign_in(desk: Desk, transport: Transport, username: str, password: str) -> Tokens:
    """Check the password with the server and bring the desk's cached account in line.

    Raises :class:`AuthenticationFailed` when the server refuses (its message, e.g. wrong
    password, locked, disabled) and :class:`~clinic_desktop.sync.errors.Offline` /
    :class:`~clinic_desktop.sync.errors.ServerError` when it cannot answer (sign in locally).
    """
    try:
        tokens = transport.login(username, password, clinic_id=desk.clinic_id)
    except AuthRequired as exc:
        _note_refusal(desk, username, str(exc))
        raise AuthenticationFailed(str(exc)) from exc
    except Forbidden as exc:
        _note_refusal(desk, username, str(exc))
        raise AuthenticationFailed(str(exc)) from exc
    except RequestRejected as exc:
        raise AuthenticationFailed(str(exc)) from exc
    reconcile_user(desk, tokens.user, password)
    return tokens


def reconcile_user(desk: Desk, user: dict[str, object], password: str) -> None:
    """The server accepted ``password``: make the cached account accept it too.

    Written as server data (no outbox entry): it is the server's state, not a local edit.
    """
    user_id = str(user.get("id", ""))
    if not user_id:
        return
    with reading(desk) as session:
        cached = session.get(User, user_id)
        if cached is None:
            return  # not downloaded yet; the pull brings it
        stored_hash, disabled = cached.password_hash, cached.disabled
        locked = bool(cached.failed_attempts) or cached.locked_until is not None
    values: dict[str, object] = {}
    if disabled:
        values["disabled"] = False
    if locked:
        # The server (which applies the same lock-out) let this person in.
        values["failed_attempts"] = 0
        values["locked_until"] = None
    roles = user.get("roles")
    if isinstance(roles, list):
        values["roles"] = [str(r) for r in roles]
    if full_name := user.get("full_name"):
        values["full_name"] = str(full_name)
    if not passwords.verify_password(password, stored_hash):
        values["password_hash"] = passwords.hash_password(password)
    if values:
        with sync_session(desk) as session:
            session.execute(update(User).where(User.id == user_id).values(**values))


def _note_refusal(desk: Desk, username: str, message: str) -> None:
    """A server refusal that names a disabled account disables the cached one too."""
    if "disabled" not in message.lower():
        return
    with sync_session(desk) as session:
        session.execute(
            update(User).where(User.username == username.strip().casefold()).values(disabled=True)
        )


def actor_from_server(user: dict[str, object]) -> Actor:
    """An :class:`Actor` for a person the server signed in before their row reached this desk."""
    roles = user.get("roles")
    return Actor(
        user_id=str(user.get("id", "")),
        username=str(user.get("username", "")),
        full_name=str(user.get("full_name", "")),
        roles=frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset(),
    )


@dataclass(frozen=True)
class SignIn:
    """Who signed in, and how: ``tokens`` is ``None`` for an offline (local) sign-in."""

    actor: Actor
    tokens: Tokens | None

    @property
    def online(self) -> bool:
        return self.tokens is not None


def sign_in_anywhere(
    desk: Desk, transport: Transport | None, username: str, password: str
) -> SignIn:
    """The sign-in window's one call: the server when reachable, else this desk's cache.

    Online, the server's answer wins (a changed password or a disabled account is copied
    into the cache first, so the local check that follows agrees). Offline, only people who
    have an account on this desk can sign in, against their cached hash.
    """
    from clinic_desktop.services import users
    from clinic_desktop.sync.errors import Offline, ServerError

    if transport is None or transport.credential is None:
        return SignIn(users.sign_in(desk, username, password), None)
    try:
        tokens = server_sign_in(desk, transport, username, password)
    except (Offline, ServerError):
        return SignIn(users.sign_in(desk, username, password), None)
    with reading(desk) as session:
        known = session.get(User, str(tokens.user.get("id", ""))) is not None
    if not known:
        # First sign-in on a new desk, before the first download brought the account.
        return SignIn(actor_from_server(tokens.user), tokens)
    return SignIn(users.sign_in(desk, username, password), tokens)
