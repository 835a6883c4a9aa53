"""One visit from token to receipt on the store as the application opens it (keyring key,
migrations, first-run setup), through the real services of every role: the consultation,
prescription and billing services work on the migrated schema, not only on ``create_all``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from clinic_desktop.models import OutboxEntry
from clinic_desktop.services import (
    billing,
    catalogues,
    consultation,
    patients,
    prescriptions,
    queue,
    users,
)
from clinic_desktop.services.audit import verify_chain
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import PermissionDenied

PASSWORD = "Long-enough-password-42"


def make_user(desk: Desk, admin: Actor, username: str, name: str, roles: list[str]) -> Actor:
    user = users.create_user(
        desk,
        admin,
        username=username,
        full_name=name,
        roles=roles,
        password=PASSWORD,
        must_change_password=False,
    )
    return users.actor_for(user)


def test_a_visit_from_token_to_receipt(desk: Desk, admin: Actor) -> None:
    assert catalogues.seed_medicines(desk, admin) > 150
    doctor = make_user(desk, admin, "dr.rao", "Dr Lata Rao", ["doctor"])
    reception = make_user(desk, admin, "front", "Fatima Front", ["receptionist"])
    cashier = make_user(desk, admin, "till", "Tom Till", ["billing"])
    billing.create_price_item(
        desk,
        admin,
        code="CONS-RAO",
        name="Consultation",
        amount_minor=80000,
        kind="consultation",
        doctor_id=doctor.user_id,
    )
    billing.create_price_item(desk, admin, code="NEB", name="Nebulisation", amount_minor=25050)

    patient = patients.register(
        desk,
        reception,
        patients.PatientDraft(
            full_name="Kwame Mensah", sex="male", age_years="42", allergies="Penicillin"
        ),
    )
    visit = queue.issue_token(desk, reception, patient.id, doctor.user_id, complaint="Wheeze")
    queue.call(desk, doctor, visit.id)
    queue.start(desk, doctor, visit.id)

    consultation.record_consultation(
        desk,
        doctor,
        visit.id,
        complaint="Wheeze and cough for two days",
        bp_systolic="132",
        bp_diastolic="86",
        pulse="96",
        temperature_c="37.9",
        spo2="94",
        diagnosis_codes=["J45.9"],
        advice="Avoid smoke",
        follow_up_date=desk.now.utcnow().date() + timedelta(days=14),
    )
    rx = prescriptions.create_draft(desk, doctor, visit.id)
    inhaler = next(
        m for m in catalogues.search_medicines(desk, "salbutamol") if "inhaler" in m.form
    )
    prescriptions.add_item(
        desk, doctor, rx.id, medicine_id=inhaler.id, dose="2 puffs", frequency="SOS"
    )
    warning = prescriptions.add_item(
        desk,
        doctor,
        rx.id,
        medicine_id=catalogues.search_medicines(desk, "co-amoxiclav 625")[0].id,
        dose="1 tablet",
        frequency="BD",
        duration="5 days",
    ).warnings
    assert [w.matched_on for w in warning] == ["drug class"]
    with pytest.raises(prescriptions.AllergyAcknowledgementRequired):
        prescriptions.sign(desk, doctor, rx.id)
    prescriptions.sign(desk, doctor, rx.id, acknowledge_allergy=True)
    document = prescriptions.prescription_document(desk, rx.id, actor=doctor)
    assert [i.medicine_name for i in document.items] == ["Salbutamol", "Co-amoxiclav"]
    assert document.clinic_name == "Test Clinic"
    consultation.finish_consultation(desk, doctor, visit.id)

    awaiting = billing.bills_awaiting(desk, cashier)
    assert [a.visit_id for a in awaiting] == [visit.id]
    bill = billing.create_bill_for_visit(desk, cashier, visit.id)
    neb = next(p for p in billing.list_price_items(desk) if p.code == "NEB")
    billing.add_price_line(desk, cashier, bill.id, neb.id)
    billing.set_discount(desk, cashier, bill.id, percent_bp=1000)
    issued = billing.issue_bill(desk, cashier, bill.id)
    assert issued.invoice_number == "INV-A-000001"
    assert issued.total_minor == 105050 - 10505
    paid = billing.record_cash_payment(desk, cashier, bill.id, 100000)
    assert (paid.change_minor, paid.bill.status) == (100000 - 94545, "paid")
    with pytest.raises(PermissionDenied):
        billing.refund_payment(desk, doctor, paid.payment.id, 100, "No")
    receipt = billing.receipt_document(desk, bill.id, actor=cashier)
    assert (receipt.title, receipt.patient_name, receipt.total_minor) == (
        "Receipt",
        "Kwame Mensah",
        94545,
    )

    history = consultation.history(desk, doctor, patient.id)
    assert [h.visit_id for h in history] == [visit.id]
    assert [d.code for d in history[0].diagnoses] == ["J45.9"]

    day = billing.day_end_summary(desk, cashier, receipt.issued_at.date())  # type: ignore[union-attr]
    assert day.net_minor == 94545

    with desk.reading() as session:
        assert verify_chain(session, desk).ok
        assert session.scalar(select(func.count()).select_from(OutboxEntry)) > 20
