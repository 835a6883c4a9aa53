"""Pull: ordered, complete, long-polled; retention (410); snapshots; late commits never skipped."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clinic_server import retention
from clinic_server.sync.apply import MutationIn, PushContext, push
from clinic_server.sync.rules import Actor
from tests.server.conftest import World, mutation, patient_fields


def _patient(world: World, number: str) -> dict[str, Any]:
    row_id = str(uuid.uuid4())
    return mutation("patient", row_id, patient_fields(world.clinic_id, row_id, number))


def test_pull_is_ordered_and_a_row_changed_twice_comes_once_at_its_latest(world: World) -> None:
    admin = world.admin_on["A"]
    _, start = admin.pull_all()
    a, b = _patient(world, "P-A-000001"), _patient(world, "P-A-000002")
    first = admin.push(a, b)
    upd = admin.push_one(
        mutation(
            "patient",
            a["row_id"],
            {"phone": "+1999"},
            op="update",
            base_version=first[0]["version"],
        )
    )
    changes, cursor = admin.pull_all(start)
    seqs = [c["seq"] for c in changes]
    assert seqs == sorted(seqs)
    assert [c["row"]["id"] for c in changes] == [b["row_id"], a["row_id"]]
    assert changes[-1]["row"]["phone"] == "+1999"
    assert changes[-1]["seq"] == changes[-1]["row"]["version"] == upd["version"]
    assert cursor == upd["version"]


def test_pull_pages_with_more(world: World) -> None:
    admin = world.admin_on["A"]
    _, start = admin.pull_all()
    admin.push(*[_patient(world, f"P-A-{n:06d}") for n in range(1, 8)])
    response = admin.pull(start, limit=3)
    body = response.json()
    assert len(body["changes"]) == 3
    assert body["more"] is True
    rest, _ = admin.pull_all(body["cursor"])
    assert len(rest) == 4


def test_long_poll_wakes_within_a_second_of_a_commit(world: World) -> None:
    world.enrol("B")
    reader, writer = world.admin_on["A"], world.admin_on["B"]
    _, cursor = reader.pull_all()
    got: dict[str, Any] = {}

    def wait_for_change() -> None:
        response = reader.pull(cursor, wait=10)
        got["at"] = time.monotonic()
        got["body"] = response.json()

    thread = threading.Thread(target=wait_for_change)
    thread.start()
    time.sleep(0.5)  # the pull is now parked on the server
    assert thread.is_alive()
    writer.push_one(_patient(world, "P-B-000001"))
    pushed_at = time.monotonic()
    thread.join(timeout=10)
    assert got["body"]["changes"], got
    assert got["at"] - pushed_at < 1.0


def test_long_poll_with_nothing_new_returns_after_the_wait(world: World) -> None:
    admin = world.admin_on["A"]
    _, cursor = admin.pull_all()
    started = time.monotonic()
    body = admin.pull(cursor, wait=1).json()
    assert body == {"changes": [], "cursor": cursor, "more": False}
    assert 0.9 <= time.monotonic() - started < 5


def test_a_cursor_older_than_retention_gets_410_and_a_cursor_from_the_future_409(
    world: World,
) -> None:
    admin = world.admin_on["A"]
    admin.push(_patient(world, "P-A-000001"))
    _, cursor = admin.pull_all()
    assert admin.pull(cursor + 100).status_code == 409
    retention.prune(world.server.db, timedelta(days=90), now=datetime.now(UTC) + timedelta(days=91))
    gone = admin.pull(0)
    assert gone.status_code == 410
    assert "fresh download" in gone.json()["detail"]
    assert admin.pull(cursor).status_code == 200  # an up-to-date desk carries on
    # After a fresh snapshot the desk pulls on from the snapshot's cursor.
    start = world.http.get("/api/v1/sync/snapshot/start", headers=admin.headers()).json()
    assert admin.pull(start["cursor"]).status_code == 200


def test_snapshot_pages_by_id_and_resumes(world: World) -> None:
    admin = world.admin_on["A"]
    admin.push(*[_patient(world, f"P-A-{n:06d}") for n in range(1, 26)])
    start = world.http.get("/api/v1/sync/snapshot/start", headers=admin.headers()).json()
    assert start["counts"]["patient"] == 25
    assert start["entities"][0] == "clinic_settings"
    _, head = admin.pull_all()
    assert start["cursor"] == head
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"entity": "patient", "limit": 10}
        if after:
            params["after_id"] = after
        page = world.http.get(
            "/api/v1/sync/snapshot", params=params, headers=admin.headers()
        ).json()
        pages += 1
        seen += [r["id"] for r in page["rows"]]
        if page["last_id"] is None:
            break
        after = page["last_id"]
    assert pages == 3
    assert seen == sorted(seen)
    assert len(set(seen)) == 25


def test_parallel_pushes_never_let_a_following_pull_skip_a_change(world: World) -> None:
    """Writers commit out of order; a reader that only ever follows its cursor sees all."""
    for code in "BCD":
        world.enrol(code)
    writers = [world.admin_on[c] for c in "ABCD"]
    reader = world.admin_on["A"]
    _, cursor = reader.pull_all()
    pushed: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def write(n: int) -> None:
        for batch in range(8):
            ms = [_patient(world, f"P-{'ABCD'[n]}-{batch:03d}{k:03d}") for k in range(5)]
            results = writers[n].push(*ms)
            assert all(r["status"] == "accepted" for r in results), results
            with lock:
                pushed.update(m["row_id"] for m in ms)

    seen: set[str] = set()

    def read() -> None:
        nonlocal cursor
        while not stop.is_set():
            body = reader.pull(cursor, wait=0.5).json()
            seen.update(c["row"]["id"] for c in body["changes"] if c["entity"] == "patient")
            cursor = body["cursor"]

    reading = threading.Thread(target=read)
    reading.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(1.0)
    stop.set()
    reading.join()
    rest, _ = reader.pull_all(cursor)
    seen.update(c["row"]["id"] for c in rest if c["entity"] == "patient")
    assert len(pushed) == 160
    assert pushed <= seen


def test_a_transaction_held_open_is_delivered_later_not_skipped(world: World) -> None:
    """PostgreSQL: one push holds its transaction open after taking its sequence number while
    other desks push in parallel; a pull during the hold must not move past the held change,
    and pulling on from its cursor delivers it once it commits."""
    if world.server.backend != "postgres":
        pytest.skip("concurrent writers are a PostgreSQL matter (SQLite has one writer)")
    world.enrol("B")
    reader, other = world.admin_on["A"], world.admin_on["B"]
    _, cursor = reader.pull_all()
    held = _patient(world, "P-A-000001")
    hold = threading.Event()
    release = threading.Event()

    def hold_open(_session: Any) -> None:
        hold.set()
        assert release.wait(20)

    ctx = PushContext(
        clinic_id=world.clinic_id,
        device_id=world.desks["A"][0],
        user=Actor(world.admin_id, frozenset({"admin"})),
        clock=world.server.state.clock,
    )
    answers: list[Any] = []
    holder = threading.Thread(
        target=lambda: answers.append(
            push(world.server.db, ctx, [MutationIn(**held)], before_commit=hold_open)
        )
    )
    holder.start()
    assert hold.wait(10)
    others = [_patient(world, f"P-B-00000{n}") for n in range(1, 4)]
    pushers = [threading.Thread(target=other.push, args=(m,)) for m in others]
    for t in pushers:
        t.start()
    time.sleep(0.5)
    during = reader.pull(cursor).json()
    assert held["row_id"] not in {c["row"]["id"] for c in during["changes"]}
    release.set()
    holder.join(10)
    for t in pushers:
        t.join(10)
    (results, _stats) = answers[0]
    assert results[0]["status"] == "accepted"
    after, _ = reader.pull_all(during["cursor"])
    delivered = {c["row"]["id"] for c in during["changes"] + after}
    assert held["row_id"] in delivered
    assert {m["row_id"] for m in others} <= delivered
