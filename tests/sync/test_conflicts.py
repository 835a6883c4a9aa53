"""Three desks edit one patient while apart; the merge follows the policy (DESIGN.md 5).

Different fields all survive; the same field edited to different values goes to the later
clock, and the losing value is kept in a conflict record an admin can review and restore;
the same field edited to the same value is no conflict at all.
"""

from __future__ import annotations

import time

from clinic_desktop.models import ConflictRecord, Patient
from clinic_desktop.services import patients, sync_admin
from tests.sync.conftest import ADMIN, DeskHandle, SharedClinic, snapshot_rows


def _patient(handle: DeskHandle, patient_id: str) -> dict[str, object]:
    return snapshot_rows(handle, "patient")[patient_id]


def test_concurrent_edits_merge_field_by_field_with_conflict_records(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    rita = shared.staff.receptionist
    one, two, three = (shared.new_desk(f"Front {n}", rita) for n in (1, 2, 3))
    desks.extend([one, two, three])
    _three_desks_edit_one_patient(shared, one, two, three)


def test_the_same_merge_policy_holds_on_postgresql(pg_clinic: SharedClinic) -> None:
    rita = pg_clinic.staff.receptionist
    one, two, three = (pg_clinic.new_desk(f"Front {n}", rita) for n in (1, 2, 3))
    _three_desks_edit_one_patient(pg_clinic, one, two, three)


def _three_desks_edit_one_patient(
    shared: SharedClinic, one: DeskHandle, two: DeskHandle, three: DeskHandle
) -> None:
    rita = shared.staff.receptionist
    patient = patients.register(
        one.desk,
        one.actors[rita],
        patients.PatientDraft(full_name="Mira Sol", sex="female", age_years=29, phone="0700000000"),
    )
    one.sync()
    two.sync()
    three.sync()

    # Nobody syncs while they edit (the same as being offline); clocks advance in this order.
    patients.edit(one.desk, one.actors[rita], patient.id, {"phone": "0711111111"})
    time.sleep(0.01)
    patients.edit(
        two.desk, two.actors[rita], patient.id, {"address": "2 Hill Road", "blood_group": "O+"}
    )
    time.sleep(0.01)
    patients.edit(
        three.desk,
        three.actors[rita],
        patient.id,
        {"phone": "0733333333", "allergies": "penicillin", "blood_group": "O+"},
    )

    # Pushed in a different order than edited: the clock decides, not the arrival.
    for handle in (three, one, two):
        assert handle.sync().rejected == 0
    for handle in (one, two, three):
        handle.sync()

    merged = _patient(one, patient.id)
    assert merged["phone"] == "0733333333"  # later clock wins the contested field
    assert merged["address"] == "2 Hill Road"
    assert merged["allergies"] == "penicillin"
    assert merged["blood_group"] == "O+"
    assert _patient(two, patient.id) == merged
    assert _patient(three, patient.id) == merged

    records = [
        r for r in snapshot_rows(one, "conflict_record").values() if r["row_id"] == patient.id
    ]
    assert [r["field"] for r in records] == ["phone"]  # equal values are no conflict
    assert records[0]["lost_value"]["v"] == "0711111111"
    assert records[0]["kept_value"]["v"] == "0733333333"
    assert records[0]["resolution"] == "open"
    assert snapshot_rows(two, "conflict_record") == snapshot_rows(one, "conflict_record")

    # The admin reviews it on their desk and puts the lost number back.
    admin_desk = shared.admin_desk
    admin = admin_desk.actors[ADMIN]
    admin_desk.sync()
    open_ones = sync_admin.list_conflicts(admin_desk.desk, admin, row_id=patient.id)
    assert [c.field for c in open_ones] == ["phone"]
    sync_admin.restore_conflict(admin_desk.desk, admin, open_ones[0].id, note="called patient")
    assert admin_desk.sync().rejected == 0
    for handle in (one, two, three):
        handle.sync()
        with handle.desk.reading() as session:
            seen = session.get(Patient, patient.id)
            record = session.get(ConflictRecord, open_ones[0].id)
            assert seen is not None
            assert record is not None
            assert seen.phone == "0711111111"
            assert record.resolution == "restored"
    assert sync_admin.list_conflicts(admin_desk.desk, admin, row_id=patient.id) == []


def test_duplicates_registered_on_two_offline_desks_are_found_and_merged_by_a_person(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    rita = shared.staff.receptionist
    left, right = shared.new_desk("Left", rita), shared.new_desk("Right", rita)
    desks.extend([left, right])
    draft = patients.PatientDraft(
        full_name="Tomasz Nowak", sex="male", date_of_birth="1980-03-04", phone="0799123456"
    )
    first = patients.register(left.desk, left.actors[rita], draft)
    second = patients.register(right.desk, right.actors[rita], draft)
    left.sync()
    right.sync()
    left.sync()

    admin_desk = shared.admin_desk
    admin = admin_desk.actors[ADMIN]
    admin_desk.sync()
    pairs = [
        p
        for p in sync_admin.find_cross_desk_duplicates(admin_desk.desk, admin)
        if {p.first_id, p.second_id} == {first.id, second.id}
    ]
    assert len(pairs) == 1  # found, but nothing merged on its own
    assert _patient(left, second.id)["merged_into"] is None

    sync_admin.merge_duplicate(admin_desk.desk, admin, first.id, second.id)
    assert admin_desk.sync().rejected == 0
    left.sync()
    right.sync()
    assert _patient(right, second.id)["merged_into"] == first.id
    assert _patient(left, second.id)["merged_into"] == first.id
    assert not any(
        {p.first_id, p.second_id} == {first.id, second.id}
        for p in sync_admin.find_cross_desk_duplicates(admin_desk.desk, admin)
    )


def test_an_admin_can_keep_the_merge_result(shared: SharedClinic, desks: list[DeskHandle]) -> None:
    rita = shared.staff.receptionist
    one, two = shared.new_desk("Front 1", rita), shared.new_desk("Front 2", rita)
    desks.extend([one, two])
    patient = patients.register(
        one.desk, one.actors[rita], patients.PatientDraft(full_name="Pia Holm", sex="female")
    )
    one.sync()
    two.sync()
    patients.edit(one.desk, one.actors[rita], patient.id, {"address": "1 First Street"})
    time.sleep(0.01)
    patients.edit(two.desk, two.actors[rita], patient.id, {"address": "2 Second Street"})
    two.sync()
    one.sync()

    admin_desk = shared.admin_desk
    admin = admin_desk.actors[ADMIN]
    admin_desk.sync()
    [conflict] = sync_admin.list_conflicts(admin_desk.desk, admin, row_id=patient.id)
    assert (conflict.kept_value, conflict.lost_value) == ("2 Second Street", "1 First Street")
    sync_admin.keep_conflict(admin_desk.desk, admin, conflict.id, note="checked")
    assert admin_desk.sync().rejected == 0
    one.sync()
    record = snapshot_rows(one, "conflict_record")[conflict.id]
    assert (record["resolution"], record["note"]) == ("kept", "checked")
    assert _patient(one, patient.id)["address"] == "2 Second Street"
    assert sync_admin.list_conflicts(admin_desk.desk, admin, row_id=patient.id) == []
