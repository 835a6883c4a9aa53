"""Typed failures of the sync client.

The worker decides what to do from the type alone (back off, refresh the token, take a
snapshot, stop and ask for an update), and the status bar shows ``str(error)``, so every
message is written for the person at the desk, never a traceback or a server's raw body.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every sync failure; the message is meant for a person."""


class Offline(SyncError):
    """The server cannot be reached (no network, refused, timed out, TLS failure)."""


class InsecureServerUrl(SyncError):
    """A plain ``http://`` server address outside tests (credentials would travel in clear)."""


class NotEnrolled(SyncError):
    """This workstation has no device credential yet; an admin must enrol it."""


class AuthRequired(SyncError):
    """401: the access token is missing, expired or tampered with (sign in again)."""


class Forbidden(SyncError):
    """403: the user's role, the account or the workstation is not allowed (revoked, disabled)."""


class CursorGone(SyncError):
    """410: the pull cursor is older than the server's change log; take a fresh snapshot."""


class UpgradeRequired(SyncError):
    """426: this desk speaks a protocol or schema the server no longer accepts."""


class ServerError(SyncError):
    """5xx or an answer that does not follow the protocol; retried with back-off."""


class RequestRejected(SyncError):
    """Another 4xx: the server refused the request as malformed (a client bug, not transient)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
