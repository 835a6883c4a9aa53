"""Patients: registration rules, duplicates, edits, audited opening, merging and search."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text

from clinic_desktop.models import AuditEvent, OutboxEntry, Patient
from clinic_desktop.services import passwords, patients, users
from clinic_desktop.services.audit import verify_chain
from clinic_desktop.services.context import Actor, Clock, Desk
from clinic_desktop.services.errors import InvalidState, NotFound, PermissionDenied, ValidationError
from clinic_desktop.services.patients import PatientDraft
from clinic_desktop.services.users import SetupResult

PASSWORD = "front desk pass 1"
TODAY = date(2026, 3, 2)


class FixedClock(Clock):
    def utcnow(self) -> datetime:
        return datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@dataclass
class Staff:
    desk: Desk
    admin: Actor
    reception: Actor
    doctor: Actor
    billing: Actor


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def staff(desk_setup: SetupResult) -> Staff:
    """The shared real store (encrypted, migrated, desk code "A") with one user per role."""
    desk, admin = desk_setup.desk, desk_setup.admin
    desk.now = FixedClock()

    def person(name: str, role: str) -> Actor:
        user = users.create_user(
            desk, admin, username=name, full_name=name.title(), roles=[role], password=PASSWORD
        )
        return users.actor_for(user)

    return Staff(
        desk,
        admin,
        person("rita", "receptionist"),
        person("drkhan", "doctor"),
        person("bill", "billing"),
    )


def counts(desk: Desk) -> tuple[int, int, int]:
    """(patients, outbox entries, audit events)."""
    with desk.reading() as session:
        return tuple(  # type: ignore[return-value]
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Patient, OutboxEntry, AuditEvent)
        )


def register(staff: Staff, name: str, **fields: object) -> Patient:
    draft = PatientDraft(full_name=name, **fields)  # type: ignore[arg-type]
    return patients.register(staff.desk, staff.reception, draft, confirm_not_duplicate=True)


# --- registering ------------------------------------------------------------------------------


def test_register_cleans_input_numbers_by_desk_and_writes_outbox_and_audit(staff: Staff) -> None:
    before = counts(staff.desk)
    patient = patients.register(
        staff.desk,
        staff.reception,
        PatientDraft(
            full_name="  Maria   José  Pérez ",
            sex="Female",
            date_of_birth="1984-07-23",
            phone="+1 (555) 123-4567",
            address="12 Main St\nApt 4",
            emergency_contact_name="Luis Pérez",
            emergency_contact_phone="555 987 6543",
            allergies="Penicillin",
            blood_group="ab+",
        ),
    )
    assert patient.patient_number == "P-A-000001"
    assert patient.full_name == "Maria José Pérez"
    assert (patient.sex, patient.blood_group, patient.phone) == ("female", "AB+", "+15551234567")
    assert patient.date_of_birth == date(1984, 7, 23)
    assert not patient.dob_estimated
    assert patient.address == "12 Main St\nApt 4"
    assert counts(staff.desk)[0] == before[0] + 1
    with staff.desk.reading() as session:
        entry = session.scalars(select(OutboxEntry).where(OutboxEntry.row_id == patient.id)).one()
        assert (entry.entity, entry.op, entry.fields["full_name"]) == (
            "patient",
            "insert",
            "Maria José Pérez",
        )
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient.register")
        ).one()
        assert event.entity_id == patient.id
        assert "Maria" not in event.detail
        assert "555" not in event.detail
        assert verify_chain(session, staff.desk).ok
    second = register(staff, "Second Person")
    assert second.patient_number == "P-A-000002"


def test_age_instead_of_birth_date_gives_an_estimated_birth_date(staff: Staff) -> None:
    patient = register(staff, "Old Timer", age_years="42")
    assert patient.date_of_birth == date(1984, 3, 2)
    assert patient.dob_estimated
    baby = register(staff, "New Born", age_years=0)
    assert baby.date_of_birth == TODAY


@pytest.mark.parametrize(
    "name",
    [
        "محمد بن سلمان",  # Arabic
        "अर्जुन कुमार",  # Devanagari, with vowel signs
        "王小明",  # CJK
        "Zoë 🌸 Wilde",  # emoji
        "D'Angelo \"Dee\" O'Neil",  # quotes
        "Robert'); DROP TABLE patient;--",  # SQL
        "<script>alert('x')</script>",  # HTML
        "x" * 200,  # longest allowed
    ],
)
def test_any_script_quotes_sql_and_html_are_stored_verbatim(staff: Staff, name: str) -> None:
    patient = register(staff, name, address=name, allergies=name, notes=name)
    with staff.desk.reading() as session:
        stored = session.get(Patient, patient.id)
        assert stored is not None
        assert (stored.full_name, stored.address, stored.allergies, stored.notes) == (name,) * 4
        # the patient table is still there and intact
        assert session.scalar(select(func.count()).select_from(Patient)) == 1


@pytest.mark.parametrize(
    ("fields", "bad_field", "message"),
    [
        ({"full_name": ""}, "full_name", "Enter the patient's full name"),
        ({"full_name": "   \t "}, "full_name", "Enter the patient's full name"),
        ({"full_name": "y" * 201}, "full_name", "too long"),
        ({"full_name": "Null\x00Byte"}, "full_name", "cannot be printed"),
        ({"full_name": "Bell\x07"}, "full_name", "cannot be printed"),
        ({"sex": "robot"}, "sex", "Choose female"),
        ({"date_of_birth": "2026-02-30"}, "date_of_birth", "YYYY-MM-DD"),
        ({"date_of_birth": "31/12/1990"}, "date_of_birth", "YYYY-MM-DD"),
        ({"date_of_birth": "2026-03-03"}, "date_of_birth", "future"),
        ({"date_of_birth": date(1895, 1, 1)}, "date_of_birth", "more than 130 years"),
        ({"age_years": "-3"}, "age_years", "whole number"),
        ({"age_years": "131"}, "age_years", "whole number"),
        ({"age_years": "forty"}, "age_years", "whole number"),
        ({"age_years": 40, "date_of_birth": "1986-01-01"}, "age_years", "not both"),
        ({"phone": "12345"}, "phone", "6 to 20 digits"),
        ({"phone": "call me maybe"}, "phone", "6 to 20 digits"),
        ({"phone": "1" * 21}, "phone", "6 to 20 digits"),
        ({"phone": "'; DROP TABLE patient;--"}, "phone", "6 to 20 digits"),
        ({"emergency_contact_phone": "+"}, "emergency_contact_phone", "6 to 20 digits"),
        ({"emergency_contact_name": "z" * 201}, "emergency_contact_name", "Too long"),
        ({"address": "a" * 501}, "address", "Too long"),
        ({"allergies": "bad\x1bescape"}, "allergies", "cannot be printed"),
        ({"blood_group": "C+"}, "blood_group", "blood group"),
    ],
)
def test_bad_input_is_refused_per_field_before_anything_is_written(
    staff: Staff, fields: dict[str, object], bad_field: str, message: str
) -> None:
    values: dict[str, object] = {"full_name": "Valid Name"}
    values.update(fields)
    before = counts(staff.desk)
    with pytest.raises(ValidationError) as info:
        patients.register(staff.desk, staff.reception, PatientDraft(**values))  # type: ignore[arg-type]
    assert bad_field in info.value.fields
    assert message in info.value.fields[bad_field]
    assert counts(staff.desk) == before


def test_all_bad_fields_are_reported_together(staff: Staff) -> None:
    with pytest.raises(ValidationError) as info:
        patients.register(
            staff.desk,
            staff.reception,
            PatientDraft(full_name="", sex="x", phone="1", blood_group="Z"),
        )
    assert set(info.value.fields) == {"full_name", "sex", "phone", "blood_group"}


def test_doctors_and_billing_cannot_register_or_edit(staff: Staff) -> None:
    patient = register(staff, "Existing Patient")
    before = counts(staff.desk)
    for actor in (staff.doctor, staff.billing):
        with pytest.raises(PermissionDenied, match="register"):
            patients.register(staff.desk, actor, PatientDraft(full_name="New Person"))
        with pytest.raises(PermissionDenied):
            patients.edit(staff.desk, actor, patient.id, {"phone": "5551234567"})
        with pytest.raises(PermissionDenied):
            patients.merge(staff.desk, actor, patient.id, patient.id + "x")
    assert counts(staff.desk) == before


def test_a_disabled_receptionist_cannot_register(staff: Staff) -> None:
    users.set_disabled(staff.desk, staff.admin, staff.reception.user_id, True)
    before = counts(staff.desk)
    with pytest.raises(PermissionDenied, match="disabled"):
        patients.register(staff.desk, staff.reception, PatientDraft(full_name="Anyone"))
    assert counts(staff.desk) == before


# --- duplicates -------------------------------------------------------------------------------


def test_same_phone_is_a_possible_duplicate(staff: Staff) -> None:
    first = register(staff, "Sunita Sharma", phone="98765 43210")
    before = counts(staff.desk)
    draft = PatientDraft(full_name="Someone Else", phone="+98765-43210".replace("+", ""))
    with pytest.raises(patients.DuplicateWarning) as info:
        patients.register(staff.desk, staff.reception, draft)
    assert [p.id for p in info.value.candidates] == [first.id]
    assert first.patient_number in str(info.value)
    assert counts(staff.desk) == before
    confirmed = patients.register(staff.desk, staff.reception, draft, confirm_not_duplicate=True)
    assert confirmed.id != first.id
    with staff.desk.reading() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.entity_id == confirmed.id)
        ).one()
        assert event.detail == "confirmed_not_duplicate"


@pytest.mark.parametrize(
    "typed",
    ["john smith", "Smith John", "Jon Smith", "JOHN SMYTH", "Jöhn Smith", "John A Smith"],
)
def test_similar_name_with_the_same_birth_date_is_a_possible_duplicate(
    staff: Staff, typed: str
) -> None:
    first = register(staff, "John Smith", date_of_birth="1990-05-17")
    found = patients.find_duplicates(
        staff.desk, PatientDraft(full_name=typed, date_of_birth="1990-05-17")
    )
    assert [p.id for p in found] == [first.id]


def test_different_name_or_birth_date_is_not_a_duplicate(staff: Staff) -> None:
    register(staff, "John Smith", date_of_birth="1990-05-17")
    assert not patients.find_duplicates(
        staff.desk, PatientDraft(full_name="Jane Smith", date_of_birth="1990-05-17")
    )
    assert not patients.find_duplicates(
        staff.desk, PatientDraft(full_name="John Smith", date_of_birth="1991-05-17")
    )


def test_an_age_matches_a_birth_date_within_a_year(staff: Staff) -> None:
    first = register(staff, "Amina Yusuf", date_of_birth="1986-01-10")
    found = patients.find_duplicates(
        staff.desk, PatientDraft(full_name="Amina Yusuf", age_years=40)
    )
    assert [p.id for p in found] == [first.id]


def test_a_birth_date_matches_an_earlier_estimate_even_with_a_typo(staff: Staff) -> None:
    first = register(staff, "Fatima Rahman", age_years=40)  # estimated as 1986-03-02
    typo = PatientDraft(full_name="Fatma Rahman", date_of_birth="1985-11-20")
    assert [p.id for p in patients.find_duplicates(staff.desk, typo)] == [first.id]
    far = PatientDraft(full_name="Fatima Rahman", date_of_birth="1984-01-01")
    assert patients.find_duplicates(staff.desk, far) == []


def test_merged_and_deleted_records_are_not_offered_as_duplicates(staff: Staff) -> None:
    keep = register(staff, "Keep Me", phone="5550001111")
    gone = register(staff, "Gone Soon", phone="5550002222")
    patients.merge(staff.desk, staff.reception, keep.id, gone.id)
    assert not patients.find_duplicates(
        staff.desk, PatientDraft(full_name="Other", phone="5550002222")
    )


# --- editing ----------------------------------------------------------------------------------


def test_edit_writes_only_the_fields_that_changed(staff: Staff) -> None:
    patient = register(staff, "Lena Park", phone="5551112222", date_of_birth="1970-01-01")
    with staff.desk.reading() as session:
        last_seq = session.scalar(select(func.max(OutboxEntry.seq))) or 0
    edited = patients.edit(
        staff.desk,
        staff.reception,
        patient.id,
        {"phone": "555-111-3333", "full_name": " Lena  Park ", "allergies": "Latex"},
    )
    assert (edited.phone, edited.allergies) == ("5551113333", "Latex")
    with staff.desk.reading() as session:
        entries = session.scalars(select(OutboxEntry).where(OutboxEntry.seq > last_seq)).all()
        patient_entries = [e for e in entries if e.entity == "patient"]
        assert len(patient_entries) == 1
        assert set(patient_entries[0].fields) == {"phone", "allergies"}
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "patient.edit")).one()
        assert event.detail == "fields=phone,allergies"
    # nothing changed: nothing written, nothing audited
    before = counts(staff.desk)
    patients.edit(staff.desk, staff.reception, patient.id, {"phone": "5551113333"})
    assert counts(staff.desk) == before


def test_edit_validates_like_register_and_writes_nothing_on_error(staff: Staff) -> None:
    patient = register(staff, "Omar Ali")
    before = counts(staff.desk)
    with pytest.raises(ValidationError) as info:
        patients.edit(
            staff.desk,
            staff.reception,
            patient.id,
            {"full_name": "", "date_of_birth": "2099-01-01"},
        )
    assert set(info.value.fields) == {"full_name", "date_of_birth"}
    with pytest.raises(ValidationError, match="cannot be edited"):
        patients.edit(staff.desk, staff.reception, patient.id, {"patient_number": "P-X-1"})
    assert counts(staff.desk) == before


def test_edit_switches_between_age_and_exact_birth_date(staff: Staff) -> None:
    patient = register(staff, "Age Only", age_years=30)
    assert patient.dob_estimated
    edited = patients.edit(staff.desk, staff.reception, patient.id, {"notes": "walk-in"})
    assert edited.dob_estimated  # an unrelated edit keeps the estimate flag
    edited = patients.edit(staff.desk, staff.reception, patient.id, {"date_of_birth": "1995-06-01"})
    assert (edited.date_of_birth, edited.dob_estimated) == (date(1995, 6, 1), False)
    edited = patients.edit(staff.desk, staff.reception, patient.id, {"age_years": 50})
    assert (edited.date_of_birth, edited.dob_estimated) == (date(1976, 3, 2), True)


# --- opening a record -------------------------------------------------------------------------


def test_every_opening_of_a_record_is_audited(staff: Staff) -> None:
    patient = register(staff, "Private Person", allergies="Sulfa")
    for actor in (staff.doctor, staff.billing, staff.reception):
        opened = patients.open_record(staff.desk, actor, patient.id)
        assert opened.allergies == "Sulfa"
    with staff.desk.reading() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient.open").order_by(AuditEvent.seq)
        ).all()
        assert [e.actor_id for e in events] == [
            staff.doctor.user_id,
            staff.billing.user_id,
            staff.reception.user_id,
        ]
        assert all(e.entity_id == patient.id for e in events)
    with pytest.raises(NotFound):
        patients.open_record(staff.desk, staff.doctor, "no-such-id")


# --- merging ----------------------------------------------------------------------------------


def test_merge_keeps_both_records_fills_gaps_and_unions_allergies(staff: Staff) -> None:
    keep = register(staff, "Ravi Kumar", date_of_birth="1980-02-02", allergies="Penicillin")
    lose = register(
        staff,
        "Ravi Kumaar",
        phone="9123456789",
        blood_group="O+",
        allergies="Peanuts",
        age_years=46,
    )
    merged = patients.merge(staff.desk, staff.reception, keep.id, lose.id)
    assert merged.phone == "9123456789"
    assert merged.blood_group == "O+"
    assert merged.allergies == "Penicillin; Peanuts"
    assert merged.date_of_birth == date(1980, 2, 2)  # exact date beats an estimate
    with staff.desk.reading() as session:
        loser = session.get(Patient, lose.id)
        assert loser is not None
        assert loser.merged_into == keep.id
        assert not loser.deleted
        assert patients.history_ids(session, keep.id) == [keep.id, lose.id]
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("patient.merge%"))
        ).all()
        assert sorted(actions) == ["patient.merge", "patient.merged_into"]
    # the merged record opens the survivor, cannot be edited, and left search
    assert patients.open_record(staff.desk, staff.doctor, lose.id).id == keep.id
    with pytest.raises(InvalidState, match=keep.patient_number):
        patients.edit(staff.desk, staff.reception, lose.id, {"notes": "x"})
    assert [h.id for h in patients.search(staff.desk, "ravi")] == [keep.id]
    assert [h.id for h in patients.search(staff.desk, lose.patient_number)] == []


def test_merge_chains_resolve_and_refuse_nonsense(staff: Staff) -> None:
    a, b, c = (register(staff, f"Chain {n}") for n in "ABC")
    patients.merge(staff.desk, staff.reception, b.id, c.id)
    patients.merge(staff.desk, staff.admin, a.id, b.id)
    with staff.desk.reading() as session:
        assert sorted(patients.history_ids(session, a.id)) == sorted([a.id, b.id, c.id])
        assert patients.resolve(session, c.id).id == a.id
    with pytest.raises(ValidationError):
        patients.merge(staff.desk, staff.reception, a.id, a.id)
    with pytest.raises(InvalidState):
        patients.merge(staff.desk, staff.reception, a.id, c.id)


# --- search -----------------------------------------------------------------------------------


@pytest.fixture
def population(staff: Staff) -> dict[str, Patient]:
    people = {
        "maria": register(staff, "María Fernández", phone="+34 612 345 678"),
        "mohammed": register(staff, "Mohammed Khan", phone="0300 1234567"),
        "mo": register(staff, "Mo Farah", phone="07700 900123"),
        "arabic": register(staff, "محمد عبد الله", phone="0501234567"),
        "hindi": register(staff, "अर्जुन कुमार", phone="9876543210"),
        "cjk": register(staff, "王小明", phone="13800138000"),
        "emoji": register(staff, "Zoë 🌸 Wilde", phone="5550199"),
        "obrien": register(staff, "Seán O'Brien", phone="0871234567"),
        "johnson": register(staff, "Peter Johnson", phone="5550101"),
        "sql": register(staff, "Robert'); DROP TABLE patient;--"),
    }
    return people


def ids(hits: list[patients.PatientHit]) -> list[str]:
    return [hit.id for hit in hits]


@pytest.mark.parametrize(
    ("query", "who"),
    [
        ("maria", "maria"),
        ("MARÍA fern", "maria"),
        ("fernandez", "maria"),
        ("khan", "mohammed"),
        ("moh kh", "mohammed"),
        ("محمد", "arabic"),
        ("عبد", "arabic"),
        ("अर्जुन", "hindi"),
        ("कुमार", "hindi"),
        ("王小", "cjk"),
        ("🌸", "emoji"),
        ("zoe", "emoji"),
        ("o'brien", "obrien"),
        ("sean", "obrien"),
        ("john", "johnson"),
    ],
)
def test_search_finds_names_by_word_prefix_in_any_script(
    staff: Staff, population: dict[str, Patient], query: str, who: str
) -> None:
    hits = patients.search(staff.desk, query)
    assert population[who].id in ids(hits)
    assert len(hits) <= 20


def test_short_prefixes_find_every_matching_name(
    staff: Staff, population: dict[str, Patient]
) -> None:
    assert set(ids(patients.search(staff.desk, "mo"))) == {
        population["mohammed"].id,
        population["mo"].id,
    }
    assert population["mo"].id in ids(patients.search(staff.desk, "m"))


def test_whole_word_matches_come_before_prefix_matches(
    staff: Staff, population: dict[str, Patient]
) -> None:
    hits = patients.search(staff.desk, "mo")
    assert hits[0].id == population["mo"].id
    assert hits[0].match == "name"
    assert hits[1].match == "prefix"


@pytest.mark.parametrize(
    ("query", "who"),
    [
        ("Mohamed Kahn", "mohammed"),  # dropped letter, swapped letters
        ("Fernandes", "maria"),
        ("Jonhson", "johnson"),
        ("Petr", "johnson"),
    ],
)
def test_search_tolerates_typos(
    staff: Staff, population: dict[str, Patient], query: str, who: str
) -> None:
    hits = patients.search(staff.desk, query)
    assert population[who].id in ids(hits)


def test_search_by_phone_fragment_whole_phone_and_patient_number(
    staff: Staff, population: dict[str, Patient]
) -> None:
    khan = population["mohammed"]
    assert ids(patients.search(staff.desk, "1234567"))[0] in {
        khan.id,
        population["arabic"].id,
        population["obrien"].id,
    }
    assert ids(patients.search(staff.desk, "0300 123-4567")) == [khan.id]
    assert ids(patients.search(staff.desk, "300123")) == [khan.id]
    assert patients.search(staff.desk, "0300 123-4567")[0].match == "phone"
    assert ids(patients.search(staff.desk, khan.patient_number.lower()))[0] == khan.id
    assert khan.patient_number == "P-A-000002"
    for typed in ("000002", "2", "a-2", "A2", "p-a-2"):
        hits = patients.search(staff.desk, typed)
        assert hits[0].id == khan.id, typed
        assert hits[0].match == "number"


def test_phones_ending_in_the_digits_come_first(staff: Staff) -> None:
    middle = register(staff, "Middle Digits", phone="5554321999")
    ending = register(staff, "Ending Digits", phone="5559994321")
    hits = patients.search(staff.desk, "4321")
    assert ids(hits) == [ending.id, middle.id]
    assert {h.match for h in hits} == {"phone"}
    assert patients.search(staff.desk, "43") == []  # too short to mean a phone fragment


def test_search_input_is_never_query_syntax(staff: Staff, population: dict[str, Patient]) -> None:
    for nasty in [
        '"',
        "*",
        "NEAR(a b)",
        "a OR b",
        "full_name:x",
        "'); DROP TABLE patient;--",
        "^m",
        "-",
        "()",
        "\x00",
        "a" * 500,
    ]:
        patients.search(staff.desk, nasty)  # must not raise
    assert population["sql"].id in ids(patients.search(staff.desk, "robert"))
    assert population["sql"].id in ids(patients.search(staff.desk, "Robert'); DROP"))
    with staff.desk.reading() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == len(population)


def test_search_respects_the_limit_and_skips_deleted_and_empty_queries(staff: Staff) -> None:
    for n in range(25):
        register(staff, f"Common Name{n}")
    assert len(patients.search(staff.desk, "common")) == 20
    assert len(patients.search(staff.desk, "common", limit=5)) == 5
    assert patients.search(staff.desk, "   ") == []
    with staff.desk.transaction(staff.admin) as session:
        target = session.scalars(select(Patient).where(Patient.full_name == "Common Name3")).one()
        target.deleted = True
    assert "Common Name3" not in [h.full_name for h in patients.search(staff.desk, "name3")]


def test_edits_reach_the_search_index(staff: Staff) -> None:
    patient = register(staff, "Before Rename", phone="5557770000")
    patients.edit(
        staff.desk,
        staff.reception,
        patient.id,
        {"full_name": "After Rename", "phone": "5558880000"},
    )
    assert patient.id not in ids(patients.search(staff.desk, "before"))
    assert patient.id in ids(patients.search(staff.desk, "after"))
    assert patient.id in ids(patients.search(staff.desk, "888000"))
    assert patient.id not in ids(patients.search(staff.desk, "777000"))


def test_search_uses_the_index_and_stops_early(staff: Staff) -> None:
    """The plan reads the FTS index with the limit, not a scan of the patient table."""
    with staff.desk.reading() as session:
        plan = session.execute(
            text("EXPLAIN QUERY PLAN " + patients._NAME_SQL),
            {"query": '"mo"*', "limit": 20},
        ).all()
    details = " | ".join(str(row[-1]) for row in plan)
    assert "VIRTUAL TABLE INDEX" in details
    assert "SCAN p" not in details
    assert "SCAN patient " not in details


def test_typo_search_learns_names_added_after_its_first_use(staff: Staff) -> None:
    first = register(staff, "Alpha Person")
    assert first.id in ids(patients.search(staff.desk, "Alpah"))  # builds the vocabulary
    late = register(staff, "Gwendolyn Hartley")
    assert late.id in ids(patients.search(staff.desk, "Gwendolin Hartly"))
    patients.warm_up_search(staff.desk)  # idempotent


@pytest.mark.parametrize(
    "typed",
    [
        "Bartolomew",  # a letter missing
        "Bartholomeww",  # a letter too many
        "Bartholomaw",  # a wrong letter
        "Bartholmoew",  # two letters swapped
        "Barthollomeww",  # two extra letters in a long word
    ],
)
def test_typo_tolerance_finds_one_typo_per_word(staff: Staff, typed: str) -> None:
    target = register(staff, "Bartholomew Quinn")
    assert ids(patients.search(staff.desk, typed)) == [target.id]
    assert ids(patients.search(staff.desk, typed + " quinn")) == [target.id]


def test_typo_tolerance_has_limits(staff: Staff) -> None:
    target = register(staff, "Bartholomew Quinn")
    assert target.id not in ids(patients.search(staff.desk, "Bertalamiu"))  # 4 edits
    assert target.id not in ids(patients.search(staff.desk, "Quin Smith"))  # every word counts


def test_search_does_not_wait_for_a_writer(staff: Staff) -> None:
    """A long write (say, the sync client applying a batch) must not freeze the search box."""
    known = register(staff, "Steady Searcher")
    started = time.perf_counter()
    with staff.desk.transaction(staff.admin) as session:
        session.add(
            Patient(clinic_id=staff.desk.clinic_id, patient_number="P-Z-1", full_name="Steady New")
        )
        session.flush()  # the write lock is held from here until the end of the block
        hits = ids(patients.search(staff.desk, "steady"))
    assert time.perf_counter() - started < 5  # the busy timeout is 30 s
    assert hits == [known.id]  # the uncommitted row is not visible yet
    assert len(patients.search(staff.desk, "steady")) == 2


def test_rerunning_the_index_ddl_rebuilds_it_without_duplicates(staff: Staff) -> None:
    from clinic_desktop.store.patient_index import create_patient_index

    one = register(staff, "Rebuild Me", phone="5551230000")
    two = register(staff, "Rebuild You", phone="5551239999")
    with staff.desk.engine.begin() as connection:
        create_patient_index(connection)
        suffixes = connection.execute(text("SELECT count(*) FROM patient_phone_suffix")).scalar()
    assert suffixes == 2 * (len("5551230000") - 2)
    assert set(ids(patients.search(staff.desk, "rebuild"))) == {one.id, two.id}
    assert ids(patients.search(staff.desk, "5551230000")) == [one.id]


def test_today_is_the_clinics_local_date_for_birth_dates(staff: Staff) -> None:
    from clinic_desktop.models import ClinicSettings

    with staff.desk.transaction(staff.admin) as session:
        session.scalars(select(ClinicSettings)).one().timezone = "Pacific/Pago_Pago"  # UTC-11
    # 09:30 UTC on 2 March is still 22:30 on 1 March in the clinic.
    with pytest.raises(ValidationError, match="future"):
        register(staff, "Too Early", date_of_birth="2026-03-02")
    born_today = register(staff, "Local Baby", date_of_birth="2026-03-01")
    assert born_today.date_of_birth == date(2026, 3, 1)
    by_age = register(staff, "Age Zero", age_years=0)
    assert by_age.date_of_birth == date(2026, 3, 1)


def test_the_patient_its_outbox_entry_and_its_audit_event_commit_together(
    staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the audit event cannot be written, the registration is not written either."""
    before = counts(staff.desk)

    def broken_audit(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(patients, "record_event", broken_audit)
    with pytest.raises(RuntimeError):
        register(staff, "Half Written")
    assert counts(staff.desk) == before
    monkeypatch.undo()
    assert register(staff, "Fully Written").patient_number == "P-A-000001"  # no number burnt


def test_reading_a_record_does_not_wait_for_a_writer(staff: Staff) -> None:
    """Screens read through ``desk.reading()``; a sync batch holding the write lock must not
    stall them (the store's busy timeout would otherwise freeze the window for up to 30 s)."""
    known = register(staff, "Patient Reader")
    started = time.perf_counter()
    with staff.desk.transaction(staff.admin) as session:
        session.get(Patient, known.id).phone = "+15550001111"  # type: ignore[union-attr]
        session.flush()  # the write lock is held from here until the end of the block
        with staff.desk.reading() as reader:
            seen = reader.get(Patient, known.id)
            assert seen is not None
            phone_during_write = seen.phone
    assert time.perf_counter() - started < 5
    assert phone_during_write != "+15550001111"  # the uncommitted change is not visible
