"""First sync and 410: paged snapshot that resumes, and a kept outbox that is replayed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from clinic_desktop.models import OutboxEntry
from clinic_desktop.services import patients
from clinic_desktop.store.open import desk_for, open_store
from clinic_desktop.sync import state
from clinic_desktop.sync.enrolment import enrol, load_credential
from clinic_desktop.sync.errors import CursorGone
from clinic_desktop.sync.pull import forget_cursor, needs_snapshot, pull_all, run_snapshot
from clinic_desktop.sync.push import pending_count, push_pending
from clinic_desktop.sync.transport import Transport
from tests.sync.conftest import PASSWORD, DeskHandle, SharedClinic, snapshot_rows


def _prune_change_log(shared: SharedClinic) -> None:
    """What the server's retention job does after 90 days, done now (retention 0)."""
    from clinic_server.db import open_database
    from clinic_server.retention import prune
    from clinic_server.settings import Settings

    db = open_database(Settings(data_dir=shared.server.data_dir))
    try:
        prune(db, timedelta(0))
    finally:
        db.dispose()


def test_an_interrupted_first_download_resumes_where_it_stopped(
    shared: SharedClinic,
) -> None:
    store = open_store(shared.clinic.root / "desk-resume")
    try:
        enrol(
            store,
            shared.server.url,
            shared.server.enrolment_code(),
            "ZZ",
            "Late desk",
            allow_insecure=True,
        )
        desk = desk_for(store)
        assert desk is not None
        transport = Transport(
            shared.server.url, allow_insecure=True, credential=load_credential(store.data_dir)
        )
        transport.login(shared.staff.receptionist, PASSWORD)
        progress: list[tuple[int, int]] = []
        pages = iter(range(1000))

        # Stop after three pages, as if the desk were switched off.
        run_snapshot(desk, transport, page_size=5, should_stop=lambda: next(pages) >= 3)
        with desk.reading() as session:
            saved = state.get_many(session, *state.SNAPSHOT_KEYS)
        done_before = int(saved[state.SNAPSHOT_DONE])
        assert 0 < done_before < int(saved[state.SNAPSHOT_TOTAL])
        assert needs_snapshot(desk)

        run_snapshot(desk, transport, page_size=5, progress=lambda d, t: progress.append((d, t)))
        assert not needs_snapshot(desk)
        assert progress[0][0] == done_before  # resumed, not restarted
        assert progress[-1][0] == progress[-1][1]
        pull_all(desk, transport)
        reference = shared.admin_desk
        reference.sync()
        for entity in ("user_account", "price_item", "medicine", "workstation"):
            assert set(snapshot_rows(desk, entity)) == set(snapshot_rows(reference, entity))
        transport.close()
    finally:
        store.close()


def test_after_410_the_desk_takes_a_snapshot_and_keeps_its_outbox(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    rita = shared.staff.receptionist
    away, other = shared.new_desk("Away", rita), shared.new_desk("Stayed", rita)
    desks.extend([away, other])
    patient = patients.register(
        other.desk, other.actors[rita], patients.PatientDraft(full_name="Ines Duarte", sex="female")
    )
    other.sync()
    away.sync()

    # The away desk edits offline; meanwhile the other desk's changes age out of the log.
    patients.edit(away.desk, away.actors[rita], patient.id, {"address": "Typed while away"})
    new_one = patients.register(
        away.desk, away.actors[rita], patients.PatientDraft(full_name="Jon Berg", sex="male")
    )
    patients.edit(other.desk, other.actors[rita], patient.id, {"phone": "0755555555"})
    other.sync()
    _prune_change_log(shared)
    waiting = pending_count(away.desk)
    assert waiting > 0

    with pytest.raises(CursorGone):
        pull_all(away.desk, away.transport)
    forget_cursor(away.desk)
    run_snapshot(away.desk, away.transport)
    # The snapshot brought the other desk's phone number but left the pending edit alone.
    row = snapshot_rows(away, "patient")[patient.id]
    assert row["phone"] == "0755555555"
    assert row["address"] == "Typed while away"
    assert pending_count(away.desk) == waiting

    push_pending(away.desk, away.transport)
    pull_all(away.desk, away.transport)
    other.sync()
    assert snapshot_rows(other, "patient")[patient.id]["address"] == "Typed while away"
    assert new_one.id in snapshot_rows(other, "patient")
    with away.desk.reading() as session:
        states = set(session.scalars(select(OutboxEntry.state)).all())
    assert states == {"done"}
    # Every desk whose cursor fell behind recovers the same way on its next cycle.
    shared.admin_desk.sync()
    assert snapshot_rows(shared.admin_desk, "patient")[new_one.id]["full_name"] == "Jon Berg"
