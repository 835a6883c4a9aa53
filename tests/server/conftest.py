"""Server test fixtures: a real uvicorn server over real HTTP, on SQLite and on PostgreSQL.

Every test module runs against both backends (``server`` is parametrised). The PostgreSQL
database is created fresh per test session under a random name and dropped at the end.
Tests isolate their data by creating their own clinic (``world``), not by resetting tables.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from clinic_desktop.models.hlc import format_hlc
from clinic_desktop.services import passwords
from clinic_desktop.sync import protocol
from clinic_server import bootstrap
from clinic_server.app import create_app
from clinic_server.settings import Settings
from clinic_server.state import ServerState

passwords.BCRYPT_ROUNDS = 4  # fast hashing in tests (read at hashing time)

PG_ADMIN_DSN = os.environ.get("CLINIC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "Correct-horse-42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    name = f"clinic_test_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: {exc}")
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RunningServer:
    backend: str
    url: str
    settings: Settings
    state: ServerState
    database_url: str | None

    @property
    def db(self) -> Any:
        return self.state.db


def start_in_thread(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, Any, str]:
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return server, thread, app, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One running server per backend for the whole session."""
    backend = request.param
    database_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    settings = Settings(
        environment="test",
        data_dir=tmp_path_factory.mktemp(f"server-{backend}"),
        database_url=database_url,
        token_secret=secrets.token_urlsafe(32),  # type: ignore[arg-type]
        poll_interval_seconds=0.2,
        login_max_failures_per_window=8,
    )
    uv, thread, app, url = start_in_thread(settings)
    yield RunningServer(backend, url, settings, app.state.clinic, database_url)
    uv.should_exit = True
    thread.join(timeout=10)


_hlc_counter = itertools.count(1)


def hlc(node: str = "dev", millis: int | None = None) -> str:
    """A fresh, increasing clock stamp (or one at a chosen millisecond)."""
    if millis is None:
        millis = time.time_ns() // 1_000_000
    return format_hlc(millis, next(_hlc_counter) % 1_000_000, node)


def mutation(
    entity: str,
    row_id: str,
    fields: dict[str, Any],
    *,
    op: str = "insert",
    base_version: int = 0,
    stamp: str | None = None,
    actor_id: str | None = None,
    mutation_id: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mutation_id": mutation_id or str(uuid.uuid4()),
        "entity": entity,
        "row_id": row_id,
        "op": op,
        "fields": fields,
        "base_version": base_version,
        "hlc": stamp or hlc(),
    }
    if actor_id is not None:
        out["actor_id"] = actor_id
    return out


@dataclass
class Session:
    """A person signed in on a workstation, talking to the server over HTTP."""

    http: httpx.Client
    clinic_id: str
    user_id: str
    token: str
    refresh: str
    device_id: str | None = None
    device_secret: str | None = None

    def headers(self, *, device: bool = True) -> dict[str, str]:
        out = protocol.version_headers() | {"Authorization": f"Bearer {self.token}"}
        if device and self.device_id and self.device_secret:
            out[protocol.HEADER_DEVICE_ID] = self.device_id
            out[protocol.HEADER_DEVICE_SECRET] = self.device_secret
        return out

    def push(self, *mutations: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.http.post(
            "/api/v1/sync/push", json={"mutations": list(mutations)}, headers=self.headers()
        )
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def push_one(self, m: dict[str, Any]) -> dict[str, Any]:
        return self.push(m)[0]

    def pull(self, after: int = 0, *, limit: int = 1000, wait: float = 0) -> httpx.Response:
        return self.http.get(
            "/api/v1/sync/changes",
            params={"after": after, "limit": limit, "wait": wait},
            headers=self.headers(),
            timeout=wait + 10,
        )

    def pull_all(self, after: int = 0) -> tuple[list[dict[str, Any]], int]:
        changes: list[dict[str, Any]] = []
        while True:
            response = self.pull(after)
            assert response.status_code == 200, response.text
            body = response.json()
            changes += body["changes"]
            after = body["cursor"]
            if not body["more"]:
                return changes, after


@dataclass
class World:
    """A clinic of its own on the running server, with enrolled desks and users."""

    server: RunningServer
    http: httpx.Client
    clinic_id: str
    admin_id: str
    desks: dict[str, tuple[str, str]] = field(default_factory=dict)
    admin_on: dict[str, Session] = field(default_factory=dict)

    def login(self, username: str, password: str = PASSWORD, *, desk: str | None = None) -> Session:
        headers = protocol.version_headers()
        device = self.desks.get(desk) if desk else None
        if device:
            headers[protocol.HEADER_DEVICE_ID], headers[protocol.HEADER_DEVICE_SECRET] = device
        body = {"username": username, "password": password, "clinic_id": self.clinic_id}
        response = self.http.post("/api/v1/auth/login", json=body, headers=headers)
        assert response.status_code == 200, response.text
        data = response.json()
        return Session(
            http=self.http,
            clinic_id=self.clinic_id,
            user_id=data["user"]["id"],
            token=data["access_token"],
            refresh=data["refresh_token"],
            device_id=device[0] if device else None,
            device_secret=device[1] if device else None,
        )

    def enrol(self, desk_code: str) -> tuple[str, str]:
        admin = self.login("admin")
        code = self.http.post(
            "/api/v1/devices/enrolment-codes", json={}, headers=admin.headers(device=False)
        )
        assert code.status_code == 201, code.text
        enrolled = self.http.post(
            "/api/v1/devices/enrol",
            json={"code": code.json()["code"], "desk_code": desk_code, "name": f"Desk {desk_code}"},
            headers=protocol.version_headers(),
        )
        assert enrolled.status_code == 201, enrolled.text
        data = enrolled.json()
        self.desks[desk_code] = (data["device_id"], data["device_secret"])
        self.admin_on[desk_code] = self.login("admin", desk=desk_code)
        return self.desks[desk_code]

    def add_user(self, username: str, *roles: str, desk: str = "A") -> str:
        """An account made the way a desk makes one: an admin's pushed insert."""
        user_id = str(uuid.uuid4())
        result = self.admin_on[desk].push_one(
            mutation(
                "user_account",
                user_id,
                {
                    "id": user_id,
                    "clinic_id": self.clinic_id,
                    "username": username,
                    "full_name": username.title(),
                    "roles": list(roles),
                    "password_hash": passwords.hash_password(PASSWORD),
                    "disabled": False,
                },
            )
        )
        assert result["status"] == "accepted", result
        return user_id


@pytest.fixture
def world(server: RunningServer) -> Iterator[World]:
    """A new clinic with an admin and desk ``A`` enrolled (the admin signed in there)."""
    clinic_id = bootstrap.create_clinic(server.db, f"Clinic {secrets.token_hex(3)}")
    admin_id = bootstrap.create_admin(server.db, clinic_id, "admin", "Ada Admin", PASSWORD)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        w = World(server=server, http=http, clinic_id=clinic_id, admin_id=admin_id)
        w.enrol("A")
        yield w


def patient_fields(clinic_id: str, row_id: str, number: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": row_id,
        "clinic_id": clinic_id,
        "patient_number": number,
        "full_name": "Amina Yusuf",
        "sex": "female",
        "date_of_birth": "1990-04-01",
        "phone": "+15550100",
    }
    return base | extra


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path
