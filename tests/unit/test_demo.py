"""The demo clinic, loaded once through the real command line into a temporary data folder."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from clinic_desktop import demo
from clinic_desktop.models import (
    Bill,
    BillItem,
    ClinicSettings,
    OutboxEntry,
    Patient,
    Payment,
    Prescription,
    PrescriptionItem,
    PriceItem,
    User,
    Visit,
)
from clinic_desktop.models.serialize import row_fields
from clinic_desktop.services import billing, catalogues, consultation, patients, queue, users
from clinic_desktop.services.audit import verify_chain
from clinic_desktop.services.billing import derive_status
from clinic_desktop.services.context import Desk
from clinic_desktop.store.open import OpenedStore, desk_for, open_store


@dataclass
class Loaded:
    data_dir: Path
    stdout: str
    store: OpenedStore
    desk: Desk


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # conftest points keyring at keyrings.alt's file backend under a temporary XDG_DATA_HOME;
    # the child inherits both, so this process can open what the child made.
    env = dict(os.environ)
    assert env["PYTHON_KEYRING_BACKEND"].startswith("keyrings.alt.file")
    assert env["XDG_DATA_HOME"].startswith(tempfile.gettempdir())
    return subprocess.run(
        [sys.executable, "-m", "clinic_desktop.app", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def loaded(demo_clinic: tuple[Path, str]) -> Iterator[Loaded]:
    data_dir, stdout = demo_clinic
    store = open_store(data_dir)
    desk = desk_for(store)
    assert desk is not None
    yield Loaded(data_dir, stdout, store, desk)
    store.close()


def _count(desk: Desk, model: type, *where: Any) -> int:
    with desk.reading() as session:
        query = select(func.count()).select_from(model).where(*where)
        return int(session.scalar(query) or 0)


# --- the command ------------------------------------------------------------------------------


def test_load_demo_prints_every_sign_in(loaded: Loaded) -> None:
    out = loaded.stdout
    for user in demo.DEMO_USERS:
        line = next(line for line in out.splitlines() if line.split()[:1] == [user.username])
        assert user.password in line
        assert ", ".join(user.roles) in line
    assert {r for u in demo.DEMO_USERS for r in u.roles} == {
        "admin",
        "receptionist",
        "doctor",
        "billing",
    }


def test_demo_passwords_really_sign_in(loaded: Loaded) -> None:
    for username in ("admin", "reception", "billing", "dr.chen"):
        spec = next(u for u in demo.DEMO_USERS if u.username == username)
        actor = users.sign_in(loaded.desk, spec.username, spec.password)
        assert actor.roles == frozenset(spec.roles)


def test_loading_twice_is_refused_without_a_traceback(loaded: Loaded) -> None:
    before = _count(loaded.desk, Patient)
    again = _cli("--data-dir", str(loaded.data_dir), "--load-demo")
    assert again.returncode == 1
    assert "already holds a clinic" in again.stderr
    assert "Traceback" not in again.stderr
    assert _count(loaded.desk, Patient) == before


def _grep_count(needles: set[bytes], file: Path, tmp: Path) -> int:
    """How many lines of ``file`` hold any needle, by ``grep -F`` (Aho-Corasick: one pass
    over the file for thousands of fixed strings, byte-wise under LC_ALL=C)."""
    patterns = tmp / "needles.txt"
    patterns.write_bytes(b"\n".join(sorted(needles)) + b"\n")
    result = subprocess.run(
        ["grep", "-F", "-a", "-c", "-f", str(patterns), str(file)],
        capture_output=True,
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return int(result.stdout.strip() or 0)


def test_the_raw_files_contain_no_demo_patient_data(loaded: Loaded, tmp_path: Path) -> None:
    with loaded.desk.reading() as session:
        rows = session.execute(select(Patient.full_name, Patient.phone, Patient.address)).all()
    needles = {value.encode() for row in rows for value in row if len(value.encode()) >= 6}
    needles |= {u.full_name.encode() for u in demo.DEMO_USERS}
    needles.add(demo.CLINIC_NAME.encode())
    assert len(needles) > 5000
    assert not any(b"\n" in n for n in needles)
    files = [p for p in loaded.data_dir.rglob("*") if p.is_file() and p.suffix != ".json"]
    assert any(p.name.endswith(".db") for p in files)
    for file in files:
        assert _grep_count(needles, file, tmp_path) == 0, f"{file.name} holds demo data in clear"

    # The same check does see clear text: plant one name in a copy of the store.
    planted = tmp_path / "planted.db"
    raw = (loaded.data_dir / "clinic-desk.db").read_bytes()
    name = rows[1234][0].encode()
    planted.write_bytes(raw[:100_000] + name + raw[100_000:])
    assert _grep_count(needles, planted, tmp_path) == 1


# --- what is in the clinic --------------------------------------------------------------------


def test_clinic_settings_are_filled_for_printed_documents(loaded: Loaded) -> None:
    with loaded.desk.reading() as session:
        settings = session.scalars(select(ClinicSettings)).one()
        assert (settings.name, settings.address, settings.phone, settings.currency) == (
            demo.CLINIC_NAME,
            demo.CLINIC_ADDRESS,
            demo.CLINIC_PHONE,
            "USD",
        )


def test_one_account_per_role_and_five_doctors_with_fees(loaded: Loaded) -> None:
    with loaded.desk.reading() as session:
        accounts = [(u.id, list(u.roles)) for u in session.scalars(select(User))]
        fees = session.execute(
            select(PriceItem.doctor_id, PriceItem.amount_minor, PriceItem.currency).where(
                PriceItem.kind == "consultation"
            )
        ).all()
    roles = Counter(role for _, user_roles in accounts for role in user_roles)
    assert roles == {"admin": 1, "receptionist": 1, "billing": 1, "doctor": 5}
    doctors = {user_id for user_id, user_roles in accounts if "doctor" in user_roles}
    assert {doctor_id for doctor_id, _, _ in fees} == doctors
    assert all(amount > 0 and currency == "USD" for _, amount, currency in fees)
    assert len({amount for _, amount, _ in fees}) > 1


def test_two_thousand_patients_with_names_from_many_scripts(loaded: Loaded) -> None:
    with loaded.desk.reading() as session:
        rows = session.execute(select(Patient.full_name, Patient.phone)).all()
    assert len(rows) == 2000
    names = [name for name, _ in rows]
    assert len(set(names)) > 1900

    def script(name: str) -> str:
        for ch in name:
            if ch.isalpha():
                return unicodedata.name(ch).split()[0]
        return "?"

    scripts = Counter(script(name) for name in names)
    for expected in ("LATIN", "DEVANAGARI", "ARABIC", "CJK", "HANGUL", "CYRILLIC", "GREEK"):
        assert scripts[expected] > 0, expected
    assert scripts["LATIN"] < 0.85 * len(names)
    for _, phone in rows:
        assert patients.normalize_phone(phone) == phone  # stored the way the service stores


def test_demo_records_pass_the_services_own_validation(loaded: Loaded) -> None:
    """Bulk-written rows must be ones the forms would accept, or editing them would fail."""
    today = datetime.now(UTC).date()
    icd = catalogues.icd10()
    checked = 0
    with loaded.desk.reading() as session:
        for p in session.scalars(select(Patient)):
            draft = patients.PatientDraft(
                full_name=p.full_name,
                sex=p.sex,
                date_of_birth=p.date_of_birth,
                phone=p.phone,
                address=p.address,
                emergency_contact_name=p.emergency_contact_name,
                emergency_contact_phone=p.emergency_contact_phone,
                allergies=p.allergies,
                blood_group=p.blood_group,
                notes=p.notes,
            )
            patients.validate(draft, today)  # raises ValidationError if not
            checked += 1
        bounds = {
            "bp_systolic": (50, 260),
            "bp_diastolic": (30, 160),
            "pulse": (20, 250),
            "height_cm": (20, 250),
            "spo2": (50, 100),
            "temperature_dc": (300, 450),
            "weight_hg": (3, 4000),
        }
        for visit in session.scalars(select(Visit).where(Visit.status == "completed")):
            for column, (low, high) in bounds.items():
                value = getattr(visit, column)
                assert value is None or low <= value <= high, (column, value)
            assert 1 <= len(visit.diagnosis_codes) <= 12
            assert all(icd.get(code) is not None for code in visit.diagnosis_codes)
    assert checked == 2000


def test_histories_have_diagnoses_prescriptions_bills_and_payments(loaded: Loaded) -> None:
    desk = loaded.desk
    past = Visit.day < datetime.now(UTC).date()
    assert _count(desk, Visit, past) > 4000
    assert _count(desk, Visit, past, Visit.status == "completed") > 0.85 * _count(desk, Visit, past)
    assert _count(desk, Prescription, Prescription.status == "signed") > 2000
    assert _count(desk, PrescriptionItem) >= _count(desk, Prescription)
    assert _count(desk, Bill) > 4000
    assert _count(desk, Payment, Payment.amount_minor < 0) > 0  # a few refunds
    with desk.reading() as session:
        patient_id = session.scalar(
            select(Visit.patient_id).group_by(Visit.patient_id).having(func.count() >= 4)
        )
    assert patient_id is not None
    doctor = users.sign_in(desk, "dr.okafor", "Demo-doctor-2468")
    timeline = consultation.history(desk, doctor, patient_id)
    assert len(timeline) >= 3
    assert any(entry.diagnoses for entry in timeline)


def test_invoice_numbers_run_without_gaps_and_bills_add_up(loaded: Loaded) -> None:
    statuses: Counter[str] = Counter()
    with loaded.desk.reading() as session:
        numbers = session.scalars(select(Bill.invoice_number)).all()
        items: Counter[str] = Counter()
        for bill_id, amount in session.execute(select(BillItem.bill_id, BillItem.amount_minor)):
            items[bill_id] += amount
        paid: dict[str, list[Payment]] = {}
        for payment in session.scalars(select(Payment)):
            paid.setdefault(payment.bill_id, []).append(payment)
        for bill in session.scalars(select(Bill)):
            assert bill.subtotal_minor == items[bill.id]
            assert bill.total_minor == bill.subtotal_minor - bill.discount_minor + bill.tax_minor
            assert bill.status == derive_status(bill, paid.get(bill.id, []))
            statuses[bill.status] += 1
    seqs = sorted(int(str(n).rsplit("-", 1)[1]) for n in numbers)
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(str(n).startswith("INV-A-") for n in numbers)
    assert statuses["paid"] > statuses["partially_paid"] > 0
    assert statuses["issued"] > 0
    assert statuses["refunded"] > 0


def test_the_next_invoice_continues_the_series(loaded: Loaded) -> None:
    cashier = users.sign_in(loaded.desk, "billing", "Demo-cashier-2468")
    waiting = billing.bills_awaiting(loaded.desk, cashier)
    assert len(waiting) >= 3  # seen today, not yet billed
    highest = _count(loaded.desk, Bill)
    bill = billing.create_bill_for_visit(loaded.desk, cashier, waiting[0].visit_id)
    issued = billing.issue_bill(loaded.desk, cashier, bill.id)
    assert issued.invoice_number == f"INV-A-{highest + 1:06d}"


def test_todays_queue_has_every_state_across_the_doctors(loaded: Loaded) -> None:
    with loaded.desk.reading() as session:
        today = queue.clinic_today(session, loaded.desk)
        visits = [
            (v.status, v.doctor_id, v.priority, v.token_label)
            for v in session.scalars(select(Visit).where(Visit.day == today))
        ]
    assert len(visits) >= 30
    states = Counter(status for status, _, _, _ in visits)
    for state in ("waiting", "called", "in_consultation", "completed"):
        assert states[state] > 0, state
    assert len({doctor for _, doctor, _, _ in visits}) == 5
    assert {priority for _, _, priority, _ in visits} == {0, 1, 2}
    labels = sorted(label for _, _, _, label in visits)
    assert labels[0] == "A-001"
    in_room = Counter(doctor for status, doctor, _, _ in visits if status == "in_consultation")
    assert max(in_room.values()) == 1
    board = queue.now_serving(loaded.desk, today)
    assert board


def test_search_finds_demo_patients_in_any_script(loaded: Loaded) -> None:
    with loaded.desk.reading() as session:
        rows = session.execute(select(Patient.full_name, Patient.patient_number)).all()
    arabic = next(name for name, _ in rows if "ARABIC" in unicodedata.name(name[0], ""))
    hits = patients.search(loaded.desk, arabic.split()[0])
    assert arabic in {hit.full_name for hit in hits}
    number = rows[123][1]
    assert patients.search(loaded.desk, number)[0].patient_number == number


def test_every_demo_row_is_in_the_outbox_and_the_audit_chain_holds(loaded: Loaded) -> None:
    desk = loaded.desk
    with desk.reading() as session:
        for model in (Patient, Visit, Bill, Payment, PrescriptionItem):
            rows = session.scalar(select(func.count()).select_from(model))
            queued = session.scalar(
                select(func.count(func.distinct(OutboxEntry.row_id))).where(
                    OutboxEntry.entity == model.__tablename__
                )
            )
            assert queued == rows, model.__tablename__
        stamped = session.scalar(
            select(func.count()).select_from(Patient).where(Patient.origin != desk.device_id)
        )
        assert stamped == 0
        assert verify_chain(session, desk).ok


# --- generation -------------------------------------------------------------------------------


def test_bulk_rows_and_outbox_entries_match_what_the_tracking_hook_writes(
    bare_desk: Desk,
) -> None:
    """The demo writes history without the ORM unit of work; it must not differ from it."""
    with bare_desk.transaction(None) as session:
        tracked = Patient(
            clinic_id="clinic-test",
            patient_number="P-B-000001",
            full_name="Amal Haddad",
            phone="+971501234567",
        )
        session.add(tracked)
    with bare_desk.reading() as session:
        entry = session.scalars(select(OutboxEntry)).one()
        entry_fields, entry_kind = dict(entry.fields), (entry.entity, entry.op, entry.base_version)
        entry_hlc = entry.hlc
        stored = session.get(Patient, tracked.id)
        assert stored is not None
        via_hook = row_fields(stored)

    row = demo._new(
        Patient,
        id=tracked.id,
        clinic_id="clinic-test",
        patient_number="P-B-000001",
        full_name="Amal Haddad",
        phone="+971501234567",
    )
    values, outbox = demo.tracked_values(bare_desk, None, row)
    volatile = {"updated_at"}
    assert {k: v for k, v in outbox["fields"].items() if k not in volatile} == {
        k: v for k, v in via_hook.items() if k not in volatile
    }
    assert {k: v for k, v in entry_fields.items() if k not in volatile} == {
        k: v for k, v in outbox["fields"].items() if k not in volatile
    }
    assert (outbox["entity"], outbox["op"], outbox["base_version"]) == entry_kind
    assert outbox["hlc"] == values["updated_at"] > entry_hlc  # a later stamp of the same clock
    assert values["origin"] == bare_desk.device_id


def test_the_same_seed_makes_the_same_patients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "PATIENT_COUNT", 300)
    today = datetime(2026, 1, 15, tzinfo=UTC).date()

    def names(seed: int) -> list[str]:
        rng = random.Random(seed)
        ids = demo._Ids(random.Random(seed + 1))
        made = demo._make_patients(rng, ids, demo._fakers(seed), "c", today)
        return [p.full_name for p in made[:300]]

    first = names(demo.DEMO_SEED)
    assert first == names(demo.DEMO_SEED)
    assert first != names(demo.DEMO_SEED + 1)
