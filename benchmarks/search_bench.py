"""Patient search latency over 100,000 and 1,000,000 patients (issue 2, numbers to measure).

Builds (or reuses, from ``benchmarks/out/``) an encrypted store and a plain SQLite file with
the same synthetic patients, bulk-inserted with ``executemany`` (not through the service),
then times ``patients.search`` for 1-, 3- and 6-character name prefixes, a phone-number
fragment, and (for information) whole names and misspelt names. Prints JSON.

    .venv/bin/python benchmarks/search_bench.py [--sizes 100000 1000000] [--queries 300]

The plain file is opened with the same SQLCipher library without a key, so the ratio
isolates the cost of encryption (same SQLite version, same schema, same index).
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlcipher3
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import QueuePool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinic_desktop.models import Base, LocalBase  # noqa: E402
from clinic_desktop.models.hlc import HybridLogicalClock  # noqa: E402
from clinic_desktop.services import patients  # noqa: E402
from clinic_desktop.services.context import Desk  # noqa: E402
from clinic_desktop.store.engine import create_store_engine  # noqa: E402
from clinic_desktop.store.patient_index import (  # noqa: E402
    create_patient_index,
    optimize_patient_index,
)

OUT = ROOT / "benchmarks" / "out"
CLINIC = "bench-clinic"
BUILD_VERSION = "4"  # bump when the generator or schema changes, to rebuild cached files

# (locale, share of patients, name order): a mixed, multilingual population.
LOCALES = [
    ("en_US", 0.35, "first last"),
    ("en_IN", 0.20, "first last"),
    ("es_ES", 0.12, "first last"),
    ("de_DE", 0.08, "first last"),
    ("fr_FR", 0.05, "first last"),
    ("hi_IN", 0.08, "first last"),
    ("ar_AA", 0.06, "first last"),
    ("zh_CN", 0.06, "lastfirst"),
]


def _names(locale: str) -> tuple[list[str], list[float], list[str], list[float]]:
    provider = importlib.import_module(f"faker.providers.person.{locale}").Provider

    def split(values: Any) -> tuple[list[str], list[float]]:
        if isinstance(values, dict):
            return list(values), [float(w) for w in values.values()]
        items = list(values)
        return items, [1.0] * len(items)

    firsts, first_w = split(provider.first_names)
    lasts, last_w = split(provider.last_names)
    return firsts, first_w, lasts, last_w


def generate(count: int, seed: int = 20260302) -> Iterator[tuple[Any, ...]]:
    """Deterministic patient rows (the same for the encrypted and the plain file)."""
    rng = random.Random(seed)
    tables = {loc: _names(loc) for loc, _, _ in LOCALES}
    locales = [loc for loc, _, _ in LOCALES]
    shares = [share for _, share, _ in LOCALES]
    order = {loc: style for loc, _, style in LOCALES}
    today = date(2026, 3, 2)
    for n in range(1, count + 1):
        loc = rng.choices(locales, shares)[0]
        firsts, first_w, lasts, last_w = tables[loc]
        first = rng.choices(firsts, first_w)[0]
        last = rng.choices(lasts, last_w)[0]
        name = f"{last}{first}" if order[loc] == "lastfirst" else f"{first} {last}"
        phone = (
            "+"
            + rng.choice(["1", "91", "34", "49", "971", "86"])
            + str(rng.randrange(10**9, 10**10))
        )
        dob = today - timedelta(days=rng.randrange(0, 95 * 365))
        yield (
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            CLINIC,
            0,
            f"{n:015d}-000000-bench",
            "bench",
            0,
            f"P-Z-{n:06d}",
            name,
            rng.choice(["female", "male"]),
            dob.isoformat(),
            0,
            phone,
            "",
            "",
            "",
            "",
            "",
            "",
        )


INSERT = text(
    """INSERT INTO patient (id, clinic_id, version, updated_at, origin, deleted,
    patient_number, full_name, sex, date_of_birth, dob_estimated, phone, address,
    emergency_contact_name, emergency_contact_phone, allergies, blood_group, notes)
    VALUES (:0, :1, :2, :3, :4, :5, :6, :7, :8, :9, :10, :11, :12, :13, :14, :15, :16, :17)"""
)


def plain_engine(path: Path) -> Engine:
    """The same library and pragmas as the store engine, but no key: a clear-text file."""

    def connect() -> Any:
        conn = sqlcipher3.connect(str(path), check_same_thread=False, timeout=30)
        conn.isolation_level = None
        return conn

    engine = create_engine("sqlite://", creator=connect, poolclass=QueuePool)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: object) -> None:
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def build(engine: Engine, count: int) -> float:
    """Schema, bulk rows, then the search index (backfilled by its own DDL), then optimize."""
    started = time.perf_counter()
    Base.metadata.create_all(engine)
    LocalBase.metadata.create_all(engine)
    rows = generate(count)
    batch: list[dict[str, Any]] = []
    with engine.begin() as connection:
        for row in rows:
            batch.append({str(i): value for i, value in enumerate(row)})
            if len(batch) == 20_000:
                connection.execute(INSERT, batch)
                batch.clear()
        if batch:
            connection.execute(INSERT, batch)
    with engine.begin() as connection:
        create_patient_index(connection)
        optimize_patient_index(connection)
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    return time.perf_counter() - started


def open_or_build(count: int, encrypted: bool) -> tuple[Engine, dict[str, Any]]:
    OUT.mkdir(parents=True, exist_ok=True)
    kind = "encrypted" if encrypted else "plain"
    path = OUT / f"patients-{count}-{kind}.db"
    meta_path = path.with_suffix(".json")
    meta: dict[str, Any] = {}
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
    fresh = not (path.exists() and meta.get("version") == BUILD_VERSION and meta.get("complete"))
    if fresh:
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        meta = {"version": BUILD_VERSION, "key": secrets.token_hex(32) if encrypted else ""}
    engine = create_store_engine(path, meta["key"]) if encrypted else plain_engine(path)
    if fresh:
        meta["build_seconds"] = round(build(engine, count), 1)
        meta["complete"] = True
        meta_path.write_text(json.dumps(meta))
    meta["file_mb"] = round(path.stat().st_size / 1e6, 1)
    return engine, meta


def sample_queries(engine: Engine, per_kind: int, seed: int = 7) -> dict[str, list[str]]:
    """Queries taken from the data itself: prefixes of real first names, phone fragments."""
    rng = random.Random(seed)
    with engine.connect() as connection:
        top = connection.execute(text("SELECT max(rowid) FROM patient")).scalar_one()
        picks: list[tuple[str, str]] = []
        while len(picks) < per_kind:
            row = connection.execute(
                text("SELECT full_name, phone FROM patient WHERE rowid = :r"),
                {"r": rng.randrange(1, top + 1)},
            ).first()
            if row is not None:
                picks.append((row[0], row[1]))
    queries: dict[str, list[str]] = {
        "prefix_1": [],
        "prefix_3": [],
        "prefix_6": [],
        "phone_fragment": [],
        "full_name": [],
        "typo": [],
    }
    for name, phone in picks:
        word = max(patients.name_tokens(name), key=len)
        queries["prefix_1"].append(word[:1])
        queries["prefix_3"].append(word[:3])
        queries["prefix_6"].append(word[:6])
        start = rng.randrange(len(phone) - 6)
        queries["phone_fragment"].append(phone[start : start + 6].lstrip("+"))
        queries["full_name"].append(name)
        if len(word) >= 5 and word.isascii():
            i = rng.randrange(1, len(word) - 1)
            queries["typo"].append(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
    return queries


def measure(desk: Desk, queries: list[str]) -> dict[str, float]:
    for query in queries[:20]:  # warm the page cache and the statement cache
        patients.search(desk, query)
    timings: list[float] = []
    hits = 0
    for query in queries:
        started = time.perf_counter()
        found = patients.search(desk, query)
        timings.append((time.perf_counter() - started) * 1000)
        hits += len(found)
    timings.sort()
    return {
        "median_ms": round(statistics.median(timings), 3),
        "p95_ms": round(timings[max(0, int(len(timings) * 0.95) - 1)], 3),
        "max_ms": round(timings[-1], 3),
        "mean_hits": round(hits / len(queries), 1),
        "queries": len(queries),
    }


def desk_for(engine: Engine) -> Desk:
    return Desk(
        engine=engine,
        clinic_id=CLINIC,
        desk_code="Z",
        device_id="bench",
        audit_key=b"bench" * 8,
        clock=HybridLogicalClock("bench"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"benchmark": "patient_search", "limit": 20, "sizes": {}}
    for size in args.sizes:
        entry: dict[str, Any] = {}
        results: dict[str, dict[str, dict[str, float]]] = {}
        for encrypted in (True, False):
            kind = "encrypted" if encrypted else "plain"
            print(f"[{size} {kind}] preparing store", file=sys.stderr, flush=True)
            engine, meta = open_or_build(size, encrypted)
            queries = sample_queries(engine, args.queries)
            desk = desk_for(engine)
            print(f"[{size} {kind}] measuring", file=sys.stderr, flush=True)
            results[kind] = {name: measure(desk, qs) for name, qs in queries.items() if qs}
            entry[f"{kind}_file_mb"] = meta["file_mb"]
            entry[f"{kind}_build_seconds"] = meta.get("build_seconds")
            engine.dispose()
        entry["encrypted"] = results["encrypted"]
        entry["plain"] = results["plain"]
        entry["ratio_encrypted_over_plain"] = {
            name: {
                "median": round(
                    results["encrypted"][name]["median_ms"]
                    / max(results["plain"][name]["median_ms"], 1e-6),
                    2,
                ),
                "p95": round(
                    results["encrypted"][name]["p95_ms"]
                    / max(results["plain"][name]["p95_ms"], 1e-6),
                    2,
                ),
            }
            for name in results["encrypted"]
        }
        entry["p95_target_ms"] = 15
        entry["p95_target_met_for_required_queries"] = all(
            results["encrypted"][name]["p95_ms"] < 15
            for name in ("prefix_1", "prefix_3", "prefix_6", "phone_fragment")
        )
        report["sizes"][str(size)] = entry
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
