"""Multi-desk fixtures: a real ``clinic-server`` subprocess and enrolled desk stores.

Everything is real: the server runs as its own process on a free port over HTTP (SQLite in
its data dir by default, a fresh PostgreSQL database with ``--pg``-parametrised tests), and
every desk is an encrypted store opened with ``open_store``, enrolled with a one-time code,
signed in against the server and filled by its first snapshot.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from clinic_desktop.services import passwords, users
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.store.open import OpenedStore, desk_for, open_store
from clinic_desktop.sync import protocol
from clinic_desktop.sync.client import CycleReport, sync_once
from clinic_desktop.sync.enrolment import enrol, load_credential, server_sign_in
from clinic_desktop.sync.transport import Transport
from clinic_desktop.sync.worker import SyncWorker

SERVER_BIN = Path(sys.executable).parent / "clinic-server"
REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin"
PASSWORD = "Quiet-harbour-17"
PG_URL = "postgresql://postgres@127.0.0.1:5432/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["CLINIC_BCRYPT_ROUNDS"] = "4"
    env["CLINIC_ENVIRONMENT"] = "test"
    env["CLINIC_LOG_LEVEL"] = "WARNING"
    # The checkout first on the path: an editable install made before a package existed
    # would otherwise resolve it as an empty namespace package.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH", "")])]
    )
    env.pop("DATABASE_URL", None)
    env.pop("CLINIC_DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


class ServerProcess:
    """``clinic-server`` in a subprocess; can be stopped and started again on the same port."""

    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    def run_cli(self, *args: str, stdin: str = "") -> str:
        result = subprocess.run(
            [str(SERVER_BIN), "--data-dir", str(self.data_dir), *args],
            input=stdin.encode(),
            capture_output=True,
            env=server_env(self.database_url),
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"clinic-server {args} failed: {result.stderr.decode()[-2000:]}")
        return result.stdout.decode()

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(SERVER_BIN),
                    "--data-dir",
                    str(self.data_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(self.database_url),
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clinic-server exited: {self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("clinic-server did not become healthy in 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                # uvicorn waits for open long polls on a graceful stop; do not wait for them.
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = dict(protocol.version_headers())
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = requests.request(
            method, f"{self.url}{protocol.API_PREFIX}{path}", headers=headers, timeout=30, **kw
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def admin_token(self) -> str:
        """An admin access token, reused for a few minutes (tokens last 15)."""
        cached = getattr(self, "_admin_token", None)
        if cached is not None and time.monotonic() - cached[1] < 300:
            return str(cached[0])
        body = self.api("POST", protocol.PATH_LOGIN, json={"username": ADMIN, "password": PASSWORD})
        self._admin_token = (str(body["access_token"]), time.monotonic())
        return str(body["access_token"])

    def enrolment_code(self) -> str:
        body = self.api(
            "POST", protocol.PATH_ENROLMENT_CODES, self.admin_token(), json={"ttl_minutes": 60}
        )
        return str(body["code"])


@dataclass
class DeskHandle:
    """One enrolled workstation in a test: its store, desk, transport and signed-in people."""

    name: str
    store: OpenedStore
    desk: Desk
    transport: Transport
    actors: dict[str, Actor] = field(default_factory=dict)
    worker: SyncWorker | None = None

    def sign_in(self, username: str, password: str = PASSWORD) -> Actor:
        """Online sign-in (server first), then the desk's own sign-in for the Actor."""
        tokens = server_sign_in(self.desk, self.transport, username, password)
        try:
            actor = users.sign_in(self.desk, username, password)
        except Exception:
            from clinic_desktop.sync.enrolment import actor_from_server

            actor = actor_from_server(tokens.user)
        self.actors[username] = actor
        return actor

    def sync(self) -> CycleReport:
        """One full synchronous cycle: push, snapshot if needed (or after 410), pull, push."""
        return sync_once(self.desk, self.transport)

    def start_worker(self, long_poll: float = 2.0) -> SyncWorker:
        self.worker = SyncWorker(
            self.desk, self.transport, long_poll=long_poll, min_backoff=0.1, max_backoff=1.0
        )
        self.worker.start()
        return self.worker

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self.transport.close()
        self.store.close()


class Clinic:
    """A server with one clinic and its admin, and a factory for enrolled desks."""

    def __init__(self, root: Path, database_url: str | None = None) -> None:
        self.root = root
        self.server = ServerProcess(root / "server", database_url)
        self.server.data_dir.mkdir(parents=True)
        self.server.run_cli(
            "--create-admin",
            "--clinic-name",
            "Sync Test Clinic",
            "--username",
            ADMIN,
            "--full-name",
            "Ada Admin",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        self.server.start()
        self.desks: list[DeskHandle] = []

    def add_desk(self, desk_code: str, name: str, *, sign_in: str | None = ADMIN) -> DeskHandle:
        """Enrol a new, empty workstation and take its first snapshot."""
        data_dir = self.root / f"desk-{desk_code}"
        store = open_store(data_dir)
        enrol(
            store,
            self.server.url,
            self.server.enrolment_code(),
            desk_code,
            name,
            allow_insecure=True,
        )
        desk = desk_for(store)
        assert desk is not None
        transport = Transport(
            self.server.url, allow_insecure=True, credential=load_credential(store.data_dir)
        )
        handle = DeskHandle(name=name, store=store, desk=desk, transport=transport)
        self.desks.append(handle)
        if sign_in:
            handle.transport.login(sign_in, PASSWORD, clinic_id=desk.clinic_id)
            handle.sync()
            handle.sign_in(sign_in)
        return handle

    def close(self) -> None:
        for handle in self.desks:
            handle.close()
        self.server.stop()


def create_pg_database() -> str:
    import psycopg

    name = f"clinic_sync_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL + "postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL + "postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _cheap_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)


@dataclass
class Staff:
    """The clinic's people, created by the admin on the first desk and pushed."""

    receptionist: str = "rita"
    doctor: str = "doris"
    billing: str = "bill"
    ids: dict[str, str] = field(default_factory=dict)


def create_staff(handle: DeskHandle) -> Staff:
    staff = Staff()
    admin = handle.actors[ADMIN]
    for username, role, full_name in (
        (staff.receptionist, "receptionist", "Rita Reception"),
        (staff.doctor, "doctor", "Doris Doctor"),
        (staff.billing, "billing", "Bill Billing"),
    ):
        user = users.create_user(
            handle.desk,
            admin,
            username=username,
            full_name=full_name,
            roles=[role],
            password=PASSWORD,
            must_change_password=False,
        )
        staff.ids[username] = user.id
    report = handle.sync()
    assert report.rejected == 0, "the server refused the admin's new users"
    return staff


class SharedClinic:
    """One server and clinic for the whole run (starting a server costs seconds).

    Tests take fresh desks with unique desk codes, so their rows never mix; the admin desk
    and the staff accounts are made once.
    """

    def __init__(self, clinic: Clinic) -> None:
        self.clinic = clinic
        self.server = clinic.server
        self.admin_desk = clinic.add_desk("A", "Admin office")
        self.staff = create_staff(self.admin_desk)
        from clinic_desktop.services import billing

        billing.create_price_item(
            self.admin_desk.desk,
            self.admin_desk.actors[ADMIN],
            code="CONS-DORIS",
            name="Consultation",
            amount_minor=2500,
            kind="consultation",
            doctor_id=self.staff.ids[self.staff.doctor],
        )
        assert self.admin_desk.sync().rejected == 0
        self._codes = (
            a + b for a in "BCDEFGHIJKLMNOPQRSTUVWXYZ" for b in "ABCDEFGHJKLMNPQRSTUVWXYZ"
        )

    def new_desk(self, name: str, sign_in: str | None = None) -> DeskHandle:
        handle = self.clinic.add_desk(next(self._codes), name, sign_in=sign_in)
        return handle

    def three_desks(self) -> tuple[DeskHandle, DeskHandle, DeskHandle]:
        """Reception, doctor and billing desks, each with its person signed in."""
        return (
            self.new_desk("Reception", self.staff.receptionist),
            self.new_desk("Consultation room", self.staff.doctor),
            self.new_desk("Billing", self.staff.billing),
        )

    def release(self, *handles: DeskHandle) -> None:
        for handle in handles:
            handle.close()
            if handle in self.clinic.desks:
                self.clinic.desks.remove(handle)


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedClinic]:
    mp = pytest.MonkeyPatch()
    mp.setattr(passwords, "BCRYPT_ROUNDS", 4)
    clinic = Clinic(tmp_path_factory.mktemp("shared-clinic"))
    try:
        yield SharedClinic(clinic)
    finally:
        clinic.close()
        mp.undo()


@pytest.fixture
def desks(shared: SharedClinic) -> Iterator[list[DeskHandle]]:
    """A list tests append their desks to; they are closed afterwards."""
    made: list[DeskHandle] = []
    yield made
    if shared.server.proc is None:
        shared.server.start()
    shared.release(*made)


@pytest.fixture
def pg_clinic(tmp_path: Path) -> Iterator[SharedClinic]:
    """A clinic on a server backed by a fresh PostgreSQL database."""
    try:
        name = create_pg_database()
    except Exception as exc:  # no PostgreSQL on this machine
        pytest.skip(f"PostgreSQL not available: {type(exc).__name__}")
    try:
        clinic = Clinic(tmp_path, PG_URL + name)
        try:
            yield SharedClinic(clinic)
        finally:
            clinic.close()
    finally:
        drop_pg_database(name)


def snapshot_rows(handle: DeskHandle | Desk, entity: str) -> dict[str, dict[str, Any]]:
    """Every row of an entity in a desk's store, as the JSON the protocol would carry."""
    desk = handle if isinstance(handle, Desk) else handle.desk
    from sqlalchemy import select

    from clinic_desktop.models import SYNCED_ENTITIES
    from clinic_desktop.models.serialize import row_fields

    cls = SYNCED_ENTITIES[entity]
    with desk.reading() as session:
        return {row.id: row_fields(row) for row in session.scalars(select(cls)).all()}


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
