"""Propagation: time from a save on desk A to the change in desk B's store (JSON figures).

Starts a real ``clinic-server`` (SQLite in a temporary dir, or PostgreSQL with
``DATABASE_URL``), enrols two real desks (encrypted stores, sync workers) and ``--desks``
minus two simulated desks that only long-poll ``/sync/changes`` like a desk's pull thread
(so the server carries 50 waiting desks). Each sample registers a patient on A through the
patients service and waits for it in B's store (B's "rows changed" hook fires after commit),
and for every poller to receive it.

    .venv/bin/python benchmarks/propagation_bench.py [--desks 50] [--saves 40]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# Never touch the real keyring: a file keyring under a throw-away home, chosen explicitly.
_HOME = tempfile.mkdtemp(prefix="clinic-bench-")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
os.environ["XDG_DATA_HOME"] = _HOME

import requests  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clinic_desktop.services import passwords  # noqa: E402
from clinic_desktop.sync import protocol  # noqa: E402

SERVER_BIN = Path(sys.executable).parent / "clinic-server"
ADMIN, PASSWORD = "admin", "Quiet-harbour-17"
passwords.BCRYPT_ROUNDS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A clinic-server subprocess with one clinic and its admin."""

    def __init__(self, root: Path, workers: int = 1) -> None:
        self.root = root
        self.data = root / "server"
        self.data.mkdir(parents=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.update(CLINIC_ENVIRONMENT="test", CLINIC_LOG_LEVEL="WARNING")
        self.env["PYTHONPATH"] = str(REPO)
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self._token: str | None = None

    def cli(self, *args: str, stdin: str = "") -> str:
        result = subprocess.run(
            [str(SERVER_BIN), "--data-dir", str(self.data), *args],
            input=stdin.encode(),
            capture_output=True,
            env=self.env,
            timeout=300,
            check=True,
        )
        return result.stdout.decode()

    def create_clinic(self) -> None:
        self.cli(
            "--create-admin",
            "--clinic-name",
            "Bench Clinic",
            "--username",
            ADMIN,
            "--full-name",
            "Ada Admin",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )

    def start(self) -> None:
        log = (self.data / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(SERVER_BIN),
                "--data-dir",
                str(self.data),
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:  # open long polls hold a graceful stop
                self.proc.kill()
                self.proc.wait(5)

    def admin_token(self) -> str:
        if self._token is None:
            response = requests.post(
                f"{self.url}{protocol.API_PREFIX}{protocol.PATH_LOGIN}",
                json={"username": ADMIN, "password": PASSWORD},
                headers=protocol.version_headers(),
                timeout=30,
            )
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def enrolment_code(self) -> str:
        response = requests.post(
            f"{self.url}{protocol.API_PREFIX}{protocol.PATH_ENROLMENT_CODES}",
            json={"ttl_minutes": 60},
            headers={**protocol.version_headers(), "Authorization": f"Bearer {self.admin_token()}"},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["code"])


def desk_codes() -> Any:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    for a in letters:
        yield a
    for a in letters:
        for b in letters:
            yield a + b


def real_desk(server: Server, code: str, username: str) -> Any:
    """An enrolled desk: encrypted store, first snapshot, signed-in user, transport."""
    from clinic_desktop.services import users
    from clinic_desktop.store.open import desk_for, open_store
    from clinic_desktop.sync.client import sync_once
    from clinic_desktop.sync.enrolment import enrol, load_credential
    from clinic_desktop.sync.transport import Transport

    store = open_store(server.root / f"desk-{code}")
    enrol(store, server.url, server.enrolment_code(), code, f"Desk {code}", allow_insecure=True)
    desk = desk_for(store)
    assert desk is not None
    transport = Transport(
        server.url, allow_insecure=True, credential=load_credential(store.data_dir)
    )
    transport.login(username, PASSWORD, clinic_id=desk.clinic_id)
    sync_once(desk, transport)
    actor = users.sign_in(desk, username, PASSWORD)
    return store, desk, transport, actor


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.5) * 1000, 1),
        "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1) if values else float("nan"),
        "mean_ms": round(statistics.fmean(values) * 1000, 1) if values else float("nan"),
    }


class Poller(threading.Thread):
    """A simulated desk: long-polls the change feed and notes when each patient arrives."""

    def __init__(self, transport: Any, cursor: int, seen: dict[str, float]) -> None:
        super().__init__(daemon=True)
        self.transport = transport
        self.cursor = cursor
        self.seen = seen
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                page = self.transport.changes(self.cursor, limit=500, wait=10)
            except Exception:
                time.sleep(0.2)
                continue
            now = time.monotonic()
            for change in page["changes"]:
                if change["entity"] == "patient":
                    self.seen.setdefault(change["row"]["id"], now)
            self.cursor = int(page["cursor"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--desks", type=int, default=50)
    parser.add_argument("--saves", type=int, default=40)
    args = parser.parse_args()

    from clinic_desktop.services import patients, users
    from clinic_desktop.sync.transport import DeviceCredential, Transport
    from clinic_desktop.sync.worker import SyncWorker

    root = Path(tempfile.mkdtemp(prefix="clinic-prop-"))
    server = Server(root)
    server.create_clinic()
    server.start()
    codes = desk_codes()
    try:
        # The admin's desk creates the receptionist (cheap bcrypt) like an admin would.
        _, admin_desk, admin_transport, admin_actor = real_desk(server, next(codes), ADMIN)
        users.create_user(
            admin_desk,
            admin_actor,
            username="rita",
            full_name="Rita Reception",
            roles=["receptionist"],
            password=PASSWORD,
            must_change_password=False,
        )
        from clinic_desktop.sync.client import sync_once

        sync_once(admin_desk, admin_transport)

        _, desk_a, transport_a, rita = real_desk(server, next(codes), "rita")
        _, desk_b, transport_b, _ = real_desk(server, next(codes), "rita")
        arrived_b: dict[str, float] = {}
        worker_a = SyncWorker(desk_a, transport_a, long_poll=20)
        worker_b = SyncWorker(desk_b, transport_b, long_poll=20)

        def on_rows(changes: dict[str, list[str]]) -> None:
            now = time.monotonic()
            for row_id in changes.get("patient", []):
                arrived_b.setdefault(row_id, now)

        worker_b.events.on_rows_changed(on_rows)
        pushed: dict[str, float] = {}
        current: list[str] = []

        def on_status_a(status: Any) -> None:
            if status.pending == 0 and current and current[-1] not in pushed:
                pushed[current[-1]] = time.monotonic()

        worker_a.events.on_status(on_status_a)
        worker_a.start()
        worker_b.start()

        # The simulated desks: enrolled devices whose pull threads long-poll the server.
        pollers: list[Poller] = []
        poll_seen: list[dict[str, float]] = []
        head = int(transport_a.snapshot_start()["cursor"])
        for _ in range(max(0, args.desks - 2)):
            code = next(codes)
            # A simulated desk needs no store: just its credential and a signed-in user.
            answer = Transport(server.url, allow_insecure=True).enrol(
                server.enrolment_code(), code, "sim"
            )
            transport = Transport(
                server.url,
                allow_insecure=True,
                credential=DeviceCredential(answer["device_id"], answer["device_secret"]),
            )
            transport.login("rita", PASSWORD)
            seen: dict[str, float] = {}
            poller = Poller(transport, head, seen)
            poller.start()
            pollers.append(poller)
            poll_seen.append(seen)
        worker_a.wait_idle(30)
        worker_b.wait_idle(30)
        time.sleep(1.0)

        saved_at: dict[str, float] = {}
        for n in range(args.saves):
            started = time.monotonic()
            patient = patients.register(
                desk_a,
                rita,
                patients.PatientDraft(full_name=f"Propagation Sample {n:03d}", sex="unknown"),
                confirm_not_duplicate=True,
            )
            saved_at[patient.id] = started
            current.append(patient.id)
            deadline = time.monotonic() + 10
            while patient.id not in arrived_b and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(0.05 + (n % 5) * 0.03)
        time.sleep(2.0)

        store_to_store = [arrived_b[i] - t for i, t in saved_at.items() if i in arrived_b]
        to_pollers = [seen[i] - t for seen in poll_seen for i, t in saved_at.items() if i in seen]
        missing_b = sum(1 for i in saved_at if i not in arrived_b)
        push_answered = [pushed[i] - t for i, t in saved_at.items() if i in pushed]
        for poller in pollers:
            poller.stopping.set()
        worker_a.stop()
        worker_b.stop()
        result = {
            "benchmark": "propagation",
            "server_database": "postgresql" if os.environ.get("DATABASE_URL") else "sqlite",
            "desks_long_polling": args.desks,
            "saves": args.saves,
            "save_on_A_to_row_in_B_store": summary(store_to_store),
            "save_on_A_to_change_received_by_simulated_desks": summary(to_pollers),
            "save_on_A_to_push_answered": summary(push_answered),
            "missing_in_B": missing_b,
            "target_p95_ms": 1000,
            "cpu_count": os.cpu_count(),
        }
        print(json.dumps(result, indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
