"""User accounts: first-run setup, sign-in with lock-out, and account management by admins.

Every change and every sign-in attempt (success or failure) writes an audit event in the same
transaction. Services call :func:`authorize` so that an account disabled (or a role removed)
after sign-in stops working at the next action, not at the next sign-in.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from clinic_desktop.models import ROLES, ClinicSettings, SyncState, User, Workstation, new_id
from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_desktop.services import passwords
from clinic_desktop.services.audit import record_event
from clinic_desktop.services.context import Actor, Clock, Desk
from clinic_desktop.services.errors import (
    AuthenticationFailed,
    InvalidState,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from clinic_desktop.services.numbering import DESK_CODE

MAX_FAILED_ATTEMPTS = 5
LOCKOUT = timedelta(minutes=15)
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
BAD_SIGN_IN = "Wrong user name or password."

# SyncState keys holding this desk's identity (read by store.open when the store opens).
CLINIC_ID_KEY = "clinic_id"
DESK_CODE_KEY = "desk_code"


def actor_for(user: User) -> Actor:
    """The snapshot services receive for a signed-in user."""
    return Actor(
        user_id=user.id,
        username=user.username,
        full_name=user.full_name,
        roles=frozenset(user.roles or []),
    )


def authorize(session: Session, actor: Actor, *roles: str, action: str) -> User:
    """Check, against the stored account, that ``actor`` may still do ``action`` now.

    Refuses a disabled or removed account even though its Actor snapshot is still in memory,
    and uses the stored roles (an admin may have taken one away since sign-in).
    """
    user = session.get(User, actor.user_id)
    if user is None or user.deleted:
        raise PermissionDenied("Your account no longer exists. Please sign in again.")
    if user.disabled:
        raise PermissionDenied("Your account has been disabled. Ask an administrator.")
    if roles and not any(user.has_role(role) for role in roles):
        needed = " or ".join(roles)
        raise PermissionDenied(f"Only a user with the {needed} role can {action}.")
    return user


# ---------------------------------------------------------------------------------------------
# Validation


def _clean_username(raw: str) -> str:
    return raw.strip().casefold()


def _check_username(username: str, errors: dict[str, str]) -> None:
    if not USERNAME.match(username):
        errors["username"] = (
            "A user name is 3 to 64 characters: letters a-z, digits, dot, dash or underscore, "
            "starting with a letter or digit."
        )


def _clean_full_name(raw: str, errors: dict[str, str], field: str = "full_name") -> str:
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name:
        errors[field] = "Enter the person's full name."
    elif len(name) > 200:
        errors[field] = "The name is too long (at most 200 characters)."
    elif any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        errors[field] = "The name cannot contain control characters."
    return name


def _clean_roles(roles: Iterable[str], errors: dict[str, str]) -> list[str]:
    cleaned: list[str] = []
    for role in roles:
        value = role.strip().casefold()
        if value not in ROLES:
            errors["roles"] = f"Unknown role {role!r}. Roles are: {', '.join(ROLES)}."
            return []
        if value not in cleaned:
            cleaned.append(value)
    if not cleaned and "roles" not in errors:
        errors["roles"] = "Give the user at least one role."
    return sorted(cleaned, key=ROLES.index)


# ---------------------------------------------------------------------------------------------
# First-run setup


@dataclass(frozen=True)
class SetupResult:
    desk: Desk
    admin: Actor


def is_set_up(engine: Engine) -> bool:
    """True once this store holds a clinic (setup must not run twice)."""
    with Session(engine) as session:
        has_identity = session.get(SyncState, CLINIC_ID_KEY) is not None
        has_settings = session.scalar(select(func.count()).select_from(ClinicSettings)) or 0
        return has_identity or has_settings > 0


def setup_clinic(
    engine: Engine,
    *,
    device_id: str,
    audit_key: bytes,
    clock: HybridLogicalClock,
    clinic_name: str,
    currency: str,
    desk_code: str,
    admin_username: str,
    admin_full_name: str,
    password: str,
    workstation_name: str = "",
    clinic_id: str | None = None,
    timezone: str = "UTC",
    now: Clock | None = None,
) -> SetupResult:
    """First start of a new clinic on this desk: settings, workstation, first admin, identity.

    Everything is validated first and written in one transaction, together with the desk's
    identity (``clinic_id`` and ``desk_code`` in ``sync_state``) that opening the store reads.
    """
    errors: dict[str, str] = {}
    name = " ".join(clinic_name.split())
    if not name:
        errors["clinic_name"] = "Enter the clinic's name."
    elif len(name) > 200:
        errors["clinic_name"] = "The clinic name is too long (at most 200 characters)."
    currency = currency.strip().upper()
    if not CURRENCY.match(currency):
        errors["currency"] = "The currency is a 3-letter ISO code such as USD, EUR or INR."
    desk_code = desk_code.strip().upper()
    if not DESK_CODE.match(desk_code):
        errors["desk_code"] = "The desk code is 1 to 3 capital letters, such as A or B."
    username = _clean_username(admin_username)
    _check_username(username, errors)
    full_name = _clean_full_name(admin_full_name, errors, "admin_full_name")
    if "password" not in errors:
        problem = passwords.password_problem(password, username=username)
        if problem:
            errors["password"] = problem
    _check_timezone(timezone, errors)
    if errors:
        raise ValidationError(errors)
    if is_set_up(engine):
        raise InvalidState("This workstation is already set up for a clinic.")

    desk = Desk(
        engine=engine,
        clinic_id=clinic_id or new_id(),
        desk_code=desk_code,
        device_id=device_id,
        audit_key=audit_key,
        clock=clock,
    )
    if now is not None:
        desk.now = now
    admin_id = new_id()
    admin = Actor(admin_id, username, full_name, frozenset({"admin"}))
    password_hash = passwords.hash_password(password)
    with desk.transaction(admin) as session:
        session.add(
            ClinicSettings(
                clinic_id=desk.clinic_id, name=name, currency=currency, timezone=timezone
            )
        )
        station = Workstation(
            clinic_id=desk.clinic_id, desk_code=desk_code, name=workstation_name.strip()[:100]
        )
        session.add(station)
        session.add(
            User(
                id=admin_id,
                clinic_id=desk.clinic_id,
                username=username,
                full_name=full_name,
                roles=["admin"],
                password_hash=password_hash,
            )
        )
        session.add(SyncState(key=CLINIC_ID_KEY, value=desk.clinic_id))
        session.add(SyncState(key=DESK_CODE_KEY, value=desk_code))
        record_event(session, desk, admin, "clinic.setup", "clinic_settings", desk.clinic_id)
        record_event(session, desk, admin, "workstation.enrol", "workstation", station.id)
        record_event(session, desk, admin, "user.create", "user_account", admin_id, "roles=admin")
    return SetupResult(desk=desk, admin=admin)


def _check_timezone(timezone: str, errors: dict[str, str]) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = "Unknown time zone; use a name such as Asia/Kolkata or UTC."


# ---------------------------------------------------------------------------------------------
# Account management (admins only)


def _get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None or user.deleted:
        raise NotFound("That user account does not exist.")
    return user


def _active_admins(session: Session) -> int:
    users = session.scalars(
        select(User).where(User.deleted.is_(False), User.disabled.is_(False))
    ).all()
    return sum(1 for user in users if user.has_role("admin"))


def create_user(
    desk: Desk,
    actor: Actor,
    *,
    username: str,
    full_name: str,
    roles: Iterable[str],
    password: str,
    must_change_password: bool = True,
) -> User:
    """An admin creates an account; by default the person must pick their own password."""
    errors: dict[str, str] = {}
    clean = _clean_username(username)
    _check_username(clean, errors)
    name = _clean_full_name(full_name, errors)
    role_list = _clean_roles(roles, errors)
    problem = passwords.password_problem(password, username=clean)
    if problem:
        errors["password"] = problem
    with desk.reading() as session:
        authorize(session, actor, "admin", action="manage user accounts")
    if errors:
        raise ValidationError(errors)
    password_hash = passwords.hash_password(password)  # slow: before taking the write lock
    with desk.transaction(actor) as session:
        authorize(session, actor, "admin", action="manage user accounts")
        taken = session.scalar(select(User.id).where(User.username == clean))
        if taken:
            raise ValidationError({"username": f"The user name {clean!r} is already taken."})
        user = User(
            clinic_id=desk.clinic_id,
            username=clean,
            full_name=name,
            roles=role_list,
            password_hash=password_hash,
            must_change_password=must_change_password,
        )
        session.add(user)
        record_event(
            session,
            desk,
            actor,
            "user.create",
            "user_account",
            user.id,
            "roles=" + ",".join(role_list),
        )
    return user


def update_roles(desk: Desk, actor: Actor, user_id: str, roles: Iterable[str]) -> User:
    """Replace a user's roles; the last active admin keeps the admin role."""
    errors: dict[str, str] = {}
    role_list = _clean_roles(roles, errors)
    with desk.transaction(actor) as session:
        authorize(session, actor, "admin", action="manage user accounts")
        if errors:
            raise ValidationError(errors)
        user = _get_user(session, user_id)
        if (
            user.has_role("admin")
            and "admin" not in role_list
            and not user.disabled
            and _active_admins(session) <= 1
        ):
            raise InvalidState("This is the last administrator; give another user admin first.")
        if list(user.roles or []) != role_list:
            user.roles = role_list
            record_event(
                session,
                desk,
                actor,
                "user.roles",
                "user_account",
                user.id,
                "roles=" + ",".join(role_list),
            )
    return user


def set_disabled(desk: Desk, actor: Actor, user_id: str, disabled: bool) -> User:
    """Disable (or enable again) an account. Nobody disables themselves or the last admin."""
    with desk.transaction(actor) as session:
        authorize(session, actor, "admin", action="manage user accounts")
        user = _get_user(session, user_id)
        if disabled and user.id == actor.user_id:
            raise InvalidState("You cannot disable your own account.")
        last_admin = user.has_role("admin") and _active_admins(session) <= 1
        if disabled and not user.disabled and last_admin:
            raise InvalidState("This is the last administrator and cannot be disabled.")
        if user.disabled != disabled:
            user.disabled = disabled
            if not disabled:
                user.failed_attempts = 0
                user.locked_until = None
            action = "user.disable" if disabled else "user.enable"
            record_event(session, desk, actor, action, "user_account", user.id)
    return user


def unlock(desk: Desk, actor: Actor, user_id: str) -> User:
    """Lift a lock-out before its 15 minutes are over."""
    with desk.transaction(actor) as session:
        authorize(session, actor, "admin", action="manage user accounts")
        user = _get_user(session, user_id)
        if user.failed_attempts or user.locked_until is not None:
            user.failed_attempts = 0
            user.locked_until = None
            record_event(session, desk, actor, "user.unlock", "user_account", user.id)
    return user


def reset_password(desk: Desk, actor: Actor, user_id: str, new_password: str) -> User:
    """An admin sets a temporary password; the person must change it at next sign-in."""
    with desk.reading() as session:
        authorize(session, actor, "admin", action="reset passwords")
        username = _get_user(session, user_id).username
    passwords.check_password_rules(new_password, username=username)
    password_hash = passwords.hash_password(new_password)
    with desk.transaction(actor) as session:
        authorize(session, actor, "admin", action="reset passwords")
        user = _get_user(session, user_id)
        user.password_hash = password_hash
        user.must_change_password = True
        user.failed_attempts = 0
        user.locked_until = None
        record_event(session, desk, actor, "user.password_reset", "user_account", user.id)
    return user


def change_own_password(desk: Desk, actor: Actor, old_password: str, new_password: str) -> None:
    """A signed-in person replaces their password (required after an admin reset).

    A wrong current password counts towards the lock-out, so a session left open cannot be
    used to guess it.
    """
    with desk.reading() as session:
        user = authorize(session, actor, action="change your password")
        username, stored_hash = user.username, user.password_hash
        locked = _is_locked(user, desk)
    if locked:
        raise AuthenticationFailed("This account is locked after too many failed attempts.")
    ok = passwords.verify_password(old_password, stored_hash)
    new_hash = ""
    if ok:
        passwords.check_password_rules(new_password, username=username, field="new_password")
        if new_password == old_password:
            raise ValidationError(
                {"new_password": "The new password must differ from the current one."}
            )
        new_hash = passwords.hash_password(new_password)
    with desk.transaction(actor) as session:
        user = authorize(session, actor, action="change your password")
        if ok:
            user.password_hash = new_hash
            user.must_change_password = False
            user.failed_attempts = 0
            record_event(session, desk, actor, "user.password_change", "user_account", user.id)
        else:
            _record_failure(session, desk, user)
            record_event(
                session, desk, actor, "user.password_change_failed", "user_account", user.id
            )
    if not ok:
        raise AuthenticationFailed("The current password is wrong.")


def list_users(desk: Desk, actor: Actor, *, include_disabled: bool = True) -> list[User]:
    """Accounts for the admin screen, by user name."""
    with desk.reading() as session:
        authorize(session, actor, "admin", action="manage user accounts")
        query = select(User).where(User.deleted.is_(False)).order_by(User.username)
        if not include_disabled:
            query = query.where(User.disabled.is_(False))
        users = list(session.scalars(query).all())
        session.expunge_all()
        return users


def must_change_password(desk: Desk, actor: Actor) -> bool:
    """Whether the view must ask for a new password before anything else."""
    with desk.reading() as session:
        user = session.get(User, actor.user_id)
        return bool(user and user.must_change_password)


# ---------------------------------------------------------------------------------------------
# Sign-in and the idle lock


def _lock_message(user: User, desk: Desk) -> str:
    assert user.locked_until is not None
    seconds = (user.locked_until - desk.now.utcnow()).total_seconds()
    minutes = max(1, math.ceil(seconds / 60))
    return (
        "This account is locked after too many failed sign-ins. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''} or ask an administrator."
    )


def _is_locked(user: User, desk: Desk) -> bool:
    return user.locked_until is not None and user.locked_until > desk.now.utcnow()


def _record_failure(session: Session, desk: Desk, user: User) -> None:
    user.failed_attempts = (user.failed_attempts or 0) + 1
    if user.failed_attempts >= MAX_FAILED_ATTEMPTS:
        user.locked_until = desk.now.utcnow() + LOCKOUT
        user.failed_attempts = 0
        record_event(session, desk, None, "auth.locked", "user_account", user.id, flagged=True)


@dataclass(frozen=True)
class _Check:
    """What a password check found, decided outside the write transaction (bcrypt is slow,
    and the store's write lock must not wait for it)."""

    user_id: str | None
    password_ok: bool


def _check_password(desk: Desk, user_id: str | None, password: str) -> _Check:
    with desk.reading() as session:
        user = session.get(User, user_id) if user_id else None
        stored_hash = user.password_hash if user is not None and not user.deleted else None
    if stored_hash is None:
        passwords.burn_verify_time(password)
        return _Check(None, False)
    return _Check(user_id, passwords.verify_password(password, stored_hash))


def _apply_check(
    desk: Desk, check: _Check, *, kind: str, wrong_message: str
) -> tuple[Actor | None, str | None]:
    """Record the outcome of a check (counters, lock-out, audit); return actor or failure."""
    with desk.transaction(None) as session:
        user = session.get(User, check.user_id) if check.user_id else None
        if user is None or user.deleted:
            record_event(session, desk, None, f"auth.{kind}_failed", "user_account", "")
            return None, BAD_SIGN_IN if kind == "sign_in" else "Please sign in again."
        if _is_locked(user, desk):
            record_event(session, desk, None, f"auth.{kind}_locked", "user_account", user.id)
            return None, _lock_message(user, desk)
        if not check.password_ok:
            _record_failure(session, desk, user)
            record_event(session, desk, None, f"auth.{kind}_failed", "user_account", user.id)
            return None, _lock_message(user, desk) if _is_locked(user, desk) else wrong_message
        if user.disabled:
            record_event(session, desk, None, f"auth.{kind}_disabled", "user_account", user.id)
            return None, "This account is disabled. Ask an administrator."
        if user.failed_attempts or user.locked_until is not None:
            user.failed_attempts = 0
            user.locked_until = None
        actor = actor_for(user)
        record_event(session, desk, actor, f"auth.{kind}", "user_account", user.id)
        return actor, None


def sign_in(desk: Desk, username: str, password: str) -> Actor:
    """Check a user name and password on this desk (works offline against cached hashes).

    A wrong user name and a wrong password get the same message. Five wrong passwords in a
    row lock the account for 15 minutes; while locked, even the right password is refused.
    """
    clean = _clean_username(username)
    with desk.reading() as session:
        user_id = session.scalar(
            select(User.id).where(User.username == clean, User.deleted.is_(False))
        )
    check = _check_password(desk, user_id, password)
    actor, failure = _apply_check(desk, check, kind="sign_in", wrong_message=BAD_SIGN_IN)
    if actor is None:
        raise AuthenticationFailed(failure or BAD_SIGN_IN)
    return actor


def verify_password_for_unlock(desk: Desk, actor: Actor, password: str) -> Actor:
    """Unlock the screen after the idle lock: the same person types their password again.

    Wrong passwords count towards the lock-out like at sign-in; a disabled account is refused.
    Returns a fresh Actor (roles may have changed while the screen was locked).
    """
    check = _check_password(desk, actor.user_id, password)
    fresh, failure = _apply_check(desk, check, kind="unlock", wrong_message="Wrong password.")
    if fresh is None:
        raise AuthenticationFailed(failure or "Wrong password.")
    return fresh


__all__ = [
    "BAD_SIGN_IN",
    "LOCKOUT",
    "MAX_FAILED_ATTEMPTS",
    "SetupResult",
    "actor_for",
    "authorize",
    "change_own_password",
    "create_user",
    "is_set_up",
    "list_users",
    "must_change_password",
    "reset_password",
    "set_disabled",
    "setup_clinic",
    "sign_in",
    "unlock",
    "update_roles",
    "verify_password_for_unlock",
]
