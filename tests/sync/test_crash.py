"""SIGKILL the desk's sync process at random points of push and pull, 20+ times.

After a final clean run every desk holds the same rows, every local mutation reached the
server exactly once (none lost, none applied twice) and no row is duplicated.
"""

from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time

from sqlalchemy import select as sql_select

from clinic_desktop.models import OutboxEntry
from clinic_desktop.services import patients, queue
from clinic_desktop.store.open import desk_for, open_store
from tests.sync.conftest import PASSWORD, REPO_ROOT, DeskHandle, SharedClinic, snapshot_rows

KILLS = 20


def _fork_server(shared: SharedClinic, data_dir: str) -> subprocess.Popen[bytes]:
    """The desk sync process's fork server (see ``desk_sync_process``)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.sync.desk_sync_process",
            data_dir,
            shared.server.url,
            shared.staff.receptionist,
            PASSWORD,
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )


def _read_until(proc: subprocess.Popen[bytes], wanted: tuple[str, ...], timeout: float) -> str:
    """Lines until one starts with a wanted word; returns it ("" on timeout or exit)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline().decode().strip()
            if line.split(" ")[0] in wanted:
                return line
            if not line and proc.poll() is not None:
                return ""
    return ""


def _go(proc: subprocess.Popen[bytes]) -> int:
    """Fork a fresh desk sync process; returns its pid."""
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    line = _read_until(proc, ("child",), 30)
    assert line, "the fork server did not answer"
    return int(line.split(" ")[1])


def test_sigkill_during_push_and_pull_loses_nothing_and_applies_nothing_twice(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    rita = shared.staff.receptionist
    victim = shared.new_desk("Crashy", rita)
    feeder = shared.new_desk("Feeder", rita)
    desks.append(feeder)
    data_dir = str(victim.store.data_dir)
    # A backlog from a long offline morning: patients, tokens, audit events.
    for n in range(30):
        patient = patients.register(
            victim.desk,
            victim.actors[rita],
            patients.PatientDraft(full_name=f"Backlog Person {n:02d}", sex="unknown"),
            confirm_not_duplicate=True,
        )
        queue.issue_token(
            victim.desk, victim.actors[rita], patient.id, shared.staff.ids[shared.staff.doctor]
        )
    victim.close()
    shared.clinic.desks.remove(victim)

    rng = random.Random(4242)
    finished_early = 0
    server = _fork_server(shared, data_dir)
    try:
        for round_no in range(KILLS):
            # Give the victim something to pull as well.
            patients.register(
                feeder.desk,
                feeder.actors[rita],
                patients.PatientDraft(full_name=f"Feeder Person {round_no:02d}", sex="unknown"),
                confirm_not_duplicate=True,
            )
            feeder.sync()
            pid = _go(server)
            assert _read_until(server, ("ready",), 60), "the sync process did not start"
            time.sleep(rng.uniform(0.02, 0.5))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                finished_early += 1
            if _read_until(server, ("idle", "reaped"), 30) == "idle":
                finished_early += 1  # it converged before the kill came
                _read_until(server, ("reaped",), 30)

        _go(server)
        assert _read_until(server, ("ready",), 60)
        assert _read_until(server, ("idle", "stuck"), 120) == "idle", "no convergence"
        assert _read_until(server, ("reaped",), 30)
    finally:
        assert server.stdin is not None
        server.stdin.write(b"quit\n")
        server.stdin.close()
        server.wait(30)
    assert finished_early < KILLS // 2, "most kills missed the sync: the test proves little"

    store = open_store(victim.store.data_dir)
    try:
        desk = desk_for(store)
        assert desk is not None
        with desk.reading() as session:
            outbox = session.execute(sql_select(OutboxEntry.mutation_id, OutboxEntry.state)).all()
        assert outbox
        assert {state for _, state in outbox} == {"done"}, "a mutation was lost or refused"
        mine = {mutation_id for mutation_id, _ in outbox}
        db_path = shared.server.data_dir / "clinic-server.db"
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            applied = {
                r[0]
                for r in db.execute(
                    "SELECT mutation_id FROM srv_applied_mutation WHERE device_id = ?",
                    (desk.device_id,),
                )
            }
            twice = db.execute(
                "SELECT mutation_id FROM srv_change_log WHERE mutation_id IS NOT NULL "
                "GROUP BY mutation_id HAVING count(*) > 1"
            ).fetchall()
        assert mine <= applied, "the server never saw some of this desk's changes"
        assert twice == [], "a mutation was applied twice"

        feeder.sync()
        for entity in ("patient", "visit", "audit_event"):
            theirs = snapshot_rows(feeder, entity)
            ours = snapshot_rows(desk, entity)
            assert ours == theirs, entity
        names = [row["full_name"] for row in snapshot_rows(desk, "patient").values()]
        backlog = [name for name in names if name.startswith("Backlog Person")]
        assert sorted(backlog) == [f"Backlog Person {n:02d}" for n in range(30)]
        feeders = [name for name in names if name.startswith("Feeder Person")]
        assert len(feeders) == len(set(feeders)) == KILLS
    finally:
        store.close()
