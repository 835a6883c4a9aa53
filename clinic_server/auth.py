"""Sign-in, token refresh and sign-out (``/api/v1/auth``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clinic_desktop.models import User, new_id
from clinic_desktop.services import passwords
from clinic_desktop.sync import protocol
from clinic_server.deps import Device, Principal, check_versions, current_principal, device_if_valid
from clinic_server.security import (
    AccessClaims,
    issue_access_token,
    make_refresh_token,
    refresh_session_id,
    same_secret,
)
from clinic_server.state import ServerState, get_state
from clinic_server.sync.apply import server_write
from clinic_server.sync.changes import ChangeSet
from clinic_server.tables import AuthSession, DeviceUser, LoginAttempt

router = APIRouter(prefix="/auth", tags=["auth"], dependencies=[Depends(check_versions)])

BAD_SIGN_IN = "Wrong user name or password."


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")
    password: str = Field(min_length=1, max_length=1024, pattern=r"^[^\x00]*$")
    clinic_id: str | None = Field(default=None, max_length=36, pattern=r"^[^\x00]*$")


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=300, pattern=r"^[^\x00]*$")


class UserOut(BaseModel):
    id: str
    clinic_id: str
    username: str
    full_name: str
    roles: list[str]


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - OAuth token type
    expires_in: int
    user: UserOut


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _tokens(state: ServerState, user: User, auth: AuthSession, refresh: str) -> dict[str, Any]:
    lifetime = timedelta(minutes=state.settings.access_token_minutes)
    access = issue_access_token(
        state.settings.token_secret.get_secret_value(),
        AccessClaims(user_id=user.id, clinic_id=user.clinic_id, session_id=auth.id),
        lifetime,
    )
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": int(lifetime.total_seconds()),
        "user": {
            "id": user.id,
            "clinic_id": user.clinic_id,
            "username": user.username,
            "full_name": user.full_name,
            "roles": list(user.roles or []),
        },
    }


def _record_attempt(session: Session, key: str, success: bool) -> None:
    session.add(LoginAttempt(key=key, at=datetime.now(UTC), success=success))


def _bump_failures(state: ServerState, user_id: str) -> None:
    """Count a failed password on the user row (synced, so every desk sees the lock)."""
    settings = state.settings
    with state.db.write() as session:
        user = session.get(User, user_id, with_for_update=True)
        if user is None:
            return
        changes = ChangeSet(user.clinic_id)
        failures = (user.failed_attempts or 0) + 1
        values: dict[str, Any] = {"failed_attempts": failures}
        if failures >= settings.lockout_threshold:
            values["locked_until"] = datetime.now(UTC) + timedelta(minutes=settings.lockout_minutes)
        server_write(session, changes, user, values, state.clock)
        changes.finish(session)
        state.notifier.notify_in_transaction(session, user.clinic_id)
    state.notifier.notify_local(user.clinic_id)


@router.post("/login", response_model=TokenOut)
def login(
    body: LoginIn,
    request: Request,
    response: Response,
    state: Annotated[ServerState, Depends(get_state)],
    x_device_id: Annotated[
        str | None, Header(alias=protocol.HEADER_DEVICE_ID, max_length=64)
    ] = None,
    x_device_secret: Annotated[
        str | None, Header(alias=protocol.HEADER_DEVICE_SECRET, max_length=200)
    ] = None,
) -> dict[str, Any]:
    """Sign in with user name and password; rate-limited per user name and address."""
    settings = state.settings
    metrics = state.metrics
    device: Device | None = device_if_valid(state, x_device_id, x_device_secret)
    clinic_id = device.clinic_id if device else body.clinic_id
    username = body.username.strip().casefold()
    key = f"{username}|{_client_ip(request)}"[:200]
    now = datetime.now(UTC)
    window = timedelta(minutes=settings.login_window_minutes)
    with state.db.read() as session:
        failures = session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.key == key, LoginAttempt.at > now - window, ~LoginAttempt.success)
        )
        if (failures or 0) >= settings.login_max_failures_per_window:
            metrics.logins.labels("rate_limited").inc()
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "Too many sign-in attempts; wait a few minutes and try again.",
                headers={"Retry-After": str(int(window.total_seconds()))},
            )
        query = select(User).where(func.lower(User.username) == username, ~User.deleted)
        if clinic_id:
            query = query.where(User.clinic_id == clinic_id)
        users = list(session.scalars(query.limit(2)))
    if len(users) > 1:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "This user name exists in several clinics; sign in from an enrolled workstation "
            "or give the clinic id.",
        )
    user = users[0] if users else None
    if len(body.password.encode("utf-8")) > passwords.MAX_BYTES:
        passwords.burn_verify_time(body.password[:10])
        ok = False
    elif user is None:
        passwords.burn_verify_time(body.password)
        ok = False
    elif user.locked_until is not None and user.locked_until > now:
        with state.db.write() as session:
            _record_attempt(session, key, False)
        metrics.logins.labels("locked").inc()
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "This account is locked after repeated wrong passwords; try again later "
            "or ask an admin to unlock it.",
        )
    else:
        ok = passwords.verify_password(body.password, user.password_hash)
    if not ok or user is None:
        with state.db.write() as session:
            _record_attempt(session, key, False)
        if user is not None:
            _bump_failures(state, user.id)
        metrics.logins.labels("failed").inc()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, BAD_SIGN_IN)
    if user.disabled:
        metrics.logins.labels("disabled").inc()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "This account is disabled; ask an admin.")
    if user.failed_attempts or user.locked_until is not None:
        with state.db.write() as session:
            fresh = session.get(User, user.id, with_for_update=True)
            if fresh is not None:
                changes = ChangeSet(fresh.clinic_id)
                server_write(
                    session,
                    changes,
                    fresh,
                    {"failed_attempts": 0, "locked_until": None},
                    state.clock,
                )
                changes.finish(session)
                state.notifier.notify_in_transaction(session, fresh.clinic_id)
        state.notifier.notify_local(user.clinic_id)
    with state.db.write() as session:
        _record_attempt(session, key, True)
        session_id = new_id()
        refresh, refresh_hash = make_refresh_token(session_id)
        auth = AuthSession(
            id=session_id,
            clinic_id=user.clinic_id,
            user_id=user.id,
            device_id=device.device_id if device else None,
            token_hash=refresh_hash,
            generation=1,
            created_at=now,
            expires_at=now + timedelta(days=settings.refresh_token_days),
            revoked_reason="",
        )
        session.add(auth)
        if device is not None and session.get(DeviceUser, (device.device_id, user.id)) is None:
            session.add(DeviceUser(device_id=device.device_id, user_id=user.id, first_seen_at=now))
    metrics.logins.labels("ok").inc()
    response.headers["Cache-Control"] = "no-store"
    return _tokens(state, user, auth, refresh)


@router.post("/refresh", response_model=TokenOut)
def refresh(
    body: RefreshIn, response: Response, state: Annotated[ServerState, Depends(get_state)]
) -> dict[str, Any]:
    """Swap a refresh token for a new pair; a reused (already rotated) token ends the session."""
    session_id = refresh_session_id(body.refresh_token)
    now = datetime.now(UTC)
    problem: str | None = None
    with state.db.write() as session:
        auth = session.get(AuthSession, session_id, with_for_update=True) if session_id else None
        user = session.get(User, auth.user_id) if auth is not None else None
        if auth is None or user is None:
            problem = "This sign-in is not valid; sign in again."
        elif auth.revoked_at is not None:
            problem = "This sign-in was ended; sign in again."
        elif auth.expires_at < now:
            problem = "This sign-in has expired; sign in again."
        elif not same_secret(body.refresh_token, auth.token_hash):
            auth.revoked_at = now
            auth.revoked_reason = "refresh token reused"
            problem = "This sign-in was ended for safety (an old token was reused); sign in again."
        elif user.disabled or user.deleted:
            auth.revoked_at = now
            auth.revoked_reason = "user disabled"
            problem = "This account is disabled; ask an admin."
        else:
            token, token_hash = make_refresh_token(auth.id)
            auth.token_hash = token_hash
            auth.generation += 1
    if problem is not None or auth is None or user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, problem or "Sign in again.")
    response.headers["Cache-Control"] = "no-store"
    return _tokens(state, user, auth, token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(body: RefreshIn, state: Annotated[ServerState, Depends(get_state)]) -> Response:
    """End a sign-in: its refresh token and access tokens stop working."""
    session_id = refresh_session_id(body.refresh_token)
    if session_id:
        with state.db.write() as session:
            auth = session.get(AuthSession, session_id, with_for_update=True)
            if (
                auth is not None
                and auth.revoked_at is None
                and same_secret(body.refresh_token, auth.token_hash)
            ):
                auth.revoked_at = datetime.now(UTC)
                auth.revoked_reason = "signed out"
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=UserOut)
def me(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, Any]:
    return {
        "id": principal.user_id,
        "clinic_id": principal.clinic_id,
        "username": principal.username,
        "full_name": principal.full_name,
        "roles": sorted(principal.roles),
    }
