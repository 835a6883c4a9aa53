"""Push throughput on PostgreSQL with two server processes (issue 4, "numbers to measure").

Starts two ``clinic-server`` processes on a fresh PostgreSQL database, enrols one desk per
client thread, and pushes new-patient mutations at batch sizes 1, 50 and 500 from several
threads at once (half to each process). Prints JSON: accepted mutations per second.

    .venv/bin/python benchmarks/push_bench.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clinic_desktop.models.hlc import format_hlc  # noqa: E402
from clinic_desktop.services import passwords  # noqa: E402
from clinic_desktop.sync import protocol  # noqa: E402

PASSWORD = "Bench-password-42"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("a server process exited during start-up")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server not ready")


def _patient(clinic_id: str, number: str, node: str) -> dict[str, Any]:
    row_id = str(uuid.uuid4())
    return {
        "mutation_id": str(uuid.uuid4()),
        "entity": "patient",
        "row_id": row_id,
        "op": "insert",
        "fields": {
            "id": row_id,
            "clinic_id": clinic_id,
            "patient_number": number,
            "full_name": "Bench Patient",
            "sex": "unknown",
            "phone": "+15550100",
        },
        "base_version": 0,
        "hlc": format_hlc(time.time_ns() // 1_000_000, 0, node),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--threads", type=int, default=4, help="client threads (desks)")
    parser.add_argument("--seconds", type=float, default=8.0, help="run time per batch size")
    args = parser.parse_args()

    name = f"clinic_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = args.pg.rsplit("/", 1)[0].split("://", 1)[1]
    url = f"postgresql+psycopg://{base}/{name}"
    secret = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CLINIC_TOKEN_SECRET": secret,
        "CLINIC_LOG_LEVEL": "WARNING",
        "CLINIC_LOGIN_MAX_FAILURES_PER_WINDOW": "1000",
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        from clinic_server import bootstrap, migrate
        from clinic_server.db import open_database
        from clinic_server.settings import Settings

        passwords.BCRYPT_ROUNDS = 4
        db = open_database(Settings(database_url=url, token_secret=secret))  # type: ignore[arg-type]
        migrate.upgrade(db.engine)
        clinic_id = bootstrap.create_clinic(db, "Bench clinic")
        bootstrap.create_admin(db, clinic_id, "admin", "Bench Admin", PASSWORD)
        db.dispose()

        ports = [_free_port(), _free_port()]
        for port in ports:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "clinic_server.cli", "--port", str(port)],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for server_url, proc in zip(urls, procs, strict=True):
            _wait_ready(server_url, proc)

        headers = protocol.version_headers()
        desks: list[tuple[httpx.Client, dict[str, str], str]] = []
        with httpx.Client(base_url=urls[0], timeout=60) as http:
            login = {"username": "admin", "password": PASSWORD, "clinic_id": clinic_id}
            token = http.post("/api/v1/auth/login", json=login, headers=headers).json()
            auth = headers | {"Authorization": f"Bearer {token['access_token']}"}
            for n in range(args.threads):
                code = http.post("/api/v1/devices/enrolment-codes", json={}, headers=auth).json()
                desk_code = "ABCDEFGHJK"[n]
                enrolled = http.post(
                    "/api/v1/devices/enrol",
                    json={"code": code["code"], "desk_code": desk_code, "name": desk_code},
                    headers=headers,
                ).json()
                device = {
                    protocol.HEADER_DEVICE_ID: enrolled["device_id"],
                    protocol.HEADER_DEVICE_SECRET: enrolled["device_secret"],
                }
                signed = http.post(
                    "/api/v1/auth/login", json=login, headers=headers | device
                ).json()
                client = httpx.Client(base_url=urls[n % 2], timeout=120)
                desks.append(
                    (
                        client,
                        headers | device | {"Authorization": f"Bearer {signed['access_token']}"},
                        desk_code,
                    )
                )

        results = []
        for batch_size in (1, 50, 500):
            counters = [0] * len(desks)
            rejected = [0] * len(desks)
            stop_at = time.monotonic() + args.seconds

            def run(
                index: int,
                size: int = batch_size,
                deadline: float = stop_at,
                counters: list[int] = counters,
                rejected: list[int] = rejected,
            ) -> None:
                client, desk_headers, desk_code = desks[index]
                serial = 0
                while time.monotonic() < deadline:
                    batch = []
                    for _ in range(size):
                        serial += 1
                        number = f"P-{desk_code}-{size:03d}{serial:07d}"
                        batch.append(_patient(clinic_id, number, desk_code))
                    response = client.post(
                        "/api/v1/sync/push", json={"mutations": batch}, headers=desk_headers
                    )
                    response.raise_for_status()
                    for result in response.json()["results"]:
                        if result["status"] == "accepted":
                            counters[index] += 1
                        else:
                            rejected[index] += 1

            started = time.monotonic()
            threads = [threading.Thread(target=run, args=(i,)) for i in range(len(desks))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
            accepted = sum(counters)
            results.append(
                {
                    "batch_size": batch_size,
                    "accepted": accepted,
                    "rejected": sum(rejected),
                    "seconds": round(elapsed, 2),
                    "accepted_per_second": round(accepted / elapsed, 1),
                }
            )
        for client, _h, _c in desks:
            client.close()
        print(
            json.dumps(
                {
                    "benchmark": "push_throughput",
                    "database": "postgresql",
                    "server_processes": 2,
                    "client_threads": len(desks),
                    "mutation": "patient insert",
                    "cpu_count": os.cpu_count(),
                    "results": results,
                },
                indent=2,
            )
        )
        return 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    raise SystemExit(main())
