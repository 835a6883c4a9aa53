"""Push: bad input changes nothing; each mutation applies once; the conflict policy per entity."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from clinic_desktop.sync import protocol
from tests.server.conftest import World, hlc, mutation, patient_fields


def _new_patient(world: World, number: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    row_id = str(uuid.uuid4())
    result = world.admin_on["A"].push_one(
        mutation("patient", row_id, patient_fields(world.clinic_id, row_id, number, **extra))
    )
    assert result["status"] == "accepted", result
    return row_id, result


def _visible_patients(world: World) -> set[str]:
    changes, _ = world.admin_on["A"].pull_all()
    return {c["row"]["id"] for c in changes if c["entity"] == "patient"}


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"mutations": [', 400),
        (b"not json at all", 400),
        (b'{"mutations": "nope"}', 422),
        (b'{"mutations": [], "extra": 1}', 422),
        (b'{"mutations": [{"mutation_id": "m", "entity": "patient"}]}', 422),
        (
            b'{"mutations": [{"mutation_id": "m", "entity": "spaceship", "row_id": "r", "op": '
            b'"insert", "fields": {}, "base_version": 0, "hlc": "x"}]}',
            422,
        ),
        (
            b'{"mutations": [{"mutation_id": "m", "entity": "patient", "row_id": "r", "op": '
            b'"insert", "fields": {}, "base_version": "zero", "hlc": "x"}]}',
            422,
        ),
        (
            b'{"mutations": [{"mutation_id": "m", "entity": "patient", "row_id": "r", "op": '
            b'"delete", "fields": {}, "base_version": 0, "hlc": "x"}]}',
            422,
        ),
    ],
)
def test_malformed_push_is_a_clear_4xx_and_changes_nothing(
    world: World, body: bytes, status: int
) -> None:
    before = _visible_patients(world)
    headers = world.admin_on["A"].headers() | {"Content-Type": "application/json"}
    response = world.http.post("/api/v1/sync/push", content=body, headers=headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail
    assert _visible_patients(world) == before


def test_oversized_batch_is_refused_whole(world: World) -> None:
    admin = world.admin_on["A"]
    mutations = []
    for n in range(protocol.MAX_BATCH + 1):
        row_id = str(uuid.uuid4())
        mutations.append(
            mutation("patient", row_id, patient_fields(world.clinic_id, row_id, f"P-A-9{n:05d}"))
        )
    response = world.http.post(
        "/api/v1/sync/push", json={"mutations": mutations}, headers=admin.headers()
    )
    assert response.status_code == 422
    assert "500" in response.json()["detail"]
    assert not _visible_patients(world)


def test_oversized_body_is_413(world: World) -> None:
    limit = world.server.settings.max_body_bytes
    response = world.http.post(
        "/api/v1/sync/push",
        content=b"{" + b" " * limit + b"}",
        headers=world.admin_on["A"].headers() | {"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"full_name": 42}, "must be text"),
        ({"full_name": "x" * 201}, "too long"),
        ({"full_name": "nul\x00byte"}, "NUL"),
        ({"date_of_birth": "1990-02-30"}, "date"),
        ({"dob_estimated": "yes"}, "true or false"),
        ({"not_a_column": 1}, "Unknown field"),
        ({"full_name": None}, "must not be empty"),
    ],
)
def test_wrong_field_values_are_rejected_per_mutation_with_a_reason(
    world: World, fields: dict[str, Any], words: str
) -> None:
    row_id = str(uuid.uuid4())
    good_id = str(uuid.uuid4())
    admin = world.admin_on["A"]
    bad, good = admin.push(
        mutation("patient", row_id, patient_fields(world.clinic_id, row_id, "P-A-000001") | fields),
        mutation("patient", good_id, patient_fields(world.clinic_id, good_id, "P-A-000002")),
    )
    assert bad["status"] == "rejected"
    assert words in bad["reason"]
    assert good["status"] == "accepted"
    assert _visible_patients(world) == {good_id}


def test_out_of_range_integers_and_naive_datetimes_are_rejected(world: World) -> None:
    admin = world.admin_on["A"]
    patient_id, _ = _new_patient(world, "P-A-000001")
    visit_id = str(uuid.uuid4())
    base = _visit_fields(world, visit_id, patient_id, world.admin_id, "A-001")
    huge = admin.push_one(mutation("visit", visit_id, base | {"pulse": 2**40}))
    assert huge["status"] == "rejected"
    assert "out of range" in huge["reason"]
    naive = admin.push_one(mutation("visit", visit_id, base | {"arrived_at": "2024-01-01T10:00"}))
    assert naive["status"] == "rejected"
    assert "offset" in naive["reason"]


# --- exactly once -------------------------------------------------------------------------


def test_replayed_batch_gets_the_same_answers_and_applies_once(world: World) -> None:
    admin = world.admin_on["A"]
    ids = [str(uuid.uuid4()) for _ in range(3)]
    batch = [
        mutation("patient", ids[0], patient_fields(world.clinic_id, ids[0], "P-A-000001")),
        mutation("patient", ids[1], patient_fields(world.clinic_id, ids[1], "P-A-000002")),
        mutation("patient", ids[2], patient_fields(world.clinic_id, ids[2], "P-A-000001")),
    ]
    first = admin.push(*batch)
    assert [r["status"] for r in first] == ["accepted", "accepted", "rejected"]
    _, cursor = admin.pull_all()
    second = admin.push(*batch)
    assert second == first
    changes, _ = admin.pull_all(cursor)
    assert changes == []  # nothing new was applied
    # A mutation repeated inside one batch is answered once, identically.
    dup = mutation("patient", ids[0], {"phone": "+15550199"}, op="update", base_version=1)
    a, b = admin.push(dup, dup)
    assert a == b


def test_an_update_of_a_row_the_server_never_got_is_rejected(world: World) -> None:
    result = world.admin_on["A"].push_one(
        mutation("patient", str(uuid.uuid4()), {"phone": "1"}, op="update", base_version=3)
    )
    assert result["status"] == "rejected"
    assert "no such patient" in result["reason"]


def test_references_must_exist_in_the_same_clinic(world: World) -> None:
    visit_id = str(uuid.uuid4())
    fields = _visit_fields(world, visit_id, str(uuid.uuid4()), world.admin_id, "A-001")
    result = world.admin_on["A"].push_one(mutation("visit", visit_id, fields))
    assert result["status"] == "rejected"
    assert "patient_id" in result["reason"]


# --- field merge --------------------------------------------------------------------------


def test_concurrent_edits_merge_field_by_field_and_the_loser_is_kept_for_review(
    world: World,
) -> None:
    world.enrol("B")
    world.enrol("C")
    on_a, on_b, on_c = (world.admin_on[d] for d in "ABC")
    patient_id, created = _new_patient(world, "P-A-000001")
    base = created["version"]
    t = 1_900_000_000_000
    # Offline: B changes phone and address, C changes phone (later) and name.
    r_b = on_b.push_one(
        mutation(
            "patient",
            patient_id,
            {"phone": "+15550111", "address": "1 Elm St"},
            op="update",
            base_version=base,
            stamp=hlc("B", t),
        )
    )
    assert r_b["status"] == "accepted"
    r_c = on_c.push_one(
        mutation(
            "patient",
            patient_id,
            {"phone": "+15550222", "full_name": "Amina Y. Yusuf"},
            op="update",
            base_version=base,
            stamp=hlc("C", t + 5),
        )
    )
    assert r_c["status"] == "merged"
    row = r_c["row"]
    assert row["phone"] == "+15550222"  # later clock wins the field
    assert row["address"] == "1 Elm St"  # untouched by C: B's value stays
    assert row["full_name"] == "Amina Y. Yusuf"
    # An even older edit of the phone from A loses, and the loss is recorded too.
    r_a = on_a.push_one(
        mutation(
            "patient",
            patient_id,
            {"phone": "+15550333"},
            op="update",
            base_version=base,
            stamp=hlc("A", t - 5),
        )
    )
    assert r_a["status"] == "merged"
    assert r_a["row"]["phone"] == "+15550222"
    changes, _ = on_a.pull_all()
    records = [c["row"] for c in changes if c["entity"] == "conflict_record"]
    phone = sorted(
        (r for r in records if r["row_id"] == patient_id and r["field"] == "phone"),
        key=lambda r: r["lost_value"]["v"],
    )
    assert [(r["kept_value"]["v"], r["lost_value"]["v"]) for r in phone] == [
        ("+15550222", "+15550111"),
        ("+15550222", "+15550333"),
    ]
    assert all(r["resolution"] == "open" for r in phone)
    assert not [r for r in records if r["field"] in ("address", "full_name")]


def test_conflict_records_are_server_made_and_only_an_admin_reviews_them(world: World) -> None:
    world.add_user("rene", "receptionist")
    rene = world.login("rene", desk="A")
    record_id = str(uuid.uuid4())
    made = rene.push_one(mutation("conflict_record", record_id, {"id": record_id}))
    assert made["status"] == "rejected"
    world.enrol("B")
    patient_id, created = _new_patient(world, "P-A-000001")
    world.admin_on["B"].push_one(
        mutation(
            "patient", patient_id, {"phone": "1"}, op="update", base_version=created["version"]
        )
    )
    world.admin_on["A"].push_one(
        mutation(
            "patient",
            patient_id,
            {"phone": "2"},
            op="update",
            base_version=created["version"],
            stamp=hlc("A", 1),
        )
    )
    changes, _ = world.admin_on["A"].pull_all()
    record = next(c["row"] for c in changes if c["entity"] == "conflict_record")
    by_rene = rene.push_one(
        mutation(
            "conflict_record", record["id"], {"resolution": "kept"}, op="update", base_version=1
        )
    )
    assert by_rene["status"] == "rejected"
    by_admin = world.admin_on["A"].push_one(
        mutation(
            "conflict_record",
            record["id"],
            {"resolution": "kept", "note": "checked with patient"},
            op="update",
            base_version=record["version"],
        )
    )
    assert by_admin["status"] == "accepted"
    assert by_admin["row"]["resolution"] == "kept"
    sneaky = world.admin_on["A"].push_one(
        mutation(
            "conflict_record",
            record["id"],
            {"lost_value": {"v": "x"}},
            op="update",
            base_version=by_admin["version"],
        )
    )
    assert sneaky["status"] == "rejected"


# --- visits -------------------------------------------------------------------------------


def _visit_fields(
    world: World, visit_id: str, patient_id: str, doctor_id: str, label: str
) -> dict[str, Any]:
    return {
        "id": visit_id,
        "clinic_id": world.clinic_id,
        "patient_id": patient_id,
        "doctor_id": doctor_id,
        "day": date.today().isoformat(),
        "desk_code": label.split("-")[0],
        "token_seq": int(label.split("-")[1]),
        "token_label": label,
        "status": "waiting",
        "arrived_at": datetime.now(UTC).isoformat(),
    }


def test_visit_status_only_moves_forward(world: World) -> None:
    doctor_id = world.add_user("dr.lee", "doctor")
    world.add_user("rosa", "receptionist")
    rosa = world.login("rosa", desk="A")
    lee = world.login("dr.lee", desk="A")
    patient_id, _ = _new_patient(world, "P-A-000001")
    visit_id = str(uuid.uuid4())
    made = rosa.push_one(
        mutation("visit", visit_id, _visit_fields(world, visit_id, patient_id, doctor_id, "A-001"))
    )
    assert made["status"] == "accepted"
    done = lee.push_one(
        mutation(
            "visit",
            visit_id,
            {"status": "completed", "advice": "rest"},
            op="update",
            base_version=made["version"],
        )
    )
    assert done["status"] == "accepted"
    back = rosa.push_one(
        mutation("visit", visit_id, {"status": "called"}, op="update", base_version=made["version"])
    )
    assert back["status"] == "rejected"
    assert "cannot change to called" in back["reason"]
    mixed = rosa.push_one(
        mutation(
            "visit",
            visit_id,
            {"status": "waiting", "priority": 1},
            op="update",
            base_version=made["version"],
        )
    )
    assert mixed["status"] == "merged"
    assert mixed["row"]["status"] == "completed"
    assert mixed["row"]["priority"] == 1
    # The receptionist may not write the doctor's part, nor another doctor theirs.
    advice = rosa.push_one(
        mutation("visit", visit_id, {"advice": "x"}, op="update", base_version=done["version"])
    )
    assert advice["status"] == "rejected"
    other_doctor = world.add_user("dr.kim", "doctor")
    assert other_doctor
    kim = world.login("dr.kim", desk="A")
    theirs = kim.push_one(
        mutation("visit", visit_id, {"advice": "x"}, op="update", base_version=done["version"])
    )
    assert theirs["status"] == "rejected"


def test_token_label_clash_is_rejected_never_renumbered(world: World) -> None:
    doctor_id = world.add_user("dr.lee", "doctor")
    p1, _ = _new_patient(world, "P-A-000001")
    admin = world.admin_on["A"]
    v1, v2 = str(uuid.uuid4()), str(uuid.uuid4())
    first = admin.push_one(mutation("visit", v1, _visit_fields(world, v1, p1, doctor_id, "A-001")))
    second = admin.push_one(mutation("visit", v2, _visit_fields(world, v2, p1, doctor_id, "A-001")))
    assert first["status"] == "accepted"
    assert second["status"] == "rejected"
    assert "Token A-001" in second["reason"]
    assert first["row"]["token_label"] == "A-001"


def test_patient_number_clash_is_rejected(world: World) -> None:
    _new_patient(world, "P-A-000007")
    other = str(uuid.uuid4())
    result = world.admin_on["A"].push_one(
        mutation("patient", other, patient_fields(world.clinic_id, other, "P-A-000007"))
    )
    assert result["status"] == "rejected"
    assert "P-A-000007" in result["reason"]


# --- prescriptions, bills, payments, audit -------------------------------------------------


def _prescription(world: World, doctor: Any, doctor_id: str, patient_id: str) -> tuple[str, str]:
    visit_id = str(uuid.uuid4())
    made = world.admin_on["A"].push_one(
        mutation("visit", visit_id, _visit_fields(world, visit_id, patient_id, doctor_id, "A-050"))
    )
    assert made["status"] == "accepted", made
    rx_id, item_id = str(uuid.uuid4()), str(uuid.uuid4())
    results = doctor.push(
        mutation(
            "prescription",
            rx_id,
            {
                "id": rx_id,
                "visit_id": visit_id,
                "patient_id": patient_id,
                "doctor_id": doctor_id,
                "status": "draft",
            },
        ),
        mutation(
            "prescription_item",
            item_id,
            {"id": item_id, "prescription_id": rx_id, "medicine_name": "Paracetamol"},
        ),
    )
    assert [r["status"] for r in results] == ["accepted", "accepted"], results
    return rx_id, item_id


def test_signed_prescription_is_frozen_and_only_its_doctor_writes_it(world: World) -> None:
    doctor_id = world.add_user("dr.lee", "doctor")
    lee = world.login("dr.lee", desk="A")
    patient_id, _ = _new_patient(world, "P-A-000001")
    rx_id, item_id = _prescription(world, lee, doctor_id, patient_id)
    signed = lee.push_one(
        mutation(
            "prescription", rx_id, {"status": "signed", "notes": "ok"}, op="update", base_version=1
        )
    )
    assert signed["status"] in ("accepted", "merged"), signed
    edit = lee.push_one(
        mutation(
            "prescription", rx_id, {"notes": "changed"}, op="update", base_version=signed["version"]
        )
    )
    assert edit["status"] == "rejected"
    assert "signed" in edit["reason"]
    item_edit = lee.push_one(
        mutation("prescription_item", item_id, {"dose": "2 tabs"}, op="update", base_version=1)
    )
    assert item_edit["status"] == "rejected"
    world.enrol("B")
    lee_b = world.login("dr.lee", desk="B")
    extra = str(uuid.uuid4())
    late_item = lee_b.push_one(
        mutation(
            "prescription_item",
            extra,
            {"id": extra, "prescription_id": rx_id, "medicine_name": "Ibuprofen"},
        )
    )
    assert late_item["status"] == "rejected"
    kim_id = world.add_user("dr.kim", "doctor")
    assert kim_id
    kim = world.login("dr.kim", desk="A")
    theirs = kim.push_one(
        mutation(
            "prescription",
            str(uuid.uuid4()),
            {"visit_id": "x", "patient_id": patient_id, "doctor_id": doctor_id},
        )
    )
    assert theirs["status"] == "rejected"


def _bill(world: World, billing: Any, patient_id: str, status: str = "draft") -> tuple[str, str]:
    bill_id, item_id = str(uuid.uuid4()), str(uuid.uuid4())
    results = billing.push(
        mutation(
            "bill",
            bill_id,
            {
                "id": bill_id,
                "patient_id": patient_id,
                "desk_code": "A",
                "currency": "USD",
                "status": "draft",
                "subtotal_minor": 5000,
                "total_minor": 5000,
            },
        ),
        mutation(
            "bill_item",
            item_id,
            {
                "id": item_id,
                "bill_id": bill_id,
                "description": "Consultation",
                "unit_price_minor": 5000,
                "amount_minor": 5000,
            },
        ),
    )
    assert [r["status"] for r in results] == ["accepted", "accepted"], results
    return bill_id, item_id


def test_issued_bill_and_its_items_are_frozen(world: World) -> None:
    world.add_user("bea", "billing")
    bea = world.login("bea", desk="A")
    patient_id, _ = _new_patient(world, "P-A-000001")
    bill_id, item_id = _bill(world, bea, patient_id)
    issued = bea.push_one(
        mutation(
            "bill",
            bill_id,
            {"status": "issued", "invoice_number": "INV-A-000001"},
            op="update",
            base_version=1,
        )
    )
    assert issued["status"] == "accepted"
    for change in ({"total_minor": 1}, {"status": "draft"}, {"invoice_number": "INV-A-000009"}):
        result = bea.push_one(
            mutation("bill", bill_id, change, op="update", base_version=issued["version"])
        )
        assert result["status"] == "rejected", change
    item = bea.push_one(
        mutation("bill_item", item_id, {"amount_minor": 1}, op="update", base_version=1)
    )
    assert item["status"] == "rejected"
    assert "frozen" in item["reason"]
    paid = bea.push_one(
        mutation("bill", bill_id, {"status": "paid"}, op="update", base_version=issued["version"])
    )
    assert paid["status"] == "accepted"


def test_invoice_number_clash_is_rejected(world: World) -> None:
    world.add_user("bea", "billing")
    bea = world.login("bea", desk="A")
    patient_id, _ = _new_patient(world, "P-A-000001")
    b1, _ = _bill(world, bea, patient_id)
    b2, _ = _bill(world, bea, patient_id)
    ok = bea.push_one(
        mutation(
            "bill",
            b1,
            {"invoice_number": "INV-A-000001", "status": "issued"},
            op="update",
            base_version=1,
        )
    )
    clash = bea.push_one(
        mutation(
            "bill",
            b2,
            {"invoice_number": "INV-A-000001", "status": "issued"},
            op="update",
            base_version=1,
        )
    )
    assert ok["status"] == "accepted"
    assert clash["status"] == "rejected"
    assert "INV-A-000001" in clash["reason"]


def test_payments_are_append_only_and_idempotent_by_id(world: World) -> None:
    bea_id = world.add_user("bea", "billing")
    bea = world.login("bea", desk="A")
    patient_id, _ = _new_patient(world, "P-A-000001")
    bill_id, _ = _bill(world, bea, patient_id)
    pay_id = str(uuid.uuid4())
    fields = {
        "id": pay_id,
        "bill_id": bill_id,
        "method": "cash",
        "amount_minor": 5000,
        "currency": "USD",
        "received_at": datetime.now(UTC).isoformat(),
        "received_by": bea_id,
    }
    first = bea.push_one(mutation("payment", pay_id, fields))
    assert first["status"] == "accepted"
    again = bea.push_one(mutation("payment", pay_id, fields))  # new mutation id, same row
    assert again["status"] == "accepted"
    assert again["version"] == first["version"]
    changed = bea.push_one(mutation("payment", pay_id, fields | {"amount_minor": 1}))
    assert changed["status"] == "rejected"
    edit = bea.push_one(
        mutation("payment", pay_id, {"amount_minor": 1}, op="update", base_version=first["version"])
    )
    assert edit["status"] == "rejected"
    assert "never change" in edit["reason"]


def test_a_workstation_cannot_push_an_online_payment(world: World) -> None:
    """Only the server records Stripe payments (on confirm or webhook), so no money counts twice."""
    bea_id = world.add_user("bea", "billing")
    bea = world.login("bea", desk="A")
    patient_id, _ = _new_patient(world, "P-A-000001")
    bill_id, _ = _bill(world, bea, patient_id)
    pay_id = str(uuid.uuid4())
    fields = {
        "id": pay_id,
        "bill_id": bill_id,
        "method": "stripe",
        "amount_minor": 5000,
        "currency": "USD",
        "received_at": datetime.now(UTC).isoformat(),
        "received_by": bea_id,
        "reference": "cs_test_forged",
    }
    answer = bea.push_one(mutation("payment", pay_id, fields))
    assert answer["status"] == "rejected"
    assert "recorded by the server" in answer["reason"]


def test_audit_events_are_own_and_append_only(world: World) -> None:
    user_id = world.add_user("rosa", "receptionist")
    rosa = world.login("rosa", desk="A")
    event_id = str(uuid.uuid4())
    event = {
        "id": event_id,
        "seq": 1,
        "occurred_at": hlc(),
        "actor_id": user_id,
        "desk_code": "A",
        "action": "patient.open",
        "entity": "patient",
        "entity_id": str(uuid.uuid4()),
        "detail": "",
        "prev_hash": "0" * 64,
        "hash": "a" * 64,
    }
    assert rosa.push_one(mutation("audit_event", event_id, event))["status"] == "accepted"
    other_id = str(uuid.uuid4())
    forged = rosa.push_one(
        mutation(
            "audit_event", other_id, event | {"id": other_id, "seq": 2, "actor_id": world.admin_id}
        )
    )
    assert forged["status"] == "rejected"
    edit = rosa.push_one(
        mutation("audit_event", event_id, {"detail": "x"}, op="update", base_version=1)
    )
    assert edit["status"] == "rejected"


def test_actor_must_have_signed_in_on_the_pushing_workstation(world: World) -> None:
    doctor_id = world.add_user("dr.lee", "doctor")
    world.add_user("rosa", "receptionist")
    rosa = world.login("rosa", desk="A")
    patient_id, _ = _new_patient(world, "P-A-000001")
    visit_id = str(uuid.uuid4())
    world.admin_on["A"].push_one(
        mutation("visit", visit_id, _visit_fields(world, visit_id, patient_id, doctor_id, "A-001"))
    )
    rx = {
        "id": str(uuid.uuid4()),
        "visit_id": visit_id,
        "patient_id": patient_id,
        "doctor_id": doctor_id,
    }
    # The doctor never signed in on desk A: the receptionist's desk cannot vouch for them.
    claimed = rosa.push_one(mutation("prescription", rx["id"], rx, actor_id=doctor_id))
    assert claimed["status"] == "rejected"
    assert "not signed in on this workstation" in claimed["reason"]
    world.login("dr.lee", desk="A")  # the doctor signs in on desk A once
    vouched = rosa.push_one(mutation("prescription", rx["id"], rx, actor_id=doctor_id))
    assert vouched["status"] == "accepted"
    assert vouched["row"]["updated_by"] == doctor_id


def test_text_postgres_cannot_store_is_refused_not_a_500(world: World) -> None:
    admin = world.admin_on["A"]
    row_id = str(uuid.uuid4())
    fields = patient_fields(world.clinic_id, row_id, "P-A-000001")
    body = (
        '{"mutations": [{"mutation_id": "%s", "entity": "patient", "row_id": "%s", "op": '
        '"insert", "fields": %s, "base_version": 0, "hlc": "%s"}]}'
    )
    import json as _json

    surrogate = _json.dumps(fields | {"full_name": "x"}).replace('"x"', '"bad \\ud800 text"')
    listed = _json.dumps(fields).replace("}", ', "notes": "ok"}')
    cases = [
        body % (uuid.uuid4(), row_id, surrogate, hlc()),
        body % (uuid.uuid4(), row_id, listed, "000001732547123456-000000-a\\u0000b"),
        body % ("bad\\ud800id", row_id, listed, hlc()),
    ]
    headers = admin.headers() | {"Content-Type": "application/json"}
    for text in cases:
        response = world.http.post("/api/v1/sync/push", content=text.encode(), headers=headers)
        assert response.status_code < 500, response.text
        if response.status_code == 200:
            assert response.json()["results"][0]["status"] == "rejected"
    assert not _visible_patients(world)


@pytest.mark.parametrize(
    ("entity", "fields", "words"),
    [
        ("patient", {"sex": "robot"}, "'sex' must be one of"),
        ("user_account", {"roles": ["superuser"]}, "Roles must be among"),
    ],
)
def test_values_outside_a_closed_vocabulary_are_rejected(
    world: World, entity: str, fields: dict[str, Any], words: str
) -> None:
    row_id = str(uuid.uuid4())
    base = (
        patient_fields(world.clinic_id, row_id, "P-A-000001")
        if entity == "patient"
        else {"id": row_id, "username": "zed", "full_name": "Zed", "password_hash": "x"}
    )
    result = world.admin_on["A"].push_one(mutation(entity, row_id, base | fields))
    assert result["status"] == "rejected"
    assert words in result["reason"]
