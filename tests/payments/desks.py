"""A whole clinic for the end-to-end Stripe tests: ``clinic-server`` as its own process
(configured for the stand-in through ``CLINIC_STRIPE_*``), and enrolled, encrypted desk
stores that sync with it through the real sync client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from clinic_desktop.services import billing, patients, queue, users
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.store.open import OpenedStore, desk_for, open_store
from clinic_desktop.sync import protocol
from clinic_desktop.sync.enrolment import enrol, load_credential, server_sign_in
from clinic_desktop.sync.pull import needs_snapshot, pull_all, run_snapshot
from clinic_desktop.sync.push import push_pending
from clinic_desktop.sync.transport import Transport
from tests.payments.conftest import SECRET_KEY, WEBHOOK_SECRET, free_port
from tools.stripe_standin import StripeStandin

SERVER_BIN = Path(sys.executable).parent / "clinic-server"
REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Quiet-harbour-17"


class ServerProcess:
    """``clinic-server`` as a subprocess on a free port; stop() makes it unreachable."""

    def __init__(self, data_dir: Path, standin: StripeStandin) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ)
        self.env.update(
            {
                "CLINIC_ENVIRONMENT": "test",
                "CLINIC_BCRYPT_ROUNDS": "4",
                "CLINIC_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(REPO_ROOT),
                "CLINIC_STRIPE_SECRET_KEY": SECRET_KEY,
                "CLINIC_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "CLINIC_STRIPE_API_BASE": standin.base_url,
                "CLINIC_STRIPE_PUBLIC_URL": f"https://127.0.0.1:{self.port}",
            }
        )
        for name in ("DATABASE_URL", "CLINIC_DATABASE_URL"):
            self.env.pop(name, None)
        data_dir.mkdir(parents=True, exist_ok=True)

    def cli(self, *args: str, stdin: str = "") -> str:
        result = subprocess.run(
            [str(SERVER_BIN), "--data-dir", str(self.data_dir), *args],
            input=stdin.encode(),
            capture_output=True,
            env=self.env,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"clinic-server {args} failed: {result.stderr.decode()[-2000:]}")
        return result.stdout.decode()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(SERVER_BIN), "--data-dir", str(self.data_dir), "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
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
        raise RuntimeError("clinic-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:  # a long poll keeps graceful shutdown waiting
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def admin_token(self) -> str:
        answer = requests.post(
            f"{self.url}/api/v1/auth/login",
            json={"username": "admin", "password": PASSWORD},
            headers=protocol.version_headers(),
            timeout=30,
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def enrolment_code(self) -> str:
        answer = requests.post(
            f"{self.url}/api/v1/devices/enrolment-codes",
            json={"ttl_minutes": 60},
            headers={**protocol.version_headers(), "Authorization": f"Bearer {self.admin_token()}"},
            timeout=30,
        )
        answer.raise_for_status()
        return str(answer.json()["code"])


@dataclass
class DeskHandle:
    """One enrolled workstation: its store, desk, sync transport and signed-in people."""

    store: OpenedStore
    desk: Desk
    transport: Transport
    actors: dict[str, Actor] = field(default_factory=dict)

    def sign_in(self, username: str) -> Actor:
        """Sign in against the server (the desk's transport now carries this person)."""
        server_sign_in(self.desk, self.transport, username, PASSWORD)
        self.actors[username] = users.sign_in(self.desk, username, PASSWORD)
        return self.actors[username]

    def sync(self) -> None:
        """One full cycle, as the worker does it: push, snapshot if needed, pull."""
        report = push_pending(self.desk, self.transport)
        assert report.rejected == 0, "the server refused a change from this desk"
        if needs_snapshot(self.desk):
            run_snapshot(self.desk, self.transport)
        pull_all(self.desk, self.transport)

    def auth_headers(self) -> dict[str, str]:
        """What the desk sends the server: version headers, token, device credential."""
        tokens = self.transport.tokens
        credential = self.transport.credential
        assert tokens is not None
        assert credential is not None
        return {
            **protocol.version_headers(),
            "Authorization": f"Bearer {tokens.access_token}",
            protocol.HEADER_DEVICE_ID: credential.device_id,
            protocol.HEADER_DEVICE_SECRET: credential.secret,
        }

    def close(self) -> None:
        self.transport.close()
        self.store.close()


@dataclass
class StripeClinic:
    root: Path
    standin: StripeStandin
    server: ServerProcess
    desks: list[DeskHandle] = field(default_factory=list)

    def add_desk(self, code: str, name: str) -> DeskHandle:
        store = open_store(self.root / f"desk-{code}")
        enrol(store, self.server.url, self.server.enrolment_code(), code, name, allow_insecure=True)
        desk = desk_for(store)
        assert desk is not None
        transport = Transport(
            self.server.url, allow_insecure=True, credential=load_credential(store.data_dir)
        )
        handle = DeskHandle(store=store, desk=desk, transport=transport)
        transport.login("admin", PASSWORD, clinic_id=desk.clinic_id)
        handle.sync()
        handle.sign_in("admin")
        self.desks.append(handle)
        return handle

    def close(self) -> None:
        for handle in self.desks:
            handle.close()
        self.server.stop()
        self.standin.stop()


def start_clinic(root: Path) -> StripeClinic:
    """Stand-in, then the server pointed at it, then the stand-in's webhooks at the server."""
    standin = StripeStandin(webhook_secret=WEBHOOK_SECRET).start()
    server = ServerProcess(root / "server", standin)
    server.cli(
        "--create-admin",
        "--clinic-name",
        "Stripe Test Clinic",
        "--username",
        "admin",
        "--full-name",
        "Ada Admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    server.start()
    standin.webhook_url = f"{server.url}/api/v1/payments/stripe/webhook"
    return StripeClinic(root=root, standin=standin, server=server)


def finished_visit(handle: DeskHandle) -> str:
    """Staff, a price list, a patient and a token; the doctor finishes the visit (pushed)."""
    admin = handle.actors["admin"]
    doctor = users.create_user(
        handle.desk,
        admin,
        username="doris",
        full_name="Doris Doctor",
        roles=["doctor"],
        password=PASSWORD,
        must_change_password=False,
    )
    users.create_user(
        handle.desk,
        admin,
        username="casey",
        full_name="Casey Cashier",
        roles=["billing"],
        password=PASSWORD,
        must_change_password=False,
    )
    billing.create_price_item(
        handle.desk,
        admin,
        code="CONS-D",
        name="Consultation Dr Doris",
        amount_minor=4500,
        kind="consultation",
        doctor_id=doctor.id,
    )
    patient = patients.register(
        handle.desk,
        admin,
        patients.PatientDraft(
            full_name="Zeynep Quixotic-Patientname", sex="female", age_years=41, phone="0711000999"
        ),
    )
    visit = queue.issue_token(handle.desk, admin, patient.id, doctor.id)
    handle.sync()
    doc = handle.sign_in("doris")
    for step in (queue.call, queue.start, queue.complete):
        step(handle.desk, doc, visit.id)
    handle.sync()
    return visit.id


def issued_bill_for_a_finished_visit(handle: DeskHandle) -> str:
    """The path a real bill takes on the billing desk: a finished visit, the cashier bills
    it and issues it; then it is pushed."""
    visit_id = finished_visit(handle)
    cashier = handle.sign_in("casey")
    bill = billing.create_bill_for_visit(handle.desk, cashier, visit_id)
    billing.issue_bill(handle.desk, cashier, bill.id)
    handle.sync()
    return bill.id
