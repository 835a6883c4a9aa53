"""Password rules and bcrypt hashing, shared by the desk and the server (no store imports).

bcrypt reads only the first 72 bytes of a password, so a longer one is refused outright:
silently cutting it would let anyone sign in with just its first 72 bytes.
"""

from __future__ import annotations

import unicodedata

import bcrypt

from clinic_desktop.services.errors import ValidationError

MIN_CHARACTERS = 10
MAX_BYTES = 72  # bcrypt's hard limit
# Cost 12 takes about a quarter of a second: slow for guessing, fine for a person signing in.
# Tests lower it (the module attribute is read at hashing time).
BCRYPT_ROUNDS = 12

# A few passwords people pick first; a full breached-password list is the server's job.
_TOO_COMMON = frozenset(
    {
        "1234567890",
        "0123456789",
        "password12",
        "password123",
        "password1234",
        "qwertyuiop",
        "1q2w3e4r5t",
        "abcdefghij",
        "iloveyou12",
        "letmein123",
        "welcome123",
        "clinic1234",
        "changeme12",
        "administrator",
    }
)


def password_problem(password: str, *, username: str = "") -> str | None:
    """Why ``password`` is not acceptable, in words a person understands; ``None`` if it is."""
    if len(password) < MIN_CHARACTERS:
        return f"The password must be at least {MIN_CHARACTERS} characters long."
    if len(password.encode("utf-8")) > MAX_BYTES:
        return (
            f"The password is too long: at most {MAX_BYTES} bytes "
            "(about 72 letters; accented letters and symbols count as 2 to 4)."
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in password):
        return "The password cannot contain control characters (tabs, line breaks and the like)."
    if password.strip() != password:
        return "The password cannot start or end with a space."
    if len(set(password)) < 4:
        return "The password needs more variety (at least 4 different characters)."
    lowered = password.casefold()
    if lowered in _TOO_COMMON:
        return "This password is too common. Choose another."
    if username and username.casefold() in lowered:
        return "The password cannot contain the user name."
    return None


def check_password_rules(password: str, *, username: str = "", field: str = "password") -> None:
    """Raise :class:`ValidationError` on ``field`` when ``password`` breaks a rule."""
    problem = password_problem(password, username=username)
    if problem is not None:
        raise ValidationError({field: problem})


def hash_password(password: str) -> str:
    """bcrypt hash of a password that already passed the rules."""
    data = password.encode("utf-8")
    if len(data) > MAX_BYTES:  # never truncate, even if a caller skipped the rules
        raise ValidationError({"password": f"The password is too long (over {MAX_BYTES} bytes)."})
    return bcrypt.hashpw(data, bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    """True when ``password`` matches; a malformed hash or an over-long password is a no."""
    data = password.encode("utf-8")
    if len(data) > MAX_BYTES or "\x00" in password:
        return False
    try:
        return bcrypt.checkpw(data, password_hash.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False


_DUMMY_HASH: str | None = None


def burn_verify_time(password: str) -> None:
    """Spend the time of one real check, so an unknown user name answers as slowly as a
    known one (the answer time must not tell whether an account exists)."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = bcrypt.hashpw(b"not-a-real-password", bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
    verify_password(password, _DUMMY_HASH)
