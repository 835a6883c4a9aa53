"""HTTP transport of the sync protocol (``docs/sync-protocol.md``) over ``requests``.

One :class:`Transport` per server connection. It adds the protocol and schema headers, the
bearer token and the device credential to every request, refreshes an expired access token
once, and turns every failure into a typed :class:`~clinic_desktop.sync.errors.SyncError`
so callers never see ``requests`` exceptions or raw server bodies.

TLS certificates are always verified; a plain ``http://`` address is refused unless the
caller passes ``allow_insecure=True`` (tests, and a clinic's explicit demo set-up).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import requests

from clinic_desktop.sync import protocol
from clinic_desktop.sync.errors import (
    AuthRequired,
    CursorGone,
    Forbidden,
    InsecureServerUrl,
    NotEnrolled,
    Offline,
    RequestRejected,
    ServerError,
    SyncError,
    UpgradeRequired,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
# A long poll may legitimately stay silent for ``wait`` seconds; allow this much on top.
LONG_POLL_SLACK = 10.0


@dataclass(frozen=True)
class DeviceCredential:
    """What enrolment hands a workstation; the secret lives in the keyring only."""

    device_id: str
    secret: str
    clinic_id: str = ""

    def __repr__(self) -> str:  # never print the secret
        return f"DeviceCredential(device_id={self.device_id!r}, clinic_id={self.clinic_id!r})"


@dataclass
class Tokens:
    """The access/refresh pair of one signed-in user."""

    access_token: str
    refresh_token: str
    user: dict[str, Any]

    def __repr__(self) -> str:
        return f"Tokens(user={self.user.get('username')!r})"


def _is_loopback(host: str | None) -> bool:
    """Plain http is tolerated only to this machine: nothing then crosses a network."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_server_url(url: str, *, allow_insecure: bool = False) -> str:
    """Validate a server address and strip trailing slashes.

    Raises :class:`InsecureServerUrl` for ``http://`` unless ``allow_insecure`` and
    :class:`SyncError` for anything that is not an http(s) URL with a host.
    """
    cleaned = url.strip().rstrip("/")
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SyncError(
            "The server address must look like https://clinic-server.example:8443 "
            f"(got {url.strip()!r})."
        )
    if parts.scheme == "http" and not (allow_insecure and _is_loopback(parts.hostname)):
        raise InsecureServerUrl(
            "The server address uses plain http://, which would send passwords and patient "
            "data unencrypted. Use the server's https:// address."
        )
    return cleaned


def _detail(response: requests.Response) -> str:
    """The server's human-readable ``detail`` if it sent one, else a generic text."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list) and detail:
            # FastAPI validation errors: a list of {"loc": [...], "msg": "..."}
            first = detail[0]
            if isinstance(first, dict) and isinstance(first.get("msg"), str):
                return str(first["msg"])
    return ""


def error_for(response: requests.Response) -> SyncError:
    """Map a non-2xx answer to its typed error (the worker acts on the type)."""
    status = response.status_code
    detail = _detail(response)
    if status == 401:
        return AuthRequired(detail or "The sign-in has expired; please sign in again.")
    if status == 403:
        return Forbidden(detail or "The server refused this workstation or user.")
    if status == 410:
        return CursorGone(detail or "This desk was offline too long; it will download afresh.")
    if (
        status == 409
        and response.request is not None
        and protocol.PATH_CHANGES in str(response.request.url)
    ):
        # A cursor ahead of the server (the server was restored): take a fresh snapshot.
        return CursorGone(detail or "The server was restored; this desk will download afresh.")
    if status == 426:
        return UpgradeRequired(
            detail
            or "This version of Clinic Desk is too old for the server. Please install the update;"
            " your unsent work is kept."
        )
    if status >= 500:
        return ServerError(f"The server had a problem (HTTP {status}); will retry.")
    return RequestRejected(detail or f"The server refused the request (HTTP {status}).", status)


class Transport:
    """The sync endpoints as Python calls; thread-safe for one caller at a time per method.

    ``on_tokens`` is called after a refresh so the owner can keep the new pair (the refresh
    token is rotated on every use).
    """

    def __init__(
        self,
        server_url: str,
        *,
        allow_insecure: bool = False,
        credential: DeviceCredential | None = None,
        tokens: Tokens | None = None,
        on_tokens: Callable[[Tokens | None], None] | None = None,
        ca_bundle: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = normalise_server_url(server_url, allow_insecure=allow_insecure)
        self.credential = credential
        self._tokens = tokens
        self._on_tokens = on_tokens
        self._verify: bool | str = ca_bundle or True
        # requests.Session is not safe for concurrent use: one per thread (push and pull run
        # side by side); the tokens are shared and refreshed under one lock.
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.RLock()
        if session is not None:
            self._adopt(session)

    # --- plumbing -------------------------------------------------------------------------

    @property
    def tokens(self) -> Tokens | None:
        return self._tokens

    def set_tokens(self, tokens: Tokens | None) -> None:
        with self._lock:
            self._tokens = tokens

    def _adopt(self, session: requests.Session) -> requests.Session:
        session.headers.update(protocol.version_headers())
        session.headers["User-Agent"] = "clinic-desk-sync/1"
        self._local.http = session
        with self._lock:
            self._sessions.append(session)
        return session

    @property
    def _http(self) -> requests.Session:
        http: requests.Session | None = getattr(self._local, "http", None)
        return http if http is not None else self._adopt(requests.Session())

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def _headers(self, *, auth: bool, device: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        if auth and self._tokens is not None:
            headers["Authorization"] = f"Bearer {self._tokens.access_token}"
        if device:
            if self.credential is None:
                raise NotEnrolled(
                    "This workstation is not enrolled with the server yet; an admin can enrol "
                    "it in the admin window."
                )
            headers[protocol.HEADER_DEVICE_ID] = self.credential.device_id
            headers[protocol.HEADER_DEVICE_SECRET] = self.credential.secret
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        device: bool = True,
        read_timeout: float = READ_TIMEOUT,
    ) -> requests.Response:
        url = f"{self.base_url}{protocol.API_PREFIX}{path}"
        try:
            return self._http.request(
                method,
                url,
                json=json,
                params=params,
                headers=self._headers(auth=auth, device=device),
                timeout=(CONNECT_TIMEOUT, read_timeout),
                verify=self._verify,
            )
        except requests.exceptions.SSLError as exc:
            raise Offline(
                "The server's certificate could not be verified; not connecting."
            ) from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise Offline("The server cannot be reached; working offline.") from exc
        except requests.exceptions.RequestException as exc:
            raise Offline(f"The connection to the server failed ({type(exc).__name__}).") from exc

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        device: bool = True,
        read_timeout: float = READ_TIMEOUT,
    ) -> dict[str, Any]:
        """Send, refresh the access token once on 401, and decode the JSON answer."""
        used = self._tokens
        response = self._send(
            method,
            path,
            json=json,
            params=params,
            auth=auth,
            device=device,
            read_timeout=read_timeout,
        )
        if response.status_code == 401 and auth and used is not None and self._try_refresh(used):
            response = self._send(
                method,
                path,
                json=json,
                params=params,
                auth=auth,
                device=device,
                read_timeout=read_timeout,
            )
        if not response.ok:
            raise error_for(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise ServerError("The server sent an answer that is not JSON.") from exc
        if not isinstance(body, dict):
            raise ServerError("The server sent an answer in an unexpected shape.")
        return body

    def _try_refresh(self, used: Tokens) -> bool:
        """Swap the refresh token for a new pair; ``False`` (and tokens dropped) if refused.

        If another thread already refreshed since ``used`` was sent, just use its pair:
        presenting a rotated refresh token twice would revoke the whole session.
        """
        with self._lock:
            tokens = self._tokens
            if tokens is None:
                return False
            if tokens is not used:
                return True
            response = self._send(
                "POST",
                protocol.PATH_REFRESH,
                json={"refresh_token": tokens.refresh_token},
                auth=False,
                device=self.credential is not None,
            )
            if not response.ok:
                if response.status_code in (401, 403):
                    self._tokens = None
                    self._notify_tokens(None)
                    return False
                raise error_for(response)
            body = response.json()
            fresh = Tokens(
                access_token=body["access_token"],
                refresh_token=body.get("refresh_token", tokens.refresh_token),
                user=body.get("user", tokens.user),
            )
            self._tokens = fresh
        self._notify_tokens(fresh)
        return True

    def _notify_tokens(self, tokens: Tokens | None) -> None:
        if self._on_tokens is not None:
            try:
                self._on_tokens(tokens)
            except Exception:
                log.exception("token observer failed")

    # --- endpoints ------------------------------------------------------------------------

    def login(self, username: str, password: str, clinic_id: str | None = None) -> Tokens:
        """Sign a person in; the tokens are kept for the following calls."""
        payload: dict[str, Any] = {"username": username, "password": password}
        if clinic_id:
            payload["clinic_id"] = clinic_id
        body = self._call(
            "POST",
            protocol.PATH_LOGIN,
            json=payload,
            auth=False,
            device=self.credential is not None,
        )
        tokens = Tokens(
            access_token=str(body["access_token"]),
            refresh_token=str(body.get("refresh_token", "")),
            user=dict(body.get("user") or {}),
        )
        self.set_tokens(tokens)
        return tokens

    def enrol(self, code: str, desk_code: str, name: str) -> protocol.EnrolResponse:
        """Exchange an admin's one-time enrolment code for this workstation's credential."""
        body = self._call(
            "POST",
            protocol.PATH_ENROL,
            json={"code": code, "desk_code": desk_code, "name": name},
            auth=False,
            device=False,
        )
        return cast(protocol.EnrolResponse, body)

    def push(self, mutations: list[protocol.Mutation]) -> list[protocol.MutationResult]:
        """Send one batch (at most ``MAX_BATCH``); answers come back in the same order."""
        if len(mutations) > protocol.MAX_BATCH:
            raise ValueError(f"a push carries at most {protocol.MAX_BATCH} mutations")
        body = self._call("POST", protocol.PATH_PUSH, json={"mutations": mutations})
        results = body.get("results")
        if not isinstance(results, list) or len(results) != len(mutations):
            raise ServerError("The server's answer to a push did not match what was sent.")
        for sent, answer in zip(mutations, results, strict=True):
            if not isinstance(answer, dict) or answer.get("mutation_id") != sent["mutation_id"]:
                raise ServerError("The server's answer to a push did not match what was sent.")
        return cast(list[protocol.MutationResult], results)

    def changes(self, after: int, *, limit: int, wait: float) -> protocol.PullResponse:
        """One page of changes after ``after``; long-polls up to ``wait`` seconds."""
        body = self._call(
            "GET",
            protocol.PATH_CHANGES,
            params={"after": after, "limit": limit, "wait": wait},
            read_timeout=wait + LONG_POLL_SLACK,
        )
        if not isinstance(body.get("changes"), list) or not isinstance(body.get("cursor"), int):
            raise ServerError("The server's list of changes is malformed.")
        return cast(protocol.PullResponse, body)

    def snapshot_start(self) -> protocol.SnapshotStart:
        body = self._call("GET", protocol.PATH_SNAPSHOT_START)
        if not isinstance(body.get("cursor"), int) or not isinstance(body.get("entities"), list):
            raise ServerError("The server's snapshot header is malformed.")
        return cast(protocol.SnapshotStart, body)

    def snapshot_page(self, entity: str, after_id: str | None, limit: int) -> protocol.SnapshotPage:
        params: dict[str, Any] = {"entity": entity, "limit": limit}
        if after_id:
            params["after_id"] = after_id
        body = self._call("GET", protocol.PATH_SNAPSHOT, params=params, read_timeout=120.0)
        if not isinstance(body.get("rows"), list):
            raise ServerError("The server's snapshot page is malformed.")
        return cast(protocol.SnapshotPage, body)

    def healthy(self) -> bool:
        """Cheap reachability check (``GET /healthz``) for the status bar."""
        try:
            response = self._http.get(
                f"{self.base_url}/healthz", timeout=(CONNECT_TIMEOUT, 5.0), verify=self._verify
            )
        except requests.exceptions.RequestException:
            return False
        return response.ok
