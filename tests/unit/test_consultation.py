"""Consultation: what the doctor records on a visit, who may record it and when, finishing
the visit, and the patient's history timeline."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from clinic_desktop.models import Patient, Prescription, PrescriptionItem, Visit
from clinic_desktop.services import consultation
from clinic_desktop.services.consultation import record_consultation
from clinic_desktop.services.context import Desk
from clinic_desktop.services.errors import (
    InvalidState,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from tests.unit.clinic_world import HOSTILE_TEXTS, World, build_world


@pytest.fixture
def world(bare_desk: Desk) -> World:
    return build_world(bare_desk)


# --- recording ----------------------------------------------------------------------------


def test_the_visit_doctor_records_the_whole_consultation(world: World) -> None:
    visit_id = world.add_visit()
    record = record_consultation(
        world.desk,
        world.doctor,
        visit_id,
        complaint="Sore throat for three days",
        bp_systolic="128",
        bp_diastolic=84,
        pulse="76",
        temperature_c="38.4",
        weight_kg="71.5",
        height_cm=168,
        spo2="97",
        examination="Tonsils enlarged, no exudate",
        diagnosis_codes=["j06.9", "R50.9"],
        advice="Fluids, rest",
        follow_up_date=world.today + timedelta(days=7),
    )
    stored = world.visit_row(visit_id)
    assert stored.complaint == "Sore throat for three days"
    assert (stored.bp_systolic, stored.bp_diastolic, stored.pulse) == (128, 84, 76)
    assert stored.temperature_dc == 384
    assert stored.weight_hg == 715
    assert (stored.height_cm, stored.spo2) == (168, 97)
    assert stored.diagnosis_codes == ["J06.9", "R50.9"]
    assert stored.follow_up_date == date(2026, 3, 11)
    assert record.temperature_c == Decimal("38.4")
    assert record.weight_kg == Decimal("71.5")
    assert [(d.code, d.title) for d in record.diagnoses] == [
        ("J06.9", "Acute upper respiratory infection, unspecified"),
        ("R50.9", "Fever, unspecified"),
    ]


def test_fields_left_out_keep_their_value_and_an_empty_vital_clears_it(world: World) -> None:
    visit_id = world.add_visit()
    record_consultation(world.desk, world.doctor, visit_id, complaint="Cough", pulse=80)
    record_consultation(world.desk, world.doctor, visit_id, advice="Steam inhalation")
    stored = world.visit_row(visit_id)
    assert (stored.complaint, stored.pulse, stored.advice) == ("Cough", 80, "Steam inhalation")
    record_consultation(world.desk, world.doctor, visit_id, pulse="")
    assert world.visit_row(visit_id).pulse is None


def test_each_change_is_audited_with_field_names_only(world: World) -> None:
    visit_id = world.add_visit()
    record_consultation(
        world.desk, world.doctor, visit_id, complaint="Chest pain at night", pulse=90
    )
    event = world.audit_events()[-1]
    assert (event.action, event.entity, event.entity_id) == (
        "visit.consultation",
        "visit",
        visit_id,
    )
    assert event.detail == "fields=complaint,pulse"
    assert "Chest" not in event.detail
    assert event.actor_id == world.doctor.user_id


def test_saving_unchanged_values_writes_nothing(world: World) -> None:
    visit_id = world.add_visit()
    record_consultation(world.desk, world.doctor, visit_id, complaint="Cough")
    before = world.outbox_count()
    record_consultation(world.desk, world.doctor, visit_id, complaint="Cough")
    assert world.outbox_count() == before


def test_the_write_reaches_the_outbox_in_the_same_transaction(world: World) -> None:
    visit_id = world.add_visit()
    before = world.outbox_count()
    record_consultation(world.desk, world.doctor, visit_id, complaint="Cough")
    assert world.outbox_count() == before + 2  # the visit update and its audit event


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_text_fields_are_stored_verbatim(world: World, text: str) -> None:
    visit_id = world.add_visit()
    record_consultation(
        world.desk, world.doctor, visit_id, complaint=text, examination=text, advice=text
    )
    stored = world.visit_row(visit_id)
    assert stored.complaint == stored.examination == stored.advice == text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bp_systolic", 300, "Systolic blood pressure must be between 50 and 260 mmHg."),
        ("bp_systolic", "-120", "Systolic blood pressure cannot be negative."),
        ("bp_diastolic", 20, "Diastolic blood pressure must be between 30 and 160 mmHg."),
        ("pulse", 0, "Pulse must be between 20 and 250 beats per minute."),
        ("pulse", 400, "Pulse must be between 20 and 250 beats per minute."),
        ("pulse", "seventy", "Pulse must be a whole number (beats per minute)."),
        ("pulse", "72.5", "Pulse must be a whole number (beats per minute)."),
        ("pulse", True, "Pulse must be a whole number (beats per minute)."),
        ("temperature_c", "98.6", "Temperature must be between 30.0 and 45.0 °C."),
        ("temperature_c", "29.9", "Temperature must be between 30.0 and 45.0 °C."),
        ("temperature_c", "37.25", "Temperature can have one decimal place at most."),
        ("temperature_c", "-37", "Temperature cannot be negative."),
        ("temperature_c", "hot", "Temperature must be a number (°C)."),
        ("temperature_c", "NaN", "Temperature must be a number (°C)."),
        ("weight_kg", "0.2", "Weight must be between 0.3 and 400.0 kg."),
        ("weight_kg", "700", "Weight must be between 0.3 and 400.0 kg."),
        ("weight_kg", "-5", "Weight cannot be negative."),
        ("height_cm", 300, "Height must be between 20 and 250 cm."),
        ("height_cm", 5, "Height must be between 20 and 250 cm."),
        ("spo2", 101, "SpO2 must be between 50 and 100 %."),
        ("spo2", 30, "SpO2 must be between 50 and 100 %."),
    ],
)
def test_implausible_vitals_are_refused_per_field_and_nothing_is_written(
    world: World, field: str, value: object, message: str
) -> None:
    visit_id = world.add_visit()
    before = world.outbox_count()
    with pytest.raises(ValidationError) as caught:
        record_consultation(world.desk, world.doctor, visit_id, **{field: value})  # type: ignore[arg-type]
    assert caught.value.fields == {field: message}
    assert world.outbox_count() == before


def test_vital_limits_themselves_are_accepted(world: World) -> None:
    visit_id = world.add_visit()
    record_consultation(
        world.desk,
        world.doctor,
        visit_id,
        bp_systolic=260,
        bp_diastolic=30,
        pulse=20,
        temperature_c="45.0",
        weight_kg="0.3",
        height_cm=250,
        spo2=100,
    )
    record_consultation(
        world.desk,
        world.doctor,
        visit_id,
        bp_systolic=50,
        bp_diastolic=49,
        pulse=250,
        temperature_c=30,
        weight_kg=400,
        height_cm=20,
        spo2=50,
    )
    stored = world.visit_row(visit_id)
    assert (stored.temperature_dc, stored.weight_hg) == (300, 4000)


def test_decimal_vitals_accept_a_comma_and_spin_box_floats(world: World) -> None:
    visit_id = world.add_visit()
    record_consultation(world.desk, world.doctor, visit_id, temperature_c="37,2", weight_kg=64.3)
    stored = world.visit_row(visit_id)
    assert (stored.temperature_dc, stored.weight_hg) == (372, 643)
    with pytest.raises(ValidationError, match="one decimal place"):
        record_consultation(world.desk, world.doctor, visit_id, weight_kg=64.35)


def test_systolic_must_exceed_diastolic(world: World) -> None:
    visit_id = world.add_visit()
    with pytest.raises(ValidationError) as caught:
        record_consultation(world.desk, world.doctor, visit_id, bp_systolic=80, bp_diastolic=80)
    assert caught.value.fields == {
        "bp_systolic": "Systolic pressure must be higher than diastolic pressure."
    }


def test_blood_pressure_needs_both_numbers_also_against_the_stored_one(world: World) -> None:
    visit_id = world.add_visit()
    with pytest.raises(ValidationError, match="both the systolic and the diastolic"):
        record_consultation(world.desk, world.doctor, visit_id, bp_systolic=120)
    record_consultation(world.desk, world.doctor, visit_id, bp_systolic=120, bp_diastolic=80)
    with pytest.raises(ValidationError, match="higher than diastolic"):
        record_consultation(world.desk, world.doctor, visit_id, bp_diastolic=125)


def test_every_bad_field_is_reported_together_and_nothing_is_written(world: World) -> None:
    visit_id = world.add_visit()
    before = world.outbox_count()
    with pytest.raises(ValidationError) as caught:
        record_consultation(
            world.desk,
            world.doctor,
            visit_id,
            complaint="valid",
            pulse=999,
            spo2=12,
            diagnosis_codes=["Q99.99"],
            follow_up_date="2026-02-30",
        )
    assert set(caught.value.fields) == {"pulse", "spo2", "diagnosis_codes", "follow_up_date"}
    assert world.outbox_count() == before
    assert world.visit_row(visit_id).complaint == ""


def test_diagnoses_must_be_codes_from_the_shipped_list(world: World) -> None:
    visit_id = world.add_visit()
    with pytest.raises(ValidationError) as caught:
        record_consultation(
            world.desk, world.doctor, visit_id, diagnosis_codes=["J06.9", "viral fever"]
        )
    assert "'viral fever'" in caught.value.fields["diagnosis_codes"]
    with pytest.raises(ValidationError, match="list of ICD-10 codes"):
        record_consultation(world.desk, world.doctor, visit_id, diagnosis_codes="J06.9")  # type: ignore[arg-type]


def test_duplicate_diagnoses_collapse_and_order_is_kept(world: World) -> None:
    visit_id = world.add_visit()
    record = record_consultation(
        world.desk, world.doctor, visit_id, diagnosis_codes=["I10", "e11.9", "I10", "E119"]
    )
    assert [d.code for d in record.diagnoses] == ["I10", "E11.9"]


def test_too_many_diagnoses_are_refused(world: World) -> None:
    visit_id = world.add_visit()
    codes = [c.code for c in consultation.icd10().search("unspecified", limit=13)]
    with pytest.raises(ValidationError, match="At most 12 diagnoses"):
        record_consultation(world.desk, world.doctor, visit_id, diagnosis_codes=codes)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-03-03", "cannot be in the past"),
        ("2026-02-30", "not a valid date"),
        ("next week", "not a valid date"),
        ("2029-01-01", "more than two years ahead"),
    ],
)
def test_impossible_follow_up_dates_are_refused(world: World, value: str, message: str) -> None:
    visit_id = world.add_visit()
    with pytest.raises(ValidationError, match=message):
        record_consultation(world.desk, world.doctor, visit_id, follow_up_date=value)


def test_follow_up_today_is_allowed_and_today_is_the_clinics_day(world: World) -> None:
    visit_id = world.add_visit()
    # 20:00 UTC on 4 March is already 5 March in Kolkata: 4 March is now in the past.
    world.clock.moment = world.clock.moment.replace(hour=20)
    with pytest.raises(ValidationError, match="past"):
        record_consultation(world.desk, world.doctor, visit_id, follow_up_date=date(2026, 3, 4))
    record_consultation(world.desk, world.doctor, visit_id, follow_up_date="2026-03-05")


def test_a_nul_character_is_refused_rather_than_stored(world: World) -> None:
    visit_id = world.add_visit()
    with pytest.raises(ValidationError, match="cannot be stored"):
        record_consultation(world.desk, world.doctor, visit_id, advice="rest\x00")


def test_overlong_text_is_refused(world: World) -> None:
    visit_id = world.add_visit()
    with pytest.raises(ValidationError, match="at most 2000 characters"):
        record_consultation(world.desk, world.doctor, visit_id, complaint="x" * 2001)


# --- who and when -------------------------------------------------------------------------


def test_another_doctor_cannot_record_on_this_visit(world: World) -> None:
    visit_id = world.add_visit()
    with pytest.raises(PermissionDenied, match="visit's own doctor"):
        record_consultation(world.desk, world.other_doctor, visit_id, complaint="x")


@pytest.mark.parametrize("who", ["receptionist", "cashier"])
def test_front_desk_and_billing_cannot_record_a_consultation(world: World, who: str) -> None:
    visit_id = world.add_visit()
    with pytest.raises(PermissionDenied, match="doctor or admin"):
        record_consultation(world.desk, getattr(world, who), visit_id, complaint="x")


def test_an_admin_may_correct_a_record(world: World) -> None:
    visit_id = world.add_visit()
    record_consultation(world.desk, world.admin, visit_id, complaint="typo fixed")
    assert world.visit_row(visit_id).complaint == "typo fixed"


def test_a_disabled_doctor_is_refused_even_with_a_session_open(world: World) -> None:
    visit_id = world.add_visit()
    world.disable(world.doctor)
    before = world.outbox_count()
    with pytest.raises(PermissionDenied, match="disabled"):
        record_consultation(world.desk, world.doctor, visit_id, complaint="x")
    assert world.outbox_count() == before


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("waiting", "Start the consultation"),
        ("called", "Start the consultation"),
        ("cancelled", "cancelled or marked as no-show"),
        ("no_show", "cancelled or marked as no-show"),
    ],
)
def test_recording_needs_a_visit_in_consultation(world: World, status: str, message: str) -> None:
    visit_id = world.add_visit(status=status)
    with pytest.raises(InvalidState, match=message):
        record_consultation(world.desk, world.doctor, visit_id, complaint="x")


def test_a_completed_visit_can_be_corrected_the_same_clinic_day_only(world: World) -> None:
    visit_id = world.add_visit(status="completed")
    record_consultation(world.desk, world.doctor, visit_id, advice="Added after the visit")
    world.clock.advance(hours=20)  # past midnight in Kolkata
    with pytest.raises(InvalidState, match="earlier day"):
        record_consultation(world.desk, world.doctor, visit_id, advice="too late")
    assert world.visit_row(visit_id).advice == "Added after the visit"


def test_an_unknown_visit_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        record_consultation(world.desk, world.doctor, "no-such-visit", complaint="x")


def test_opening_a_consultation_is_an_audited_record_opening(world: World) -> None:
    visit_id = world.add_visit()
    record = consultation.get_consultation(world.desk, world.doctor, visit_id)
    assert record.visit_id == visit_id
    event = world.audit_events()[-1]
    assert (event.action, event.entity_id) == ("patient.open", world.patient_id)
    with pytest.raises(PermissionDenied):
        consultation.get_consultation(world.desk, world.receptionist, visit_id)


# --- finishing ----------------------------------------------------------------------------


def test_finishing_completes_the_visit_through_the_queue(world: World) -> None:
    visit_id = world.add_visit()
    record_consultation(world.desk, world.doctor, visit_id, diagnosis_codes=["J00"])
    world.clock.advance(minutes=12)
    record = consultation.finish_consultation(world.desk, world.doctor, visit_id)
    stored = world.visit_row(visit_id)
    assert record.status == stored.status == "completed"
    assert stored.finished_at == world.clock.utcnow()
    assert "visit.completed" in world.audit_actions()


def test_finishing_needs_a_complaint_or_a_diagnosis(world: World) -> None:
    visit_id = world.add_visit()
    with pytest.raises(ValidationError, match="complaint or a diagnosis"):
        consultation.finish_consultation(world.desk, world.doctor, visit_id)
    assert world.visit_row(visit_id).status == "in_consultation"


def test_finishing_refuses_while_a_prescription_is_unsigned(world: World) -> None:
    visit_id = world.add_visit(complaint="Cough")
    with world.desk.transaction(None) as session:
        session.add(
            Prescription(
                clinic_id=world.desk.clinic_id,
                visit_id=visit_id,
                patient_id=world.patient_id,
                doctor_id=world.doctor.user_id,
            )
        )
    with pytest.raises(InvalidState, match="Sign or discard the draft"):
        consultation.finish_consultation(world.desk, world.doctor, visit_id)


def test_finishing_twice_or_before_starting_is_refused(world: World) -> None:
    done = world.add_visit(status="completed", complaint="x")
    with pytest.raises(InvalidState, match="already finished"):
        consultation.finish_consultation(world.desk, world.doctor, done)
    waiting = world.add_visit(status="waiting", complaint="x")
    with pytest.raises(InvalidState, match="in consultation"):
        consultation.finish_consultation(world.desk, world.doctor, waiting)
    with pytest.raises(PermissionDenied):
        consultation.finish_consultation(world.desk, world.other_doctor, done)


# --- history ------------------------------------------------------------------------------


def _signed_prescription(world: World, visit_id: str, *names: str, revision: int = 1) -> str:
    with world.desk.transaction(None) as session:
        rx = Prescription(
            clinic_id=world.desk.clinic_id,
            visit_id=visit_id,
            patient_id=world.visit_row(visit_id).patient_id,
            doctor_id=world.visit_row(visit_id).doctor_id,
            status="signed",
            signed_at=world.clock.utcnow(),
            revision=revision,
        )
        session.add(rx)
        for position, name in enumerate(names, start=1):
            session.add(
                PrescriptionItem(
                    clinic_id=world.desk.clinic_id,
                    prescription_id=rx.id,
                    position=position,
                    medicine_name=name,
                    dose="1 tablet",
                    frequency="BD",
                )
            )
    return rx.id


def test_history_lists_earlier_visits_newest_first_with_diagnoses_and_prescriptions(
    world: World,
) -> None:
    old = world.add_visit(
        status="completed",
        day=date(2025, 11, 2),
        complaint="Back pain",
        diagnosis_codes=["M54.5"],
    )
    older = world.add_visit(
        status="completed",
        day=date(2025, 6, 1),
        complaint="Fever",
        diagnosis_codes=["R50.9"],
        doctor=world.other_doctor,
    )
    _signed_prescription(world, old, "Ibuprofen", "Omeprazole")
    world.add_visit(status="cancelled", day=date(2025, 12, 1))
    current = world.add_visit(complaint="Today's visit")

    entries = consultation.history(
        world.desk, world.doctor, world.patient_id, exclude_visit_id=current
    )

    assert [e.visit_id for e in entries] == [old, older]
    first = entries[0]
    assert first.day == date(2025, 11, 2)
    assert first.doctor_name == "Dr Nina Mehta"
    assert first.complaint == "Back pain"
    assert [(d.code, d.title) for d in first.diagnoses] == [("M54.5", "Low back pain")]
    assert [i.medicine_name for i in first.prescriptions[0].items] == ["Ibuprofen", "Omeprazole"]
    assert entries[1].doctor_name == "Dr Omar Khan"
    assert entries[1].prescriptions == []


def test_history_shows_only_the_newest_version_of_an_amended_prescription(world: World) -> None:
    visit = world.add_visit(status="completed", day=date(2025, 11, 2))
    first = _signed_prescription(world, visit, "Amoxicillin")
    second = _signed_prescription(world, visit, "Azithromycin", revision=2)
    with world.desk.transaction(None) as session:
        session.get(Prescription, second).supersedes_id = first  # type: ignore[union-attr]
    entries = consultation.history(world.desk, world.doctor, world.patient_id)
    assert [p.prescription_id for p in entries[0].prescriptions] == [second]


def test_history_includes_records_merged_into_this_patient(world: World) -> None:
    duplicate = world.add_patient("Asha  Verma")
    twice_removed = world.add_patient("A. Verma")
    mine = world.add_visit(status="completed", day=date(2025, 1, 5))
    theirs = world.add_visit(status="completed", day=date(2025, 2, 5), patient_id=duplicate)
    oldest = world.add_visit(status="completed", day=date(2024, 2, 5), patient_id=twice_removed)
    with world.desk.transaction(None) as session:
        session.get(Patient, duplicate).merged_into = world.patient_id  # type: ignore[union-attr]
        session.get(Patient, twice_removed).merged_into = duplicate  # type: ignore[union-attr]

    entries = consultation.history(world.desk, world.doctor, world.patient_id)
    assert [e.visit_id for e in entries] == [theirs, mine, oldest]
    assert entries[0].patient_id == duplicate
    # Opening the merged-away record shows the surviving record's history.
    via_old_id = consultation.history(world.desk, world.doctor, duplicate)
    assert [e.visit_id for e in via_old_id] == [theirs, mine, oldest]


def test_reading_history_is_audited_as_a_record_opening_without_patient_data(
    world: World,
) -> None:
    world.add_visit(status="completed", day=date(2025, 1, 5), complaint="Secret complaint")
    consultation.history(world.desk, world.doctor, world.patient_id)
    event = world.audit_events()[-1]
    assert (event.action, event.entity, event.entity_id, event.detail) == (
        "patient.open",
        "patient",
        world.patient_id,
        "view=history",
    )


def test_history_is_for_clinicians_and_unknown_patients_are_not_found(world: World) -> None:
    with pytest.raises(PermissionDenied):
        consultation.history(world.desk, world.receptionist, world.patient_id)
    with pytest.raises(PermissionDenied):
        consultation.history(world.desk, world.cashier, world.patient_id)
    with pytest.raises(NotFound):
        consultation.history(world.desk, world.doctor, "nobody")
    world.disable(world.doctor)
    with pytest.raises(PermissionDenied, match="disabled"):
        consultation.history(world.desk, world.doctor, world.patient_id)


def test_a_visit_row_keeps_its_sync_columns_stamped(world: World) -> None:
    visit_id = world.add_visit()
    record_consultation(world.desk, world.doctor, visit_id, complaint="x")
    stored = world.row(Visit, visit_id)
    assert stored.updated_by == world.doctor.user_id
    assert stored.origin == world.desk.device_id
