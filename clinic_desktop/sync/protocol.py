"""Wire format of the sync protocol, shared by the desk's sync client and the server.

Pure Python (no Qt, no HTTP library): both sides import these names so a header, a path or a
limit is spelled in exactly one place. ``docs/sync-protocol.md`` describes the same contract
in prose; whoever changes one changes the other in the same commit.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# --- versions -----------------------------------------------------------------------------

#: Version of the wire format. The server accepts this and the previous one (426 for older).
PROTOCOL_VERSION = 1
#: Version of the shared models (``clinic_desktop.models``) as seen on the wire.
SCHEMA_VERSION = 1


def accepted_versions(current: int) -> tuple[int, int]:
    """The inclusive range a server accepts: the current version and the one before it."""
    return max(1, current - 1), current


# --- HTTP ---------------------------------------------------------------------------------

API_PREFIX = "/api/v1"

HEADER_PROTOCOL = "X-Clinic-Protocol"
HEADER_SCHEMA = "X-Clinic-Schema"
HEADER_DEVICE_ID = "X-Device-Id"
HEADER_DEVICE_SECRET = "X-Device-Secret"  # noqa: S105 - a header name, not a secret

PATH_LOGIN = "/auth/login"
PATH_REFRESH = "/auth/refresh"
PATH_LOGOUT = "/auth/logout"
PATH_ME = "/auth/me"
PATH_ENROLMENT_CODES = "/devices/enrolment-codes"
PATH_ENROL = "/devices/enrol"
PATH_PUSH = "/sync/push"
PATH_CHANGES = "/sync/changes"
PATH_SNAPSHOT_START = "/sync/snapshot/start"
PATH_SNAPSHOT = "/sync/snapshot"

# --- limits -------------------------------------------------------------------------------

#: Most mutations one push may carry; a bigger batch is refused whole (422).
MAX_BATCH = 500
#: Page size bounds for ``GET /sync/changes``.
DEFAULT_PULL_LIMIT = 500
MAX_PULL_LIMIT = 1000
#: Longest long-poll a client may ask for, in seconds.
MAX_WAIT_SECONDS = 30
#: Page size bounds for ``GET /sync/snapshot``.
DEFAULT_SNAPSHOT_LIMIT = 1000
MAX_SNAPSHOT_LIMIT = 5000
#: Largest request body the server reads (bytes); bigger ones get 413.
MAX_BODY_BYTES = 8 * 1024 * 1024

# --- entities -----------------------------------------------------------------------------

#: Synced entities in an order where every row's references come before it (parents first).
#: Snapshot downloads go in this order so each page can be committed with foreign keys on.
ENTITY_ORDER: tuple[str, ...] = (
    "clinic_settings",
    "workstation",
    "user_account",
    "patient",
    "visit",
    "medicine",
    "prescription",
    "prescription_item",
    "price_item",
    "bill",
    "bill_item",
    "payment",
    "audit_event",
    "conflict_record",
)

Op = Literal["insert", "update"]
Status = Literal["accepted", "merged", "rejected"]

ACCEPTED: Status = "accepted"
MERGED: Status = "merged"
REJECTED: Status = "rejected"

# --- messages -----------------------------------------------------------------------------


class Mutation(TypedDict):
    """One outbox entry on the wire (``POST /sync/push``).

    ``actor_id`` is the user who made the change on the desk (the outbox's ``actor_id``);
    when absent the signed-in user of the request is the actor. The server checks the
    actor's role; an actor other than the token's user must have signed in on this
    workstation before (the workstation vouches for its own offline sign-ins).
    """

    mutation_id: str
    entity: str
    row_id: str
    op: Op
    fields: dict[str, Any]
    base_version: int
    hlc: str
    actor_id: NotRequired[str | None]


class PushRequest(TypedDict):
    mutations: list[Mutation]


class MutationResult(TypedDict):
    """The server's answer to one mutation; a replayed ``mutation_id`` gets the same answer."""

    mutation_id: str
    status: Status
    version: int | None
    reason: str | None
    row: dict[str, Any] | None


class PushResponse(TypedDict):
    results: list[MutationResult]


class Change(TypedDict):
    """One row as of its latest accepted change, delivered by ``GET /sync/changes``."""

    seq: int
    entity: str
    row: dict[str, Any]


class PullResponse(TypedDict):
    changes: list[Change]
    cursor: int
    more: bool


class SnapshotStart(TypedDict):
    cursor: int
    entities: list[str]
    counts: dict[str, int]


class SnapshotPage(TypedDict):
    rows: list[dict[str, Any]]
    last_id: str | None


class LoginRequest(TypedDict):
    username: str
    password: str
    clinic_id: NotRequired[str | None]


class UserInfo(TypedDict):
    id: str
    clinic_id: str
    username: str
    full_name: str
    roles: list[str]


class TokenResponse(TypedDict):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    user: UserInfo


class EnrolRequest(TypedDict):
    code: str
    desk_code: str
    name: str


class EnrolResponse(TypedDict):
    device_id: str
    device_secret: str
    clinic_id: str
    clinic_name: str
    desk_code: str


def version_headers() -> dict[str, str]:
    """The headers every request carries."""
    return {HEADER_PROTOCOL: str(PROTOCOL_VERSION), HEADER_SCHEMA: str(SCHEMA_VERSION)}
