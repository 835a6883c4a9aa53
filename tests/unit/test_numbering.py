"""Human-facing numbers made offline: desk-coded, gap-free where promised, never reused."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from clinic_desktop.models import Bill, DeskCounter, Patient, User, Visit
from clinic_desktop.services import numbering
from clinic_desktop.services.context import Desk


def test_formats_carry_the_desk_code() -> None:
    assert numbering.token_label("B", 14) == "B-014"
    assert numbering.token_label("ER", 1234) == "ER-1234"
    assert numbering.patient_number("B", 123) == "P-B-000123"
    assert numbering.invoice_number("B", 231) == "INV-B-000231"
    assert numbering.DESK_CODE.match("ABC")
    assert not numbering.DESK_CODE.match("b")
    assert not numbering.DESK_CODE.match("ABCD")


def test_patient_numbers_count_per_desk(bare_desk: Desk) -> None:
    with bare_desk.transaction(None) as session:
        assert numbering.next_patient_number(session, "B") == "P-B-000001"
        assert numbering.next_patient_number(session, "B") == "P-B-000002"
        assert numbering.next_patient_number(session, "C") == "P-C-000001"
    with bare_desk.transaction(None) as session:
        assert numbering.next_patient_number(session, "B") == "P-B-000003"


def test_a_rolled_back_transaction_does_not_burn_a_number(bare_desk: Desk) -> None:
    with bare_desk.transaction(None) as session:
        assert numbering.next_invoice_number(session, "B") == "INV-B-000001"

    class Abort(Exception):
        pass

    def abandoned_bill() -> None:
        with bare_desk.transaction(None) as session:
            assert numbering.next_invoice_number(session, "B") == "INV-B-000002"
            raise Abort

    with pytest.raises(Abort):
        abandoned_bill()
    with bare_desk.transaction(None) as session:
        assert numbering.next_invoice_number(session, "B") == "INV-B-000002"


def test_after_a_reinstall_the_series_continues_above_synced_numbers(bare_desk: Desk) -> None:
    """The counter table is desk-only; rows that came back by sync set where it resumes."""
    with bare_desk.transaction(None) as session:
        for number in ("P-B-000007", "P-B-000041", "P-C-000900", "P-B-legacy"):
            session.add(
                Patient(clinic_id=bare_desk.clinic_id, patient_number=number, full_name="x")
            )
        session.add(
            Bill(
                clinic_id=bare_desk.clinic_id,
                patient_id=session.scalars(select(Patient.id)).first(),
                desk_code="B",
                invoice_number="INV-B-000230",
                currency="USD",
            )
        )
    with bare_desk.transaction(None) as session:
        assert session.get(DeskCounter, "patient:B") is None
        assert numbering.next_patient_number(session, "B") == "P-B-000042"
        assert numbering.next_invoice_number(session, "B") == "INV-B-000231"


def test_token_numbers_restart_each_day_and_count_per_desk(bare_desk: Desk) -> None:
    day = date(2026, 3, 2)
    with bare_desk.transaction(None) as session:
        patient = Patient(clinic_id=bare_desk.clinic_id, patient_number="P-B-1", full_name="x")
        doctor = User(
            clinic_id=bare_desk.clinic_id,
            username="doc",
            full_name="Doc",
            roles=["doctor"],
            password_hash="-",
        )
        session.add_all([patient, doctor])
        assert numbering.next_token_seq(session, "B", day) == 1
        for desk_code, seq in (("B", 1), ("B", 2), ("C", 1)):
            session.add(
                Visit(
                    clinic_id=bare_desk.clinic_id,
                    patient_id=patient.id,
                    doctor_id=doctor.id,
                    day=day,
                    desk_code=desk_code,
                    token_seq=seq,
                    token_label=numbering.token_label(desk_code, seq),
                    arrived_at=datetime(2026, 3, 2, 9, tzinfo=UTC),
                )
            )
        session.flush()
        assert numbering.next_token_seq(session, "B", day) == 3
        assert numbering.next_token_seq(session, "C", day) == 2
        assert numbering.next_token_seq(session, "B", date(2026, 3, 3)) == 1
