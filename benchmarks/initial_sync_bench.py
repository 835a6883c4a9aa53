"""Initial sync of a big clinic to an empty encrypted desk, against the raw insert floor.

The server's database is filled in bulk (``--patients`` patients, three visits each) with
the same rows a clinic would have; then an empty, enrolled desk takes its first snapshot
over HTTP (pages of 5,000, each committed with its page cursor). The floor is inserting the
very same rows, in the same id order and chunk size, into another fresh encrypted store with
no sync at all. Prints JSON: rows per second for both and their ratio (target: within 3x).

    .venv/bin/python benchmarks/initial_sync_bench.py [--patients 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation_bench import ADMIN, PASSWORD, Server  # sets up a throw-away keyring

from clinic_desktop.sync import protocol

FIRST = ["Amina", "Kofi", "Lena", "Ravi", "Chen", "Dara", "Ines", "Jon", "Mira", "Tomasz", "Olu"]
LAST = ["Yusuf", "Mensah", "Vogel", "Iyer", "Wei", "Okafor", "Duarte", "Berg", "Sol", "Nowak"]
CHUNK = protocol.MAX_SNAPSHOT_LIMIT


def _id(kind: int, i: int) -> str:
    """Ids that sort in generation order, so both runs insert in the same (id) order."""
    return f"{i:08x}-{kind:04x}-4000-8000-{i:012x}"


def _hlc(i: int) -> str:
    return f"{1_732_000_000_000 + i:015d}-000000-bench"


def patient_rows(n: int, clinic_id: str) -> Iterator[dict[str, Any]]:
    rng = random.Random(7)
    for i in range(n):
        yield {
            "id": _id(1, i),
            "clinic_id": clinic_id,
            "version": i + 1,
            "updated_at": _hlc(i),
            "updated_by": None,
            "origin": "bench",
            "deleted": False,
            "patient_number": f"P-S-{i + 1:06d}",
            "full_name": f"{rng.choice(FIRST)} {rng.choice(LAST)} {i}",
            "sex": rng.choice(["female", "male"]),
            "date_of_birth": (date(1940, 1, 1) + timedelta(days=rng.randrange(30000))).isoformat(),
            "dob_estimated": False,
            "phone": f"07{rng.randrange(10**8):08d}",
            "address": f"{rng.randrange(1, 200)} Market Street",
            "emergency_contact_name": "",
            "emergency_contact_phone": "",
            "allergies": "",
            "blood_group": rng.choice(["", "A+", "O+", "B-"]),
            "notes": "",
            "merged_into": None,
        }


def visit_rows(n_patients: int, clinic_id: str, doctor_id: str) -> Iterator[dict[str, Any]]:
    rng = random.Random(11)
    per_day: dict[date, int] = {}
    start = date(2025, 1, 1)
    for i in range(n_patients * 3):
        day = start + timedelta(days=rng.randrange(365))
        seq = per_day[day] = per_day.get(day, 0) + 1
        arrived = datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(minutes=seq)
        yield {
            "id": _id(2, i),
            "clinic_id": clinic_id,
            "version": n_patients + i + 1,
            "updated_at": _hlc(n_patients + i),
            "updated_by": None,
            "origin": "bench",
            "deleted": False,
            "patient_id": _id(1, rng.randrange(n_patients)),
            "doctor_id": doctor_id,
            "day": day.isoformat(),
            "desk_code": "S",
            "token_seq": seq,
            "token_label": f"S-{seq:03d}",
            "status": "completed",
            "priority": 0,
            "queue_position": seq,
            "arrived_at": arrived.isoformat(),
            "called_at": None,
            "started_at": None,
            "finished_at": (arrived + timedelta(minutes=15)).isoformat(),
            "complaint": "fever and cough",
            "bp_systolic": 120,
            "bp_diastolic": 80,
            "pulse": 72,
            "temperature_dc": 371,
            "weight_hg": 700,
            "height_cm": 170,
            "spo2": 98,
            "examination": "",
            "diagnosis_codes": ["J06.9"],
            "advice": "rest",
            "follow_up_date": None,
        }


def chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_server(server: Server, clinic_id: str, doctor_id: str, n: int) -> float:
    """Bulk insert straight into the server's database (what a migration import would do)."""
    from sqlalchemy import update

    from clinic_desktop.sync.apply import _decode, entity_info
    from clinic_server.db import open_database
    from clinic_server.settings import Settings
    from clinic_server.tables import Clinic

    started = time.perf_counter()
    db = open_database(Settings(data_dir=server.data))
    try:
        for entity, rows in (
            ("patient", patient_rows(n, clinic_id)),
            ("visit", visit_rows(n, clinic_id, doctor_id)),
        ):
            info = entity_info(entity)
            for batch in chunks(rows, 10_000):
                with db.engine.begin() as conn:
                    conn.execute(info.table.insert(), [_decode(info, r) for r in batch])
        with db.engine.begin() as conn:
            conn.execute(update(Clinic).where(Clinic.id == clinic_id).values(change_seq=n * 4 + 10))
    finally:
        db.dispose()
    return time.perf_counter() - started


def floor(root: Path, clinic_id: str, doctor_id: str, n: int) -> float:
    """The same rows into a fresh encrypted store, no HTTP, no sync bookkeeping."""
    from clinic_desktop.store.open import open_store
    from clinic_desktop.sync.apply import _decode, entity_info

    store = open_store(root / "floor-desk")
    try:
        started = time.perf_counter()
        with store.engine.connect() as conn:
            # Same as the sync client's apply connection: references are the server's job.
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
            for entity, rows in (
                ("patient", patient_rows(n, clinic_id)),
                ("visit", visit_rows(n, clinic_id, doctor_id)),
            ):
                info = entity_info(entity)
                for batch in chunks(rows, CHUNK):
                    with conn.begin():
                        conn.execute(info.table.insert(), [_decode(info, r) for r in batch])
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]
        return time.perf_counter() - started
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=100_000)
    args = parser.parse_args()
    n = args.patients

    from clinic_desktop.store.open import desk_for, open_store
    from clinic_desktop.sync.enrolment import enrol, load_credential
    from clinic_desktop.sync.pull import run_snapshot
    from clinic_desktop.sync.transport import Transport

    root = Path(tempfile.mkdtemp(prefix="clinic-initial-"))
    server = Server(root)
    out = server.cli(
        "--create-admin",
        "--clinic-name",
        "Big Clinic",
        "--username",
        ADMIN,
        "--full-name",
        "Ada Admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    clinic_id = re.search(r"clinic ([0-9a-f-]{36})", out).group(1)  # type: ignore[union-attr]
    doctor_id = re.search(r"user id ([0-9a-f-]{36})", out).group(1)  # type: ignore[union-attr]
    load_seconds = load_server(server, clinic_id, doctor_id, n)
    server.start()
    try:
        store = open_store(root / "new-desk")
        enrol(store, server.url, server.enrolment_code(), "N", "New desk", allow_insecure=True)
        desk = desk_for(store)
        assert desk is not None
        transport = Transport(
            server.url, allow_insecure=True, credential=load_credential(store.data_dir)
        )
        transport.login(ADMIN, PASSWORD)
        last_report = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last_report[0] > 5:
                last_report[0] = now
                print(f"  {done}/{total} rows", file=sys.stderr)

        started = time.perf_counter()
        report = run_snapshot(
            desk, transport, page_size=protocol.MAX_SNAPSHOT_LIMIT, progress=progress
        )
        sync_seconds = time.perf_counter() - started
        store.close()
    finally:
        server.stop()
    floor_seconds = floor(root, clinic_id, doctor_id, n)
    rows = n * 4
    result = {
        "benchmark": "initial_sync",
        "server_database": "postgresql" if os.environ.get("DATABASE_URL") else "sqlite",
        "patients": n,
        "visits": n * 3,
        "rows_synced": report.rows,
        "server_bulk_load_seconds": round(load_seconds, 2),
        "initial_sync_seconds": round(sync_seconds, 2),
        "initial_sync_rows_per_second": round(report.rows / sync_seconds),
        "raw_insert_seconds": round(floor_seconds, 2),
        "raw_insert_rows_per_second": round(rows / floor_seconds),
        "ratio_sync_to_raw": round(sync_seconds / floor_seconds, 2),
        "target_ratio": 3.0,
        "page_size": protocol.MAX_SNAPSHOT_LIMIT,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
