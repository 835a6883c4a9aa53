"""The apply rule on a real encrypted store, without a server.

Versions only move forward; a pulled row never overwrites a field the person changed here
and has not yet pushed; the desk clock moves past what it has seen; an answered push lifts
that protection again.
"""

from __future__ import annotations

from typing import Any

from clinic_desktop.models import OutboxEntry, Patient, SyncProblem
from clinic_desktop.models.serialize import row_fields
from clinic_desktop.services import patients
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.sync.apply import apply_rows
from clinic_desktop.sync.push import PushReport, record_results
from clinic_desktop.sync.state import sync_session


def _register(desk: Desk, admin: Actor) -> Patient:
    return patients.register(
        desk, admin, patients.PatientDraft(full_name="Nia Long", sex="female", phone="0712345678")
    )


def _server_copy(desk: Desk, patient_id: str, **changes: Any) -> dict[str, Any]:
    with desk.reading() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        row = row_fields(patient)
    row.update(changes)
    return row


def _apply(desk: Desk, rows: list[dict[str, Any]]) -> list[str]:
    with sync_session(desk) as session:
        return apply_rows(session, "patient", rows, desk.clock)


def _patient(desk: Desk, patient_id: str) -> Patient:
    with desk.reading() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        session.expunge(patient)
        return patient


def _answer_all_pending(desk: Desk, version: int) -> None:
    with desk.reading() as session:
        entries = list(session.query(OutboxEntry).filter(OutboxEntry.state == "pending"))
        session.expunge_all()
    results = [
        {
            "mutation_id": e.mutation_id,
            "status": "accepted",
            "version": version,
            "reason": None,
            "row": None,
        }
        for e in entries
    ]
    with sync_session(desk) as session:
        record_results(session, desk, entries, results, PushReport())  # type: ignore[arg-type]


def test_a_pulled_row_does_not_overwrite_a_field_still_waiting_to_be_pushed(
    desk: Desk, admin: Actor
) -> None:
    patient = _register(desk, admin)
    _answer_all_pending(desk, version=5)
    patients.edit(desk, admin, patient.id, {"phone": "0799999999"})  # typed here, not pushed

    _apply(desk, [_server_copy(desk, patient.id, version=9, phone="0700000000", address="Elm 1")])

    seen = _patient(desk, patient.id)
    assert seen.phone == "0799999999"  # as the person typed it
    assert seen.address == "Elm 1"  # other fields follow the server
    assert seen.version == 9


def test_versions_only_move_forward(desk: Desk, admin: Actor) -> None:
    patient = _register(desk, admin)
    _answer_all_pending(desk, version=7)

    assert _apply(desk, [_server_copy(desk, patient.id, version=6, address="old")]) == []
    assert _apply(desk, [_server_copy(desk, patient.id, version=7, address="same")]) == []
    assert _patient(desk, patient.id).address == ""
    assert _apply(desk, [_server_copy(desk, patient.id, version=8, address="new")]) == [patient.id]
    assert _patient(desk, patient.id).address == "new"


def test_once_the_push_is_answered_pulled_values_apply_again(desk: Desk, admin: Actor) -> None:
    patient = _register(desk, admin)
    _answer_all_pending(desk, version=3)
    patients.edit(desk, admin, patient.id, {"phone": "0799999999"})
    _answer_all_pending(desk, version=4)

    _apply(desk, [_server_copy(desk, patient.id, version=5, phone="0755555555")])

    assert _patient(desk, patient.id).phone == "0755555555"


def test_the_desk_clock_moves_past_pulled_clocks(desk: Desk, admin: Actor) -> None:
    patient = _register(desk, admin)
    _answer_all_pending(desk, version=3)
    future = "009999999999999-000007-other-desk"
    _apply(desk, [_server_copy(desk, patient.id, version=4, updated_at=future)])
    assert desk.clock.now() > future


def test_a_new_row_from_the_server_is_inserted_and_a_clashing_one_is_reported(
    desk: Desk, admin: Actor
) -> None:
    patient = _register(desk, admin)
    _answer_all_pending(desk, version=3)
    fresh = _server_copy(desk, patient.id, version=10)
    fresh["id"] = "00000000-0000-4000-8000-000000000001"
    fresh["patient_number"] = "P-Z-000001"
    clash = dict(fresh, id="00000000-0000-4000-8000-000000000002")  # same patient number

    changed = _apply(desk, [fresh, clash])

    assert fresh["id"] in changed
    assert _patient(desk, fresh["id"]).patient_number == "P-Z-000001"
    with desk.reading() as session:
        problems = session.query(SyncProblem).filter(SyncProblem.row_id == clash["id"]).all()
    assert len(problems) == 1


def test_retries_back_off_exponentially_with_jitter(desk: Desk) -> None:
    from clinic_desktop.sync.transport import Transport
    from clinic_desktop.sync.worker import SyncWorker

    worker = SyncWorker(
        desk, Transport("https://clinic.invalid"), min_backoff=0.5, max_backoff=30.0
    )
    early = [worker._backoff(1) for _ in range(200)]
    late = [worker._backoff(12) for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in early)
    assert all(0.5 <= d <= 30.0 for d in late)
    assert max(late) > 20  # grows towards the ceiling
    assert len({round(d, 3) for d in late}) > 50  # jittered, not in lock-step
