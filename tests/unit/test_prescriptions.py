"""Prescriptions: drafts built by the visit's doctor, allergy warnings, signing makes them
immutable, amendments make linked new versions, templates and the printable document."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from clinic_desktop.models import Prescription, PrescriptionItem
from clinic_desktop.services import catalogues, consultation, prescriptions
from clinic_desktop.services.context import Desk
from clinic_desktop.services.errors import (
    InvalidState,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from clinic_desktop.services.prescriptions import (
    SIGNED_IMMUTABLE,
    AllergyAcknowledgementRequired,
    add_item,
    create_draft,
    sign,
)
from tests.unit.clinic_world import HOSTILE_TEXTS, World, build_world


@pytest.fixture
def world(bare_desk: Desk) -> World:
    built = build_world(bare_desk)
    catalogues.seed_medicines(built.desk, built.admin)
    return built


def medicine_id(world: World, query: str) -> str:
    return catalogues.search_medicines(world.desk, query)[0].id


def draft_with_item(world: World, visit_id: str | None = None, **item: str) -> tuple[str, str]:
    visit_id = visit_id or world.add_visit()
    rx = create_draft(world.desk, world.doctor, visit_id)
    fields = {"medicine_name": "Paracetamol", "dose": "1 tablet", "frequency": "TDS"} | item
    result = add_item(world.desk, world.doctor, rx.id, **fields)
    return rx.id, result.item.id


# --- drafts and items ---------------------------------------------------------------------


def test_a_catalogue_item_fills_name_strength_form_and_route(world: World) -> None:
    rx = create_draft(world.desk, world.doctor, world.add_visit())
    result = add_item(
        world.desk,
        world.doctor,
        rx.id,
        medicine_id=medicine_id(world, "amoxicillin 500"),
        dose="1 capsule",
        frequency="TDS",
        duration="5 days",
        quantity="15",
        instructions="After food",
    )
    item = result.item
    assert (item.medicine_name, item.strength, item.form, item.route) == (
        "Amoxicillin",
        "500 mg",
        "capsule",
        "oral",
    )
    assert (item.dose, item.frequency, item.duration, item.quantity) == (
        "1 capsule",
        "TDS",
        "5 days",
        "15",
    )
    assert result.warnings == []
    assert [
        i.id for i in prescriptions.get_prescription(world.desk, world.doctor, rx.id).items
    ] == [item.id]


def test_typed_values_win_over_the_catalogue(world: World) -> None:
    rx = create_draft(world.desk, world.doctor, world.add_visit())
    item = add_item(
        world.desk,
        world.doctor,
        rx.id,
        medicine_id=medicine_id(world, "amoxicillin 500"),
        strength="250 mg",
    ).item
    assert item.strength == "250 mg"


def test_free_text_items_need_a_name(world: World) -> None:
    rx = create_draft(world.desk, world.doctor, world.add_visit())
    item = add_item(world.desk, world.doctor, rx.id, medicine_name="Herbal cough syrup").item
    assert item.medicine_id is None
    with pytest.raises(ValidationError) as caught:
        add_item(world.desk, world.doctor, rx.id, medicine_name="   ")
    assert "medicine_name" in caught.value.fields


def test_an_unknown_catalogue_id_is_refused(world: World) -> None:
    rx = create_draft(world.desk, world.doctor, world.add_visit())
    with pytest.raises(ValidationError) as caught:
        add_item(world.desk, world.doctor, rx.id, medicine_id="gone")
    assert "medicine_id" in caught.value.fields


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_item_text_is_stored_verbatim(world: World, text: str) -> None:
    rx = create_draft(world.desk, world.doctor, world.add_visit(), notes=text)
    item = add_item(
        world.desk,
        world.doctor,
        rx.id,
        medicine_name=text[:200],
        dose=text[:60],
        instructions=text,
    ).item
    stored = world.row(PrescriptionItem, item.id)
    assert (stored.medicine_name, stored.dose, stored.instructions) == (
        text[:200],
        text[:60],
        text,
    )
    assert world.row(Prescription, rx.id).notes == text


def test_overlong_fields_are_refused_and_nothing_is_written(world: World) -> None:
    rx = create_draft(world.desk, world.doctor, world.add_visit())
    before = world.outbox_count()
    with pytest.raises(ValidationError) as caught:
        add_item(
            world.desk, world.doctor, rx.id, medicine_name="x" * 201, dose="y" * 61, route="z" * 41
        )
    assert set(caught.value.fields) == {"medicine_name", "dose", "route"}
    assert world.outbox_count() == before


def test_items_are_updated_and_removed_while_draft(world: World) -> None:
    rx_id, item_id = draft_with_item(world)
    second = add_item(world.desk, world.doctor, rx_id, medicine_name="ORS").item
    updated = prescriptions.update_item(
        world.desk, world.doctor, item_id, dose="2 tablets", frequency="SOS"
    ).item
    assert (updated.dose, updated.frequency) == ("2 tablets", "SOS")
    view = prescriptions.remove_item(world.desk, world.doctor, item_id)
    assert [i.id for i in view.items] == [second.id]
    assert world.row(PrescriptionItem, item_id).deleted is True  # tombstoned, not deleted
    with pytest.raises(ValidationError, match="not a prescription field"):
        prescriptions.update_item(world.desk, world.doctor, second.id, colour="red")


def test_renaming_a_catalogue_item_by_hand_unlinks_it(world: World) -> None:
    rx = create_draft(world.desk, world.doctor, world.add_visit())
    item = add_item(
        world.desk, world.doctor, rx.id, medicine_id=medicine_id(world, "cetirizine 10")
    ).item
    renamed = prescriptions.update_item(
        world.desk, world.doctor, item.id, medicine_name="Something else"
    ).item
    assert renamed.medicine_id is None


def test_one_prescription_per_visit(world: World) -> None:
    visit_id = world.add_visit()
    create_draft(world.desk, world.doctor, visit_id)
    with pytest.raises(InvalidState, match="already has a prescription"):
        create_draft(world.desk, world.doctor, visit_id)


def test_a_draft_can_be_discarded(world: World) -> None:
    visit_id = world.add_visit()
    rx_id, item_id = draft_with_item(world, visit_id)
    prescriptions.discard_draft(world.desk, world.doctor, rx_id)
    assert world.row(Prescription, rx_id).deleted is True
    assert world.row(PrescriptionItem, item_id).deleted is True
    assert create_draft(world.desk, world.doctor, visit_id).id != rx_id


def test_presets_cover_the_usual_abbreviations() -> None:
    for code in ("1-0-1", "OD", "BD", "TDS", "QID", "HS", "SOS", "STAT"):
        assert code in prescriptions.FREQUENCY_PRESETS
    assert prescriptions.FREQUENCY_PRESETS["BD"] == "twice a day"
    assert "5 days" in prescriptions.DURATION_PRESETS
    assert "oral" in prescriptions.ROUTES


# --- who may write ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["receptionist", "cashier", "admin"])
def test_only_a_doctor_writes_prescriptions(world: World, who: str) -> None:
    with pytest.raises(PermissionDenied, match="doctor"):
        create_draft(world.desk, getattr(world, who), world.add_visit())


def test_only_the_visits_own_doctor_writes_and_signs(world: World) -> None:
    rx_id, item_id = draft_with_item(world)
    with pytest.raises(PermissionDenied, match="own doctor"):
        add_item(world.desk, world.other_doctor, rx_id, medicine_name="x")
    with pytest.raises(PermissionDenied, match="own doctor"):
        sign(world.desk, world.other_doctor, rx_id)
    with pytest.raises(PermissionDenied, match="doctor"):
        sign(world.desk, world.receptionist, rx_id)
    with pytest.raises(PermissionDenied):
        prescriptions.remove_item(world.desk, world.cashier, item_id)


def test_a_disabled_doctor_cannot_sign(world: World) -> None:
    rx_id, _ = draft_with_item(world)
    world.disable(world.doctor)
    with pytest.raises(PermissionDenied, match="disabled"):
        sign(world.desk, world.doctor, rx_id)
    assert world.row(Prescription, rx_id).status == "draft"


def test_prescribing_follows_the_visit_record_window(world: World) -> None:
    with pytest.raises(InvalidState, match="Start the consultation"):
        create_draft(world.desk, world.doctor, world.add_visit(status="waiting"))
    finished = world.add_visit(status="completed")
    rx = create_draft(world.desk, world.doctor, finished)  # same day: still possible
    world.clock.advance(days=1)
    with pytest.raises(InvalidState, match="earlier day"):
        add_item(world.desk, world.doctor, rx.id, medicine_name="x")


# --- signing ------------------------------------------------------------------------------


def test_signing_stamps_the_time_and_is_audited(world: World) -> None:
    rx_id, _ = draft_with_item(world)
    view = sign(world.desk, world.doctor, rx_id)
    assert view.status == "signed"
    assert view.signed_at == world.clock.utcnow()
    event = world.audit_events()[-1]
    assert (event.action, event.entity_id, event.detail, event.flagged) == (
        "prescription.sign",
        rx_id,
        "items=1",
        False,
    )


def test_an_empty_prescription_cannot_be_signed(world: World) -> None:
    rx = create_draft(world.desk, world.doctor, world.add_visit())
    with pytest.raises(ValidationError, match="at least one medicine"):
        sign(world.desk, world.doctor, rx.id)


def test_every_line_needs_a_dose_and_frequency_to_sign(world: World) -> None:
    rx_id, _ = draft_with_item(world, frequency="")
    with pytest.raises(ValidationError, match="dose and a frequency for: Paracetamol"):
        sign(world.desk, world.doctor, rx_id)


def test_a_signed_prescription_cannot_be_changed_in_any_way(world: World) -> None:
    rx_id, item_id = draft_with_item(world)
    sign(world.desk, world.doctor, rx_id)
    before = world.outbox_count()
    attempts = [
        lambda: add_item(world.desk, world.doctor, rx_id, medicine_name="More"),
        lambda: prescriptions.update_item(world.desk, world.doctor, item_id, dose="2 tablets"),
        lambda: prescriptions.remove_item(world.desk, world.doctor, item_id),
        lambda: prescriptions.set_notes(world.desk, world.doctor, rx_id, "changed"),
        lambda: prescriptions.discard_draft(world.desk, world.doctor, rx_id),
        lambda: sign(world.desk, world.doctor, rx_id),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidState) as caught:
            attempt()
        assert str(caught.value) == SIGNED_IMMUTABLE
    assert world.outbox_count() == before
    assert world.row(PrescriptionItem, item_id).dose == "1 tablet"


# --- allergies ----------------------------------------------------------------------------


def test_a_penicillin_allergy_warns_about_amoxicillin_through_its_class(world: World) -> None:
    world.set_allergies(world.patient_id, "Penicillin (rash), dust")
    rx = create_draft(world.desk, world.doctor, world.add_visit())
    result = add_item(
        world.desk,
        world.doctor,
        rx.id,
        medicine_id=medicine_id(world, "amoxicillin 500"),
        dose="1 capsule",
        frequency="TDS",
    )
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.item_id == result.item.id
    assert warning.allergy == "Penicillin (rash)"
    assert warning.matched_on == "drug class"
    assert "penicillins" in warning.matched_text
    assert "Amoxicillin" in warning.message


def test_signing_with_an_allergy_match_needs_acknowledgement(world: World) -> None:
    world.set_allergies(world.patient_id, "sulfa drugs")
    rx = create_draft(world.desk, world.doctor, world.add_visit())
    add_item(
        world.desk,
        world.doctor,
        rx.id,
        medicine_id=medicine_id(world, "co-trimoxazole"),
        dose="1 tablet",
        frequency="BD",
    )
    before = world.outbox_count()
    with pytest.raises(AllergyAcknowledgementRequired) as caught:
        sign(world.desk, world.doctor, rx.id)
    assert caught.value.warnings[0].allergy == "sulfa drugs"
    assert "Co-trimoxazole" in str(caught.value)
    assert world.outbox_count() == before

    signed = sign(world.desk, world.doctor, rx.id, acknowledge_allergy=True)
    assert signed.status == "signed"
    event = world.audit_events()[-1]
    assert event.detail == "items=1 allergy_override=1"
    assert event.flagged is True


def test_an_allergy_recorded_after_the_item_is_still_caught_at_signing(world: World) -> None:
    rx_id, _ = draft_with_item(world, medicine_name="Ibuprofen")
    world.set_allergies(world.patient_id, "NSAIDs")
    with pytest.raises(AllergyAcknowledgementRequired):
        sign(world.desk, world.doctor, rx_id)


def test_free_text_items_are_matched_through_the_catalogue_too(world: World) -> None:
    world.set_allergies(world.patient_id, "cephalosporins")
    rx = create_draft(world.desk, world.doctor, world.add_visit())
    result = add_item(world.desk, world.doctor, rx.id, medicine_name="cefixime")
    assert [w.matched_on for w in result.warnings] == ["drug class"]


@pytest.mark.parametrize(
    ("allergies", "medicine", "generic", "drug_class", "matched"),
    [
        ("penicillin", "Amoxicillin", "amoxicillin", "penicillins (beta-lactam antibiotics)", True),
        ("PENICILLINS", "Co-amoxiclav", "amoxicillin + clavulanic acid", "penicillins", True),
        ("amoxicillin", "Co-amoxiclav", "amoxicillin + clavulanic acid", "penicillins", True),
        ("aspirin", "Aspirin", "acetylsalicylic acid", "salicylates (NSAIDs)", True),
        ("NSAIDs", "Ibuprofen", "ibuprofen", "NSAIDs (non-steroidal)", True),
        ("sulfa", "Co-trimoxazole", "sulfamethoxazole + trimethoprim", "sulfonamides", True),
        ("beta-lactam", "Cefalexin", "cefalexin", "cephalosporins (beta-lactam antibiotics)", True),
        ("penicillin antibiotics", "Azithromycin", "azithromycin", "macrolide antibiotics", False),
        ("penicillin", "Azithromycin", "azithromycin", "macrolide antibiotics", False),
        ("peanuts", "Paracetamol", "paracetamol", "analgesics", False),
        ("NKDA", "Amoxicillin", "amoxicillin", "penicillins", False),
        ("none", "Amoxicillin", "amoxicillin", "penicillins", False),
        ("", "Amoxicillin", "amoxicillin", "penicillins", False),
        ("pen", "Amoxicillin", "amoxicillin", "penicillins", False),  # too short to judge
    ],
)
def test_allergy_matching_is_a_case_insensitive_word_match(
    allergies: str, medicine: str, generic: str, drug_class: str, matched: bool
) -> None:
    hits = prescriptions.match_allergies(allergies, medicine, generic, drug_class)
    assert bool(hits) is matched


def test_several_allergy_entries_are_split_and_reported_separately(world: World) -> None:
    terms = prescriptions.allergy_terms("Penicillin; sulfa drugs and latex\nNKDA")
    assert [t for t, _ in terms] == ["Penicillin", "sulfa drugs", "latex"]


def test_allergy_warnings_for_a_whole_prescription(world: World) -> None:
    world.set_allergies(world.patient_id, "aspirin, penicillin")
    rx_id, _ = draft_with_item(world, medicine_name="Aspirin")
    add_item(world.desk, world.doctor, rx_id, medicine_name="Paracetamol")
    add_item(world.desk, world.doctor, rx_id, medicine_id=medicine_id(world, "flucloxacillin"))
    warnings = prescriptions.allergy_warnings(world.desk, world.doctor, rx_id)
    assert sorted(w.medicine_name for w in warnings) == ["Aspirin", "Flucloxacillin"]


# --- amendments ---------------------------------------------------------------------------


def test_amending_makes_a_linked_draft_with_the_same_items(world: World) -> None:
    rx_id, _ = draft_with_item(world, duration="5 days")
    add_item(world.desk, world.doctor, rx_id, medicine_name="ORS", dose="1 sachet", frequency="SOS")
    sign(world.desk, world.doctor, rx_id)
    amended = prescriptions.amend(world.desk, world.doctor, rx_id)
    assert amended.status == "draft"
    assert amended.revision == 2
    assert amended.supersedes_id == rx_id
    assert [(i.medicine_name, i.dose, i.duration) for i in amended.items] == [
        ("Paracetamol", "1 tablet", "5 days"),
        ("ORS", "1 sachet", ""),
    ]
    original = prescriptions.get_prescription(world.desk, world.doctor, rx_id)
    assert original.status == "signed"
    assert {i.id for i in original.items}.isdisjoint({i.id for i in amended.items})
    prescriptions.update_item(world.desk, world.doctor, amended.items[0].id, duration="7 days")
    assert prescriptions.get_prescription(world.desk, world.doctor, rx_id).items[0].duration == (
        "5 days"
    )
    versions = prescriptions.prescriptions_for_visit(world.desk, world.doctor, amended.visit_id)
    assert [v.revision for v in versions] == [1, 2]


def test_only_signed_and_newest_versions_are_amended(world: World) -> None:
    rx_id, _ = draft_with_item(world)
    with pytest.raises(InvalidState, match="edit the draft directly"):
        prescriptions.amend(world.desk, world.doctor, rx_id)
    sign(world.desk, world.doctor, rx_id)
    prescriptions.amend(world.desk, world.doctor, rx_id)
    with pytest.raises(InvalidState, match="already amended"):
        prescriptions.amend(world.desk, world.doctor, rx_id)
    with pytest.raises(PermissionDenied):
        prescriptions.amend(world.desk, world.other_doctor, rx_id)


def test_signed_amendment_shows_in_history_instead_of_the_original(world: World) -> None:
    visit_id = world.add_visit(complaint="Cough")
    rx_id, _ = draft_with_item(world, visit_id)
    sign(world.desk, world.doctor, rx_id)
    amended = prescriptions.amend(world.desk, world.doctor, rx_id)
    sign(world.desk, world.doctor, amended.id)
    consultation.finish_consultation(world.desk, world.doctor, visit_id)
    entries = consultation.history(world.desk, world.doctor, world.patient_id)
    assert [p.prescription_id for p in entries[0].prescriptions] == [amended.id]


# --- templates ----------------------------------------------------------------------------


def test_a_doctors_earlier_prescriptions_serve_as_templates(world: World) -> None:
    first_visit = world.add_visit(status="completed")
    rx_id, _ = draft_with_item(world, first_visit, medicine_name="Cetirizine", strength="10 mg")
    sign(world.desk, world.doctor, rx_id)
    sources = prescriptions.favourite_sources(world.desk, world.doctor)
    assert [s.prescription_id for s in sources] == [rx_id]
    assert sources[0].summary == "Cetirizine 10 mg"
    assert prescriptions.favourite_sources(world.desk, world.other_doctor) == []

    other_patient = world.add_patient("Bo Chen", allergies="")
    draft = create_draft(world.desk, world.doctor, world.add_visit(patient_id=other_patient))
    view, warnings = prescriptions.copy_items_from(world.desk, world.doctor, draft.id, rx_id)
    assert [(i.medicine_name, i.dose, i.frequency) for i in view.items] == [
        ("Cetirizine", "1 tablet", "TDS")
    ]
    assert warnings == []


def test_templates_are_checked_against_the_new_patients_allergies(world: World) -> None:
    rx_id, _ = draft_with_item(world, world.add_visit(status="completed"), medicine_name="Aspirin")
    sign(world.desk, world.doctor, rx_id)
    allergic = world.add_patient("Dee Allergic", allergies="aspirin")
    draft = create_draft(world.desk, world.doctor, world.add_visit(patient_id=allergic))
    _view, warnings = prescriptions.copy_items_from(world.desk, world.doctor, draft.id, rx_id)
    assert [w.medicine_name for w in warnings] == ["Aspirin"]


def test_another_doctors_prescription_is_not_a_template(world: World) -> None:
    theirs = world.add_visit(doctor=world.other_doctor)
    rx = create_draft(world.desk, world.other_doctor, theirs)
    draft = create_draft(world.desk, world.doctor, world.add_visit())
    with pytest.raises(PermissionDenied, match="your own"):
        prescriptions.copy_items_from(world.desk, world.doctor, draft.id, rx.id)


# --- printing -----------------------------------------------------------------------------


def test_the_printable_document_has_everything_the_printout_shows(world: World) -> None:
    patient = world.add_patient(
        "Meera Iyer",
        allergies="penicillin",
        sex="female",
        date_of_birth=date(1990, 5, 20),
    )
    visit_id = world.add_visit(patient_id=patient)
    consultation.record_consultation(
        world.desk,
        world.doctor,
        visit_id,
        diagnosis_codes=["J02.9"],
        advice="Warm saline gargles",
        follow_up_date=world.today + timedelta(days=5),
    )
    rx_id, _ = draft_with_item(world, visit_id, frequency="BD", duration="3 days")
    sign(world.desk, world.doctor, rx_id)

    doc = prescriptions.prescription_document(world.desk, rx_id, actor=world.doctor)

    assert (doc.clinic_name, doc.clinic_address, doc.clinic_phone) == (
        "Lakeside Clinic",
        "12 Lake Road",
        "+91 22 5555 0101",
    )
    assert doc.doctor_name == "Dr Nina Mehta"
    assert (doc.patient_name, doc.patient_sex, doc.patient_age) == ("Meera Iyer", "female", "35 y")
    assert doc.patient_number.startswith("P-B-")
    assert doc.allergies == "penicillin"
    assert doc.dated == world.today
    assert doc.signed is True
    assert doc.diagnoses == [("J02.9", "Acute pharyngitis, unspecified")]
    assert doc.advice == "Warm saline gargles"
    assert doc.follow_up_date == date(2026, 3, 9)
    assert len(doc.items) == 1
    line = doc.items[0]
    assert (line.number, line.medicine_name, line.frequency, line.frequency_meaning) == (
        1,
        "Paracetamol",
        "BD",
        "twice a day",
    )
    assert world.audit_actions()[-1] == "prescription.print"


def test_a_babys_age_prints_in_months(world: World) -> None:
    baby = world.add_patient("Baby Rao", date_of_birth=date(2025, 6, 10))
    rx_id, _ = draft_with_item(world, world.add_visit(patient_id=baby))
    assert prescriptions.prescription_document(world.desk, rx_id).patient_age == "8 m"


def test_documents_of_missing_prescriptions_are_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        prescriptions.prescription_document(world.desk, "nope")


def test_printing_is_for_clinicians(world: World) -> None:
    rx_id, _ = draft_with_item(world)
    with pytest.raises(PermissionDenied):
        prescriptions.prescription_document(world.desk, rx_id, actor=world.cashier)


def test_every_prescription_write_is_in_the_outbox(world: World) -> None:
    visit_id = world.add_visit()
    before = world.outbox_count()
    rx = create_draft(world.desk, world.doctor, visit_id)
    add_item(world.desk, world.doctor, rx.id, medicine_name="ORS", dose="1", frequency="SOS")
    sign(world.desk, world.doctor, rx.id)
    with world.desk.reading() as session:
        entities = session.scalars(
            select(PrescriptionItem.prescription_id).where(
                PrescriptionItem.prescription_id == rx.id
            )
        ).all()
    assert len(entities) == 1
    # draft + event, item + event, signature + event
    assert world.outbox_count() == before + 6
