"""Fixtures for the Stripe tests: the real server over HTTP, the stand-in, a seeded clinic.

Only Stripe's remote API is replaced (by ``tools.stripe_standin``, driven through the official
``stripe`` library); the server, its database (SQLite file or a fresh PostgreSQL database),
HTTP and the sync change log are the real ones.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import psycopg
import pytest
import requests
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from clinic_desktop.models import (
    Bill,
    BillItem,
    ClinicSettings,
    Patient,
    Payment,
    User,
    Workstation,
    new_id,
)
from clinic_desktop.sync import protocol
from clinic_server.app import create_app
from clinic_server.payments.service import StripePayments
from clinic_server.payments.settings import StripeSettings
from clinic_server.payments.tables import StripeCheckout
from clinic_server.security import (
    AccessClaims,
    issue_access_token,
    make_refresh_token,
    sha256_hex,
)
from clinic_server.settings import Settings
from clinic_server.state import ServerState
from clinic_server.sync.apply import server_write
from clinic_server.sync.changes import ChangeSet
from clinic_server.tables import AuthSession, Clinic, DeviceCredential
from tools.stripe_standin import StripeStandin

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
WEBHOOK_SECRET = "whsec_test_" + "a" * 24
SECRET_KEY = "sk_test_clinicdesk"
PATIENT_NAME = "Zeynep Quixotic-Patientname"
PROCEDURE = "HIV viral load test"
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """uvicorn serving the app on a thread; ``stop()`` makes it unreachable, ``start()`` again."""

    def __init__(self, app: FastAPI, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=20)
        self._server = None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"clinic_pay_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running at 127.0.0.1:5432")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class World:
    """A running server with the stand-in and one seeded clinic, as the tests see them."""

    server: ServerThread
    standin: StripeStandin
    state: ServerState
    payments: StripePayments
    clinic_id: str
    user_id: str
    device_id: str
    device_secret: str
    patient_id: str
    token: str = ""
    bills: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            protocol.HEADER_PROTOCOL: str(protocol.PROTOCOL_VERSION),
            protocol.HEADER_SCHEMA: str(protocol.SCHEMA_VERSION),
            protocol.HEADER_DEVICE_ID: self.device_id,
            protocol.HEADER_DEVICE_SECRET: self.device_secret,
        }

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(
            f"{self.url}/api/v1/payments/stripe{path}",
            json=body,
            headers=self.headers(),
            timeout=30,
        )

    def add_user(self, username: str, roles: list[str]) -> str:
        """Another member of staff (synced row, through the change log); returns the id."""
        user = User(
            id=new_id(),
            clinic_id=self.clinic_id,
            username=username,
            full_name=username.title(),
            roles=roles,
            password_hash=bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(),
        )
        with self.state.db.write() as session:
            changes = ChangeSet(self.clinic_id)
            server_write(session, changes, user, {}, self.state.clock, None)
            changes.finish(session)
        return user.id

    def login(self, user_id: str | None = None) -> None:
        """A signed-in session (the cashier's by default), as ``/auth/login`` makes one."""
        user_id = user_id or self.user_id
        now = datetime.now(UTC)
        session_id = new_id()
        _refresh, refresh_hash = make_refresh_token(session_id)
        with self.state.db.write() as session:
            session.add(
                AuthSession(
                    id=session_id,
                    clinic_id=self.clinic_id,
                    user_id=user_id,
                    device_id=self.device_id,
                    token_hash=refresh_hash,
                    created_at=now,
                    expires_at=now + timedelta(days=1),
                    revoked_reason="",
                )
            )
        self.token = issue_access_token(
            self.state.settings.token_secret.get_secret_value(),
            AccessClaims(user_id=user_id, clinic_id=self.clinic_id, session_id=session_id),
            timedelta(minutes=15),
        )

    def add_bill(
        self, total_minor: int = 15000, currency: str = "USD", status: str = "issued"
    ) -> str:
        """A bill as if the billing desk had pushed it (written through the change log)."""
        with self.state.db.write() as session:
            changes = ChangeSet(self.clinic_id)
            number = f"INV-B-{len(self.bills) + 1:06d}"
            bill = Bill(
                id=new_id(),
                clinic_id=self.clinic_id,
                patient_id=self.patient_id,
                desk_code="B",
                invoice_number=number,
                status=status,
                currency=currency,
                subtotal_minor=total_minor,
                total_minor=total_minor,
                issued_at=datetime.now(UTC),
            )
            server_write(session, changes, bill, {}, self.state.clock, self.user_id)
            item = BillItem(
                id=new_id(),
                clinic_id=self.clinic_id,
                bill_id=bill.id,
                description=PROCEDURE,
                quantity=1,
                unit_price_minor=total_minor,
                amount_minor=total_minor,
            )
            server_write(session, changes, item, {}, self.state.clock, self.user_id)
            changes.finish(session)
        self.bills.append(bill.id)
        return bill.id

    def pay_cash(self, bill_id: str, amount_minor: int, bill_status: str = "paid") -> str:
        """A cash payment taken at the desk and pushed (through the change log)."""
        with self.state.db.write() as session:
            changes = ChangeSet(self.clinic_id)
            payment = Payment(
                id=new_id(),
                clinic_id=self.clinic_id,
                bill_id=bill_id,
                method="cash",
                amount_minor=amount_minor,
                currency="USD",
                received_at=datetime.now(UTC),
                received_by=self.user_id,
                desk_code="B",
            )
            server_write(session, changes, payment, {}, self.state.clock, self.user_id)
            bill = session.get(Bill, bill_id)
            assert bill is not None
            server_write(
                session, changes, bill, {"status": bill_status}, self.state.clock, self.user_id
            )
            changes.finish(session)
        return payment.id

    def payments_of(self, bill_id: str) -> list[Payment]:
        with self.state.db.read() as session:
            return list(
                session.scalars(
                    select(Payment).where(Payment.bill_id == bill_id).order_by(Payment.received_at)
                )
            )

    def bill(self, bill_id: str) -> Bill:
        with self.state.db.read() as session:
            bill = session.get(Bill, bill_id)
            assert bill is not None
            return bill

    def checkout(self, session_id: str) -> StripeCheckout:
        with self.state.db.read() as session:
            row = session.scalar(
                select(StripeCheckout).where(StripeCheckout.session_id == session_id)
            )
            assert row is not None
            return row

    def change_log_entries(self, entity: str, row_id: str) -> int:
        from clinic_server.tables import ChangeLog

        with self.state.db.read() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(ChangeLog)
                    .where(ChangeLog.entity == entity, ChangeLog.row_id == row_id)
                )
                or 0
            )


def _seed(state: ServerState) -> dict[str, str]:
    clinic_id, user_id, device_id, patient_id = new_id(), new_id(), new_id(), new_id()
    secret = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    with state.db.write() as session:
        session.add(Clinic(id=clinic_id, name="Test clinic", created_at=now))
        session.flush()
        changes = ChangeSet(clinic_id)
        rows = [
            ClinicSettings(id=new_id(), clinic_id=clinic_id, name="Test clinic", currency="USD"),
            User(
                id=user_id,
                clinic_id=clinic_id,
                username="cashier",
                full_name="Casey Cashier",
                roles=["billing"],
                password_hash=bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(),
            ),
            Workstation(id=device_id, clinic_id=clinic_id, desk_code="B", name="Billing"),
            Patient(
                id=patient_id,
                clinic_id=clinic_id,
                patient_number="P-B-000001",
                full_name=PATIENT_NAME,
                phone="+15550001234",
            ),
        ]
        for row in rows:
            server_write(session, changes, row, {}, state.clock, None)
        changes.finish(session)
        session.add(
            DeviceCredential(
                device_id=device_id,
                clinic_id=clinic_id,
                secret_hash=sha256_hex(secret),
                created_at=now,
            )
        )
    return {
        "clinic_id": clinic_id,
        "user_id": user_id,
        "device_id": device_id,
        "device_secret": secret,
        "patient_id": patient_id,
    }


def build_world(tmp_path: Path, database_url: str | None) -> World:
    standin = StripeStandin(auto_deliver=False, webhook_secret=WEBHOOK_SECRET).start()
    port = free_port()
    settings = Settings(
        environment="test",
        data_dir=tmp_path / "server",
        database_url=database_url,
        bcrypt_rounds=4,
    )
    app = create_app(settings)
    state: ServerState = app.state.clinic
    payments = StripePayments(
        state.db,
        StripeSettings(
            secret_key=SECRET_KEY,
            webhook_secret=WEBHOOK_SECRET,
            api_base=standin.base_url,
            public_url=f"https://127.0.0.1:{port}",
        ),
        clock=state.clock,
        notifier=state.notifier,
    )
    app.state.stripe_payments = payments
    server = ServerThread(app, port)
    server.start()
    standin.webhook_url = f"{server.url}/api/v1/payments/stripe/webhook"
    world = World(server=server, standin=standin, state=state, payments=payments, **_seed(state))
    world.login()
    return world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Server on a SQLite file (the single-machine deployment)."""
    built = build_world(tmp_path, None)
    yield built
    built.server.stop()
    built.standin.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The same server on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    built = build_world(tmp_path, url)
    yield built
    built.server.stop()
    built.standin.stop()


@pytest.fixture
def pg_world(tmp_path: Path, pg_url: str) -> Iterator[World]:
    """Server on PostgreSQL (the production deployment)."""
    built = build_world(tmp_path, pg_url)
    yield built
    built.server.stop()
    built.standin.stop()
