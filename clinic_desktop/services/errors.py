"""Errors services raise. Each carries a message a receptionist can read as it is."""

from __future__ import annotations


class ClinicError(Exception):
    """Base of every expected, user-facing failure. Views show ``str(error)``."""


class ValidationError(ClinicError):
    """Bad input. ``fields`` maps a form field name to its message, for display beside it."""

    def __init__(self, fields: dict[str, str] | str) -> None:
        if isinstance(fields, str):
            fields = {"": fields}
        self.fields = dict(fields)
        super().__init__("; ".join(self.fields.values()))


class PermissionDenied(ClinicError):
    """The signed-in user's role does not allow this action."""


class NotFound(ClinicError):
    """The record asked for does not exist (or was merged away)."""


class InvalidState(ClinicError):
    """The action does not fit the record's current state (e.g. editing a signed prescription)."""


class AuthenticationFailed(ClinicError):
    """Wrong user name or password, or the account cannot sign in right now."""
