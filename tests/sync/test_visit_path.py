"""A patient's whole visit across three desks, through a real server over HTTP.

Reception registers and issues a token; the doctor's desk sees it, records the
consultation and finishes; billing bills the visit and takes cash; every desk ends with the
same rows. Runs against SQLite (shared server) and a fresh PostgreSQL database.
"""

from __future__ import annotations

import time

from clinic_desktop.models import Bill, Payment, Visit
from clinic_desktop.services import billing, consultation, patients, queue
from tests.sync.conftest import DeskHandle, SharedClinic, snapshot_rows, wait_until

ENTITIES = ("patient", "visit", "bill", "bill_item", "payment")


def _visit_path(
    clinic: SharedClinic, reception: DeskHandle, doctor: DeskHandle, cashier: DeskHandle
) -> None:
    staff = clinic.staff
    rita = reception.actors[staff.receptionist]
    doris = doctor.actors[staff.doctor]
    bill_user = cashier.actors[staff.billing]

    patient = patients.register(
        reception.desk,
        rita,
        patients.PatientDraft(
            full_name="Amina Yusuf", sex="female", age_years=34, phone="0711000111"
        ),
    )
    visit = queue.issue_token(
        reception.desk, rita, patient.id, staff.ids[staff.doctor], complaint="cough"
    )
    assert visit.token_label.startswith(reception.desk.desk_code + "-")
    assert reception.sync().rejected == 0

    doctor.sync()
    mine = queue.doctor_queue(doctor.desk, doris.user_id)
    assert visit.id in [entry.visit_id for entry in mine]

    queue.call(doctor.desk, doris, visit.id)
    queue.start(doctor.desk, doris, visit.id)
    consultation.record_consultation(
        doctor.desk, doris, visit.id, pulse=88, diagnosis_codes=["J06.9"], advice="fluids"
    )
    consultation.finish_consultation(doctor.desk, doris, visit.id)
    assert doctor.sync().rejected == 0

    cashier.sync()
    bill = billing.create_bill_for_visit(cashier.desk, bill_user, visit.id)
    issued = billing.issue_bill(cashier.desk, bill_user, bill.id)
    assert issued.invoice_number
    assert issued.invoice_number.startswith(f"INV-{cashier.desk.desk_code}-")
    paid = billing.record_cash_payment(cashier.desk, bill_user, bill.id, tendered_minor=5000)
    assert paid.bill.status == "paid"
    assert cashier.sync().rejected == 0

    for handle in (reception, doctor, cashier):
        handle.sync()
        with handle.desk.reading() as session:
            seen_visit = session.get(Visit, visit.id)
            seen_bill = session.get(Bill, bill.id)
            assert seen_visit is not None
            assert seen_visit.status == "completed"
            assert seen_visit.diagnosis_codes == ["J06.9"]
            assert seen_bill is not None
            assert seen_bill.status == "paid"
            assert session.get(Payment, paid.payment.id) is not None
    for entity in ENTITIES:
        reference = snapshot_rows(reception, entity)
        assert snapshot_rows(doctor, entity) == reference, entity
        assert snapshot_rows(cashier, entity) == reference, entity


def test_full_visit_path_across_three_desks_on_sqlite(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    desks.extend(shared.three_desks())
    _visit_path(shared, *desks)


def test_full_visit_path_across_three_desks_on_postgresql(pg_clinic: SharedClinic) -> None:
    _visit_path(pg_clinic, *pg_clinic.three_desks())


def test_a_save_on_one_desk_shows_on_another_within_a_second(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    reception, doctor = (
        shared.new_desk("Reception", shared.staff.receptionist),
        shared.new_desk("Doctor", shared.staff.doctor),
    )
    desks.extend([reception, doctor])
    reception.start_worker(long_poll=10)
    doctor.start_worker(long_poll=10)
    assert reception.worker
    assert reception.worker.wait_idle(10)
    assert doctor.worker
    assert doctor.worker.wait_idle(10)
    rita = reception.actors[shared.staff.receptionist]
    seen: list[dict[str, list[str]]] = []
    doctor.worker.events.on_rows_changed(seen.append)

    delays = []
    for name in ("Kofi Mensah", "Lena Vogel", "Ravi Iyer"):
        started = time.monotonic()
        patient = patients.register(
            reception.desk, rita, patients.PatientDraft(full_name=name, sex="unknown")
        )

        def arrived(pid: str = patient.id) -> bool:
            return pid in snapshot_rows(doctor, "patient")

        assert wait_until(arrived, 5.0), "the change never reached the other desk"
        delays.append(time.monotonic() - started)
    # Long polling, not periodic polling: well under the 10 s poll window each time.
    assert max(delays) < 1.5, delays
    assert any(patient.id in ids for change in seen for ids in [change.get("patient", [])])
