"""Access tokens (signed JWT, HS256), opaque refresh tokens and secret hashing."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

_ALGORITHM = "HS256"
_ISSUER = "clinic-server"


class TokenInvalid(Exception):
    """The token is expired, tampered with, or not an access token."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    clinic_id: str
    session_id: str


def sha256_hex(value: str) -> str:
    """Hash of a high-entropy secret (device secret, refresh token, enrolment code).

    These are random, so a fast hash is enough; bcrypt is for low-entropy passwords.
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def same_secret(presented: str, stored_hash: str) -> bool:
    return hmac.compare_digest(sha256_hex(presented), stored_hash)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_enrolment_code() -> str:
    """12 characters from an alphabet without look-alikes, grouped for reading aloud."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(12))
    return f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}"


def normalise_enrolment_code(code: str) -> str:
    cleaned = "".join(ch for ch in code.upper() if ch.isalnum())
    return f"{cleaned[0:4]}-{cleaned[4:8]}-{cleaned[8:12]}" if len(cleaned) == 12 else cleaned


def issue_access_token(
    secret: str, claims: AccessClaims, lifetime: timedelta, now: datetime | None = None
) -> str:
    issued = now or datetime.now(UTC)
    payload = {
        "iss": _ISSUER,
        "typ": "access",
        "sub": claims.user_id,
        "cid": claims.clinic_id,
        "sid": claims.session_id,
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
    }
    return jwt.encode(payload, secret, algorithm=_ALGORITHM)


def read_access_token(secret: str, token: str) -> AccessClaims:
    """Verify signature, expiry and shape; raise :class:`TokenInvalid` otherwise."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            issuer=_ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenInvalid("Your sign-in has expired; sign in again.") from exc
    except jwt.PyJWTError as exc:
        raise TokenInvalid("The sign-in token is not valid; sign in again.") from exc
    if payload.get("typ") != "access":
        raise TokenInvalid("The sign-in token is not valid; sign in again.")
    fields = (payload.get("sub"), payload.get("cid"), payload.get("sid"))
    if not all(isinstance(value, str) and value for value in fields):
        raise TokenInvalid("The sign-in token is not valid; sign in again.")
    return AccessClaims(user_id=fields[0], clinic_id=fields[1], session_id=fields[2])  # type: ignore[arg-type]


def make_refresh_token(session_id: str) -> tuple[str, str]:
    """A refresh token ``<session id>.<secret>`` and the hash to store."""
    token = f"{session_id}.{new_secret()}"
    return token, sha256_hex(token)


def refresh_session_id(token: str) -> str | None:
    session_id, _, rest = token.partition(".")
    return session_id if session_id and rest else None
