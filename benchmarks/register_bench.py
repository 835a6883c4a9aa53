"""Registering patients one by one through the service (issue 2, numbers to measure).

Each registration is its own transaction on a fresh encrypted store opened as the application
opens it (keyring key, migrations, WAL, ``synchronous=FULL``), including validation, the
duplicate check, the patient number, the outbox entry, the audit event and the FTS index
triggers. Prints JSON with patients per second.

    .venv/bin/python benchmarks/register_bench.py [--count 10000]

The benchmark uses a throw-away plain-file keyring in a temporary folder, never yours.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="clinic-register-bench-"))
os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
os.environ["XDG_DATA_HOME"] = str(_TMP / "keyring")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from search_bench import generate  # noqa: E402

from clinic_desktop.services import passwords, patients, users  # noqa: E402
from clinic_desktop.services.patients import PatientDraft  # noqa: E402
from clinic_desktop.store.open import open_store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args(argv)

    passwords.BCRYPT_ROUNDS = 4  # setup only; registering hashes nothing
    store = open_store(_TMP / "desk")
    setup = users.setup_clinic(
        store.engine,
        device_id=store.device_id,
        audit_key=store.audit_key,
        clock=store.clock,
        clinic_name="Benchmark Clinic",
        currency="USD",
        desk_code="R",
        admin_username="admin",
        admin_full_name="Bench Admin",
        password="quiet-bench-pass-1",
    )
    desk = setup.desk
    reception = users.actor_for(
        users.create_user(
            desk,
            setup.admin,
            username="reception",
            full_name="Bench Reception",
            roles=["receptionist"],
            password="front-bench-pass-1",
        )
    )
    drafts = [
        PatientDraft(
            full_name=row[7],
            sex=row[8],
            date_of_birth=date.fromisoformat(row[9]),
            phone=row[11],
            address="12 Bench Street",
            allergies="none known",
        )
        for row in generate(args.count, seed=99)
    ]
    timings: list[float] = []
    warned = 0
    started = time.perf_counter()
    for draft in drafts:
        t0 = time.perf_counter()
        try:
            patients.register(desk, reception, draft)
        except patients.DuplicateWarning:
            warned += 1
            patients.register(desk, reception, draft, confirm_not_duplicate=True)
        timings.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    timings.sort()
    size_mb = store.path.stat().st_size / 1e6
    store.close()
    print(
        json.dumps(
            {
                "benchmark": "register_patients",
                "patients": args.count,
                "seconds": round(elapsed, 2),
                "patients_per_second": round(args.count / elapsed, 1),
                "median_ms": round(statistics.median(timings), 2),
                "p95_ms": round(timings[int(len(timings) * 0.95) - 1], 2),
                "duplicate_warnings": warned,
                "store": "SQLCipher, WAL, synchronous=FULL; one transaction per patient "
                "(patient + outbox + audit event + FTS triggers)",
                "store_mb": round(size_mb, 1),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
