"""Request dependencies: protocol versions, the signed-in user and the workstation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Header, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from clinic_desktop.models import User, Workstation
from clinic_desktop.sync import protocol
from clinic_server.security import TokenInvalid, read_access_token, same_secret
from clinic_server.state import ServerState, get_state
from clinic_server.tables import AuthSession, DeviceCredential


def _version(value: str, name: str, current: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{name} must be a number.") from None
    low, high = protocol.accepted_versions(current)
    if number < low:
        raise HTTPException(
            status.HTTP_426_UPGRADE_REQUIRED,
            f"This workstation's software is too old for the server ({name} {number}; "
            f"the server accepts {low} to {high}). Update Clinic Desk; nothing is lost.",
        )
    if number > high:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"This workstation is newer than the server ({name} {number}; the server "
            f"speaks up to {high}). Update the server.",
        )
    return number


def check_versions(
    x_clinic_protocol: Annotated[str, Header(alias=protocol.HEADER_PROTOCOL)],
    x_clinic_schema: Annotated[str, Header(alias=protocol.HEADER_SCHEMA)],
) -> None:
    """Every API request names its protocol and schema version."""
    _version(x_clinic_protocol, protocol.HEADER_PROTOCOL, protocol.PROTOCOL_VERSION)
    _version(x_clinic_schema, protocol.HEADER_SCHEMA, protocol.SCHEMA_VERSION)


@dataclass(frozen=True)
class Principal:
    user_id: str
    clinic_id: str
    username: str
    full_name: str
    roles: frozenset[str]
    session_id: str

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


_bearer = HTTPBearer(auto_error=False)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"}
    )


def current_principal(
    state: Annotated[ServerState, Depends(get_state)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The signed-in user, re-checked against the database on every request."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("Sign in first (no access token).")
    try:
        claims = read_access_token(
            state.settings.token_secret.get_secret_value(), credentials.credentials
        )
    except TokenInvalid as exc:
        raise _unauthorized(str(exc)) from None
    with state.db.read() as session:
        found = session.execute(
            select(User, AuthSession)
            .outerjoin(AuthSession, AuthSession.id == claims.session_id)
            .where(User.id == claims.user_id)
        ).first()
        user, auth = (found[0], found[1]) if found is not None else (None, None)
        if user is None or user.deleted or user.clinic_id != claims.clinic_id:
            raise _unauthorized("This account no longer exists.")
        if user.disabled:
            raise _unauthorized("This account is disabled; ask an admin.")
        if auth is None or auth.revoked_at is not None or auth.user_id != user.id:
            raise _unauthorized("This sign-in was ended; sign in again.")
        return Principal(
            user_id=user.id,
            clinic_id=user.clinic_id,
            username=user.username,
            full_name=user.full_name,
            roles=frozenset(user.roles or []),
            session_id=claims.session_id,
        )


def require_roles(*roles: str) -> object:
    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has(*roles):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"Only a user with the {' or '.join(roles)} role can do this.",
            )
        return principal

    return Depends(dependency)


@dataclass(frozen=True)
class Device:
    device_id: str
    clinic_id: str
    desk_code: str


def current_device(
    state: Annotated[ServerState, Depends(get_state)],
    principal: Annotated[Principal, Depends(current_principal)],
    x_device_id: Annotated[str, Header(alias=protocol.HEADER_DEVICE_ID, max_length=64)],
    x_device_secret: Annotated[str, Header(alias=protocol.HEADER_DEVICE_SECRET, max_length=200)],
) -> Device:
    """The enrolled, unrevoked workstation of the signed-in user's clinic."""
    with state.db.read() as session:
        found = session.execute(
            select(DeviceCredential, Workstation)
            .join(Workstation, Workstation.id == DeviceCredential.device_id)
            .where(DeviceCredential.device_id == x_device_id)
        ).first()
        credential, workstation = (found[0], found[1]) if found is not None else (None, None)
        if (
            credential is None
            or workstation is None
            or not same_secret(x_device_secret, credential.secret_hash)
        ):
            raise _unauthorized("This workstation is not enrolled (unknown device credential).")
        if workstation.revoked or workstation.deleted:
            raise _unauthorized("This workstation's access was revoked; ask an admin to enrol it.")
        if credential.clinic_id != principal.clinic_id:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "This workstation belongs to another clinic."
            )
        stale = credential.last_seen_at is None or credential.last_seen_at < datetime.now(
            UTC
        ) - timedelta(minutes=1)
    if stale:
        with state.db.write() as session:
            fresh = session.get(DeviceCredential, x_device_id)
            if fresh is not None:
                fresh.last_seen_at = datetime.now(UTC)
    return Device(
        device_id=x_device_id, clinic_id=credential.clinic_id, desk_code=workstation.desk_code
    )


def device_if_valid(state: ServerState, device_id: str | None, secret: str | None) -> Device | None:
    """The workstation named by optional headers (sign-in), or ``None`` if absent/invalid."""
    if not device_id or not secret:
        return None
    with state.db.read() as session:
        credential = session.get(DeviceCredential, device_id)
        workstation = session.get(Workstation, device_id)
        if credential is None or workstation is None or workstation.revoked or workstation.deleted:
            return None
        if not same_secret(secret, credential.secret_hash):
            return None
        return Device(device_id, credential.clinic_id, workstation.desk_code)
