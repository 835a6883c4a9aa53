"""Offline for a while: the desks keep working and everything converges afterwards."""

from __future__ import annotations

import sqlite3

import pytest

from clinic_desktop.models import OutboxEntry
from clinic_desktop.services import billing, consultation, patients, queue
from clinic_desktop.sync.errors import Offline
from clinic_desktop.sync.push import pending_count
from clinic_desktop.sync.worker import IDLE, OFFLINE, SyncStatus
from tests.sync.conftest import DeskHandle, SharedClinic, snapshot_rows, wait_until

CONVERGING = ("patient", "visit", "bill", "bill_item", "payment", "audit_event")


def _server_db(shared: SharedClinic) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{shared.server.data_dir / 'clinic-server.db'}?mode=ro", uri=True)


def _done_mutations(handle: DeskHandle) -> set[str]:
    from sqlalchemy import select

    with handle.desk.reading() as session:
        return set(
            session.scalars(select(OutboxEntry.mutation_id).where(OutboxEntry.state == "done"))
        )


def _issued_bill(
    shared: SharedClinic, reception: DeskHandle, doctor: DeskHandle, cashier: DeskHandle
) -> str:
    """A finished, billed (unpaid) visit, made while everyone is online."""
    staff = shared.staff
    patient = patients.register(
        reception.desk,
        reception.actors[staff.receptionist],
        patients.PatientDraft(full_name="Online Olu", sex="male", age_years=50),
    )
    visit = queue.issue_token(
        reception.desk,
        reception.actors[staff.receptionist],
        patient.id,
        staff.ids[staff.doctor],
        complaint="back pain",
    )
    reception.sync()
    doctor.sync()
    doris = doctor.actors[staff.doctor]
    queue.call(doctor.desk, doris, visit.id)
    queue.start(doctor.desk, doris, visit.id)
    consultation.finish_consultation(doctor.desk, doris, visit.id)
    doctor.sync()
    cashier.sync()
    bill = billing.create_bill_for_visit(cashier.desk, cashier.actors[staff.billing], visit.id)
    billing.issue_bill(cashier.desk, cashier.actors[staff.billing], bill.id)
    cashier.sync()
    return bill.id


def test_desks_work_offline_and_converge_without_duplicates(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    reception, doctor, cashier = shared.three_desks()
    desks.extend([reception, doctor, cashier])
    staff = shared.staff
    bill_id = _issued_bill(shared, reception, doctor, cashier)

    shared.server.stop()
    rita = reception.actors[staff.receptionist]
    offline_patients = []
    for name in ("Asha Patel", "Bruno Costa", "Chen Wei", "Dara Okafor"):
        patient = patients.register(
            reception.desk, rita, patients.PatientDraft(full_name=name, sex="unknown")
        )
        queue.issue_token(reception.desk, rita, patient.id, staff.ids[staff.doctor])
        offline_patients.append(patient.id)
    paid = billing.record_cash_payment(
        cashier.desk, cashier.actors[staff.billing], bill_id, tendered_minor=10000
    )
    assert paid.bill.status == "paid"  # the receipt can be printed offline
    with pytest.raises(Offline):
        reception.sync()
    assert pending_count(reception.desk) > 0
    assert pending_count(cashier.desk) > 0

    shared.server.start()
    for _ in range(2):
        for handle in (reception, cashier, doctor):
            handle.sync()

    assert pending_count(reception.desk) == 0
    assert pending_count(cashier.desk) == 0
    for entity in CONVERGING:
        reference = snapshot_rows(reception, entity)
        assert snapshot_rows(doctor, entity) == reference, entity
        assert snapshot_rows(cashier, entity) == reference, entity
    seen = snapshot_rows(doctor, "patient")
    assert set(offline_patients) <= set(seen)
    numbers = [row["patient_number"] for row in seen.values()]
    assert len(numbers) == len(set(numbers)), "a patient number was issued twice"
    tokens = [(r["day"], r["token_label"]) for r in snapshot_rows(doctor, "visit").values()]
    assert len(tokens) == len(set(tokens)), "a token label was issued twice"
    assert snapshot_rows(doctor, "bill")[bill_id]["status"] == "paid"

    # Every mutation the desks sent was applied exactly once on the server.
    sent = _done_mutations(reception) | _done_mutations(cashier)
    with _server_db(shared) as db:
        rows = db.execute(
            "SELECT mutation_id, count(*) FROM srv_change_log "
            f"WHERE mutation_id IN ({','.join('?' * len(sent))}) GROUP BY mutation_id",
            sorted(sent),
        ).fetchall()
        applied = {r[0] for r in db.execute("SELECT mutation_id FROM srv_applied_mutation")}
    assert sent <= applied
    assert all(count == 1 for _, count in rows)


def test_worker_reports_offline_then_catches_up(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    reception = shared.new_desk("Reception", shared.staff.receptionist)
    other = shared.new_desk("Reception 2", shared.staff.receptionist)
    desks.extend([reception, other])
    statuses: list[SyncStatus] = []
    worker = reception.start_worker(long_poll=1)
    worker.events.on_status(statuses.append)
    assert worker.wait_idle(10)

    shared.server.stop()
    rita = reception.actors[shared.staff.receptionist]
    patient = patients.register(
        reception.desk, rita, patients.PatientDraft(full_name="Eve Offline", sex="female")
    )
    assert wait_until(lambda: worker.status.phase == OFFLINE and worker.status.pending > 0, 10)
    assert not worker.status.online

    shared.server.start()
    assert wait_until(lambda: worker.status.phase == IDLE and worker.status.pending == 0, 15)
    assert worker.status.last_success is not None
    other.sync()
    assert patient.id in snapshot_rows(other, "patient")
    assert any(s.phase == OFFLINE for s in statuses)
