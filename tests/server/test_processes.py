"""The ``clinic-server`` command: bootstrap flags, production refusals, and two server
processes on one PostgreSQL behaving as one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinic_desktop.sync import protocol
from tests.server.conftest import (
    PASSWORD,
    RunningServer,
    Session,
    World,
    free_port,
    mutation,
    patient_fields,
)

ROOT = Path(__file__).resolve().parents[2]


def _cli(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clinic_server.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_create_admin_and_enrolment_code_from_the_command_line(tmp_path: Path) -> None:
    made = _cli(
        "--data-dir",
        str(tmp_path),
        "--create-admin",
        "--clinic-name",
        "Hill Clinic",
        "--username",
        "Boss",
        "--full-name",
        "Bo Ss",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert made.returncode == 0, made.stderr
    assert "Admin boss created" in made.stdout
    weak = _cli(
        "--data-dir",
        str(tmp_path),
        "--create-admin",
        "--username",
        "second",
        "--full-name",
        "Se Cond",
        "--password-stdin",
        stdin="short\n",
    )
    assert weak.returncode == 2
    assert "at least 10 characters" in weak.stderr
    code = _cli("--data-dir", str(tmp_path), "--enrolment-code")
    assert code.returncode == 0, code.stderr
    assert "Enrolment code:" in code.stdout


def test_production_refuses_the_default_signing_key(tmp_path: Path) -> None:
    refused = _cli("--data-dir", str(tmp_path), env={"CLINIC_ENVIRONMENT": "production"})
    assert refused.returncode == 2
    assert "CLINIC_TOKEN_SECRET" in refused.stderr
    assert "Traceback" not in refused.stderr


def _start(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clinic_server.cli", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((proc.stderr.read() if proc.stderr else b"").decode()[-2000:])
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server process did not become ready")


@pytest.fixture
def two_processes(server: RunningServer, tmp_path: Path) -> Iterator[list[str]]:
    """Two ``clinic-server`` processes on the session's PostgreSQL database."""
    if server.backend != "postgres":
        pytest.skip("several server processes share one PostgreSQL database")
    env = {
        "DATABASE_URL": str(server.database_url),
        "CLINIC_TOKEN_SECRET": server.settings.token_secret.get_secret_value(),
        "CLINIC_ENVIRONMENT": "test",
        "CLINIC_DATA_DIR": str(tmp_path),
        "CLINIC_LOG_LEVEL": "WARNING",
        "CLINIC_LOGIN_MAX_FAILURES_PER_WINDOW": str(server.settings.login_max_failures_per_window),
    }
    ports = [free_port(), free_port()]
    procs = [_start(port, env) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, proc in zip(urls, procs, strict=True):
            _wait_ready(url, proc)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def _on(session: Session, url: str) -> Session:
    return Session(
        http=httpx.Client(base_url=url, timeout=30),
        clinic_id=session.clinic_id,
        user_id=session.user_id,
        token=session.token,
        refresh=session.refresh,
        device_id=session.device_id,
        device_secret=session.device_secret,
    )


def test_two_processes_behave_as_one(world: World, two_processes: list[str]) -> None:
    world.enrol("B")
    first = _on(world.admin_on["A"], two_processes[0])
    second = _on(world.admin_on["B"], two_processes[1])
    _, cursor = second.pull_all()

    # A long poll parked on process 2 wakes within a second of a push to process 1.
    got: dict[str, Any] = {}

    def wait() -> None:
        got["body"] = second.pull(cursor, wait=10).json()
        got["at"] = time.monotonic()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    row_id = str(uuid.uuid4())
    m = mutation("patient", row_id, patient_fields(world.clinic_id, row_id, "P-A-000001"))
    answer = first.push(m)
    pushed = time.monotonic()
    waiter.join(10)
    assert [c["row"]["id"] for c in got["body"]["changes"]] == [row_id]
    assert got["at"] - pushed < 1.0

    # The same batch replayed through the other process gets the stored answers.
    assert _on(world.admin_on["A"], two_processes[1]).push(m) == answer

    # A number taken on one process is refused on the other, even when pushed together.
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    results: list[dict[str, Any]] = []

    def clash(session: Session, row: str) -> None:
        results.append(
            session.push_one(
                mutation("patient", row, patient_fields(world.clinic_id, row, "P-A-000777"))
            )
        )

    threads = [
        threading.Thread(target=clash, args=(first, ids[0])),
        threading.Thread(target=clash, args=(second, ids[1])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(r["status"] for r in results) == ["accepted", "rejected"]

    # Sign-in rate limiting counts attempts made on either process.
    limit = world.server.settings.login_max_failures_per_window
    body = {"username": "nobody", "password": "Wrong-password-1", "clinic_id": world.clinic_id}
    for n in range(limit):
        url = two_processes[n % 2]
        httpx.post(f"{url}/api/v1/auth/login", json=body, headers=protocol.version_headers())
    blocked = httpx.post(
        f"{two_processes[0]}/api/v1/auth/login", json=body, headers=protocol.version_headers()
    )
    assert blocked.status_code == 429
    # The admin's token from the test server opens both processes (no per-process sessions).
    for url in two_processes:
        me = httpx.get(f"{url}/api/v1/auth/me", headers=world.admin_on["A"].headers())
        assert me.status_code == 200
