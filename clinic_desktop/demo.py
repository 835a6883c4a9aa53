"""The demo clinic: ``clinic-desktop --data-dir DIR --load-demo`` (DESIGN.md section 8).

What it makes (patients and history are the same for the same seed; ids of accounts and
clock stamps are new each time):

- clinic "Riverside Family Clinic" (USD, address and phone), this workstation as desk ``A``;
- an admin, a receptionist, a cashier and five doctors, with these demo passwords (the
  command prints them):

  ===============  ======================  ================================================
  user name        password                role
  ===============  ======================  ================================================
  ``admin``        ``Demo-manage-2468``    admin
  ``reception``    ``Demo-front-2468``     receptionist
  ``billing``      ``Demo-cashier-2468``   billing
  ``dr.okafor``    ``Demo-doctor-2468``    doctor (also ``dr.sharma``, ``dr.chen``,
                                           ``dr.haddad``, ``dr.garcia``, same password)
  ===============  ======================  ================================================

- a price list: each doctor's consultation fee and common services;
- the shipped medicine catalogue;
- 2,000 patients with realistic names from fourteen locales (Latin, Devanagari, Arabic,
  Chinese, Japanese, Korean, Cyrillic, Greek scripts), phones, addresses, allergies;
- about two years of history: visits with complaints, vitals, ICD-10 diagnoses and advice,
  signed prescriptions, issued bills with cash and card payments (some partial, a few
  refunds), invoice numbers without gaps;
- today's queue across the five doctors, in every state.

Setup, accounts, price list and today's queue go through the services (password rules,
bcrypt, state machines, audit), exactly as the windows would. The ~30,000 history rows are
written as multi-row INSERTs in a few large transactions, each row stamped and given its
outbox entry the way the tracking hook does it (``tests/unit/test_demo.py`` checks that the
two agree and that every row passes the services' validation).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert, inspect, select

from clinic_desktop.config import Settings, load_settings, save_settings
from clinic_desktop.models import (
    Bill,
    BillItem,
    ClinicSettings,
    DeskCounter,
    Medicine,
    OutboxEntry,
    Patient,
    Payment,
    Prescription,
    PrescriptionItem,
    User,
    Visit,
    new_id,
)
from clinic_desktop.models.serialize import to_json_value
from clinic_desktop.services import (
    billing,
    catalogues,
    consultation,
    prescriptions,
    queue,
    users,
)
from clinic_desktop.services.audit import record_event
from clinic_desktop.services.billing import PriceItemView
from clinic_desktop.services.context import Actor, Clock, Desk
from clinic_desktop.services.errors import InvalidState
from clinic_desktop.services.numbering import invoice_number, patient_number, token_label
from clinic_desktop.store.open import OpenedStore, open_store

DEMO_SEED = 20_241_125
CLINIC_NAME = "Riverside Family Clinic"
CLINIC_ADDRESS = "12 Riverside Walk, Springfield, IL 62701"
CLINIC_PHONE = "+12175550142"
CURRENCY = "USD"
DESK_CODE = "A"
PATIENT_COUNT = 2000
HISTORY_DAYS = 730
BATCH = 2500  # rows per transaction for the bulk history


@dataclass(frozen=True)
class DemoUser:
    """One demo account; the password is documented on purpose (it is a demo)."""

    username: str
    password: str
    full_name: str
    roles: tuple[str, ...]
    fee_minor: int | None = None  # consultation fee for doctors
    specialty: str = ""


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "Demo-manage-2468", "Alex Morgan", ("admin",)),
    DemoUser("reception", "Demo-front-2468", "Priya Nair", ("receptionist",)),
    DemoUser("billing", "Demo-cashier-2468", "Tomás Ruiz", ("billing",)),
    DemoUser(
        "dr.okafor",
        "Demo-doctor-2468",
        "Dr. Chidi Okafor",
        ("doctor",),
        5000,
        "General practice",
    ),
    DemoUser(
        "dr.sharma",
        "Demo-doctor-2468",
        "Dr. Ananya Sharma",
        ("doctor",),
        6500,
        "Internal medicine",
    ),
    DemoUser("dr.chen", "Demo-doctor-2468", "Dr. Wei Chen", ("doctor",), 6000, "Paediatrics"),
    DemoUser("dr.haddad", "Demo-doctor-2468", "Dr. Layla Haddad", ("doctor",), 8000, "Dermatology"),
    DemoUser(
        "dr.garcia", "Demo-doctor-2468", "Dr. Lucía García", ("doctor",), 9000, "Orthopaedics"
    ),
)

# (code, name, price-list kind, amount in cents)
SERVICES: tuple[tuple[str, str, str, int], ...] = (
    ("SRV-DRESS", "Wound dressing", "procedure", 1500),
    ("SRV-INJ", "Injection administration", "procedure", 1000),
    ("SRV-NEB", "Nebulisation", "procedure", 2000),
    ("SRV-ECG", "ECG (12-lead)", "investigation", 3500),
    ("SRV-SUT", "Suturing, minor wound", "procedure", 6000),
    ("LAB-GLU", "Blood glucose (finger-prick)", "investigation", 800),
    ("LAB-CBC", "Complete blood count", "investigation", 2200),
    ("LAB-HBA1C", "HbA1c", "investigation", 3000),
    ("LAB-LIPID", "Lipid profile", "investigation", 3500),
    ("LAB-URINE", "Urinalysis", "investigation", 1200),
    ("IMG-XRC", "X-ray, chest", "investigation", 5500),
    ("CERT-MED", "Medical certificate", "service", 1000),
)

# Locale, weight, how names are written, phone country code and mobile prefix.
LOCALES: tuple[tuple[str, int, str, str], ...] = (
    ("en_US", 28, "+1", ""),
    ("en_GB", 8, "+44", "7"),
    ("en_IN", 10, "+91", "9"),
    ("hi_IN", 8, "+91", "8"),
    ("es_MX", 9, "+52", "55"),
    ("fr_FR", 4, "+33", "6"),
    ("de_DE", 4, "+49", "15"),
    ("ar_AA", 8, "+971", "5"),
    ("zh_CN", 7, "+86", "13"),
    ("ja_JP", 3, "+81", "90"),
    ("ko_KR", 3, "+82", "10"),
    ("ru_RU", 3, "+7", "9"),
    ("el_GR", 2, "+30", "69"),
    ("yo_NG", 3, "+234", "80"),
)
FAMILY_NAME_FIRST = frozenset({"zh_CN", "ja_JP", "ko_KR"})
ADDRESS_FROM = {"ar_AA": "en_US", "yo_NG": "en_US"}  # their own address data is not usable

ALLERGIES = ("Penicillin", "Sulfa drugs", "Aspirin", "Ibuprofen", "Peanuts", "Latex", "Eggs")
BLOOD_GROUPS = ("A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-")
BLOOD_WEIGHTS = (30, 6, 9, 2, 4, 1, 40, 8)
AGE_BANDS = ((0, 4), (5, 17), (18, 44), (45, 64), (65, 95))
AGE_WEIGHTS = (8, 14, 38, 25, 15)


@dataclass(frozen=True)
class Condition:
    """A reason for a visit: what the patient says, what the doctor writes, what is given."""

    complaint: str
    codes: tuple[str, ...]
    advice: str
    medicines: tuple[tuple[str, str, str, str, str], ...]  # name, dose, frequency, days, qty
    chronic: bool = False
    services: tuple[str, ...] = ()


CONDITIONS: tuple[Condition, ...] = (
    Condition(
        "Sore throat and runny nose for 3 days",
        ("J06.9",),
        "Rest, warm fluids, paracetamol for fever. Return if breathing becomes difficult.",
        (("Paracetamol", "500 mg", "every 6 hours as needed", "5 days", "20 tablets"),),
    ),
    Condition(
        "Painful swallowing and fever",
        ("J02.9",),
        "Salt-water gargles, complete the antibiotic course.",
        (
            ("Amoxicillin", "500 mg", "three times a day", "7 days", "21 capsules"),
            ("Paracetamol", "500 mg", "every 6 hours as needed", "3 days", "12 tablets"),
        ),
    ),
    Condition(
        "Follow-up of high blood pressure",
        ("I10",),
        "Low-salt diet, daily walk, check blood pressure at home twice a week.",
        (("Amlodipine", "5 mg", "once daily", "30 days", "30 tablets"),),
        chronic=True,
        services=("SRV-ECG",),
    ),
    Condition(
        "Diabetes review, tiredness",
        ("E11.9",),
        "Diet plan reviewed; foot care; HbA1c in three months.",
        (("Metformin", "500 mg", "twice daily with meals", "30 days", "60 tablets"),),
        chronic=True,
        services=("LAB-HBA1C", "LAB-GLU"),
    ),
    Condition(
        "Burning pain in the upper abdomen after meals",
        ("K29.7",),
        "Small regular meals, avoid spicy food and NSAIDs.",
        (("Omeprazole", "20 mg", "once daily before breakfast", "14 days", "14 capsules"),),
    ),
    Condition(
        "Heartburn at night",
        ("K21.9",),
        "Raise the head of the bed, no meals within 3 hours of sleep.",
        (("Pantoprazole", "40 mg", "once daily", "28 days", "28 tablets"),),
    ),
    Condition(
        "Low back pain after lifting",
        ("M54.5",),
        "Stay active, heat pack, avoid heavy lifting for two weeks.",
        (("Ibuprofen", "400 mg", "three times a day after food", "5 days", "15 tablets"),),
    ),
    Condition(
        "Wheezing and cough at night",
        ("J45.9",),
        "Inhaler technique shown; avoid smoke and dust.",
        (("Salbutamol", "2 puffs", "when needed", "30 days", "1 inhaler"),),
        chronic=True,
        services=("SRV-NEB",),
    ),
    Condition(
        "Burning on passing urine",
        ("N39.0",),
        "Drink plenty of water; finish the antibiotics.",
        (("Nitrofurantoin", "100 mg", "twice daily", "5 days", "10 capsules"),),
        services=("LAB-URINE",),
    ),
    Condition(
        "Recurring headaches",
        ("G43.9",),
        "Headache diary, regular sleep, limit caffeine.",
        (("Sumatriptan", "50 mg", "at onset, may repeat after 2 hours", "10 days", "6 tablets"),),
    ),
    Condition(
        "Itchy red rash on both arms",
        ("L30.9",),
        "Fragrance-free soap and moisturiser twice a day.",
        (("Hydrocortisone cream", "thin layer", "twice daily", "7 days", "1 tube"),),
    ),
    Condition(
        "Red watery eyes",
        ("H10.9",),
        "Wash hands often, do not share towels.",
        (("Chloramphenicol eye drops", "1 drop", "four times a day", "5 days", "1 bottle"),),
    ),
    Condition(
        "Fever and body aches",
        ("B34.9", "R50.9"),
        "Fluids and rest; come back if fever lasts more than 3 days.",
        (("Paracetamol", "500 mg", "every 6 hours as needed", "3 days", "12 tablets"),),
        services=("LAB-CBC",),
    ),
    Condition(
        "Cough with yellow sputum",
        ("J20.9",),
        "Steam inhalation, fluids, stop smoking.",
        (("Ambroxol", "30 mg", "three times a day", "5 days", "15 tablets"),),
        services=("IMG-XRC",),
    ),
    Condition(
        "Tiredness and pale skin",
        ("D50.9",),
        "Iron-rich diet; repeat blood count in 6 weeks.",
        (("Ferrous sulfate", "200 mg", "once daily", "30 days", "30 tablets"),),
        services=("LAB-CBC",),
    ),
    Condition(
        "Knee pain on stairs",
        ("M17.9",),
        "Weight management and quadriceps exercises.",
        (("Paracetamol", "1 g", "twice daily", "14 days", "56 tablets"),),
    ),
    Condition(
        "Cholesterol results review",
        ("E78.5",),
        "Diet low in saturated fat; recheck lipids in 3 months.",
        (("Atorvastatin", "20 mg", "once daily at night", "30 days", "30 tablets"),),
        chronic=True,
        services=("LAB-LIPID",),
    ),
    Condition(
        "Feeling anxious, poor sleep",
        ("F41.1",),
        "Breathing exercises; referral for counselling offered.",
        (("Sertraline", "50 mg", "once daily", "30 days", "30 tablets"),),
    ),
    Condition(
        "Annual check-up",
        ("Z00.0",),
        "All normal; keep up the exercise.",
        (),
        services=("LAB-CBC", "LAB-LIPID"),
    ),
    Condition(
        "Cut on a finger from a kitchen knife",
        ("S61.0",),
        "Keep the wound dry for 48 hours; stitches out in 7 days.",
        (("Co-amoxiclav", "625 mg", "twice daily", "5 days", "10 tablets"),),
        services=("SRV-SUT", "SRV-INJ"),
    ),
)


@dataclass(frozen=True)
class _MedicineRef:
    """What a prescription line copies from the catalogue (plain values, no session)."""

    id: str
    strength: str
    form: str
    route: str


DOCTOR_CONDITIONS = {  # which conditions each doctor (by position) mostly sees
    0: range(len(CONDITIONS)),
    1: (2, 3, 4, 5, 14, 16, 17, 18),
    2: (0, 1, 7, 11, 12, 13),
    3: (10, 11, 12),
    4: (6, 15, 19),
}


@dataclass
class DemoSummary:
    """What was loaded (counts only: nothing here is patient data)."""

    data_dir: Path
    clinic_id: str = ""
    users: tuple[DemoUser, ...] = DEMO_USERS
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        parts = ", ".join(f"{n:,} {name}" for name, n in self.counts.items())
        return f"{CLINIC_NAME} (desk {DESK_CODE}): {parts} in {self.seconds:.1f} s."


def sign_in_table(summary: DemoSummary) -> str:
    """The demo sign-ins as a small text table for the terminal."""
    rows = [("user name", "password", "role")]
    rows += [(u.username, u.password, ", ".join(u.roles)) for u in summary.users]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["Demo sign-ins:"]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


# --- generation helpers --------------------------------------------------------------------


class _Ids:
    """Deterministic UUIDs, so the same seed always builds the same clinic."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def __call__(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def _fakers(seed: int) -> dict[str, Any]:
    from faker import Faker

    made: dict[str, Any] = {}
    for offset, (locale, *_rest) in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed + offset)
        made[locale] = fake
    return made


def _phone(rng: random.Random, country: str, prefix: str) -> str:
    if country == "+1":
        number = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
    else:
        number = prefix + "".join(str(rng.randint(0, 9)) for _ in range(9 - len(prefix) + 1))
    return country + number


def _person_name(fake: Any, locale: str, female: bool) -> str:
    first = fake.first_name_female() if female else fake.first_name_male()
    last = fake.last_name()
    if locale in FAMILY_NAME_FIRST:  # family name first, no space
        return f"{last}{first}"
    return f"{first} {last}"


def _address(fakers: dict[str, Any], locale: str) -> str:
    source = fakers[ADDRESS_FROM.get(locale, locale)]
    return " ".join(str(source.address()).replace("\n", ", ").split())


def _at(day: date, minutes_after_nine: int) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC) + timedelta(
        minutes=minutes_after_nine
    )


class _Row(SimpleNamespace):
    """A new row as plain attributes; ``_model`` is its mapped class.

    Building ~30,000 ORM instances costs several seconds of attribute instrumentation; the
    demo only needs their values, so it builds these instead.
    """


_DEFAULTS: dict[str, tuple[tuple[str, Any, bool], ...]] = {}


def _defaults(model: type[Any]) -> tuple[tuple[str, Any, bool], ...]:
    """(column key, default, is_callable) of every column of ``model``."""
    known = _DEFAULTS.get(model.__name__)
    if known is not None:
        return known
    out: list[tuple[str, Any, bool]] = []
    for attr in inspect(model).column_attrs:
        default = attr.columns[0].default
        if default is None:
            out.append((attr.key, None, False))
        elif getattr(default, "is_callable", False):
            out.append((attr.key, default.arg, True))
        else:
            out.append((attr.key, getattr(default, "arg", None), False))
    _DEFAULTS[model.__name__] = tuple(out)
    return _DEFAULTS[model.__name__]


def _new(model: type[Any], **values: Any) -> _Row:
    """A row of ``model`` with its column defaults filled in, as the model's constructor does."""
    for key, default, is_callable in _defaults(model):
        if key not in values:
            values[key] = default(None) if is_callable else default
    return _Row(_model=model, **values)


@dataclass
class _Plan:
    """Rows to insert, in dependency order."""

    patients: list[_Row] = field(default_factory=list)
    visits: list[_Row] = field(default_factory=list)
    prescriptions: list[_Row] = field(default_factory=list)
    prescription_items: list[_Row] = field(default_factory=list)
    bills: list[_Row] = field(default_factory=list)
    bill_items: list[_Row] = field(default_factory=list)
    payments: list[_Row] = field(default_factory=list)
    invoices: int = 0


def _make_patients(
    rng: random.Random, ids: _Ids, fakers: dict[str, Any], clinic_id: str, today: date
) -> list[_Row]:
    locales = [loc for loc, *_ in LOCALES]
    weights = [w for _, w, *_ in LOCALES]
    phone_of = {loc: (cc, prefix) for loc, _, cc, prefix in LOCALES}
    patients: list[_Row] = []
    for n in range(1, PATIENT_COUNT + 1):
        locale = rng.choices(locales, weights)[0]
        fake = fakers[locale]
        female = rng.random() < 0.52
        low, high = rng.choices(AGE_BANDS, AGE_WEIGHTS)[0]
        age = rng.randint(low, high)
        born = today - timedelta(days=age * 365 + rng.randint(0, 364))
        estimated = rng.random() < 0.04
        if estimated:
            born = date(born.year, 7, 1)
        has_contact = rng.random() < 0.6
        patients.append(
            _new(
                Patient,
                id=ids(),
                clinic_id=clinic_id,
                patient_number=patient_number(DESK_CODE, n),
                full_name=_person_name(fake, locale, female),
                sex="female" if female else "male",
                date_of_birth=born,
                dob_estimated=estimated,
                phone=_phone(rng, *phone_of[locale]),
                address=_address(fakers, locale),
                emergency_contact_name=(
                    _person_name(fake, locale, rng.random() < 0.5) if has_contact else ""
                ),
                emergency_contact_phone=_phone(rng, *phone_of[locale]) if has_contact else "",
                allergies=", ".join(rng.sample(ALLERGIES, rng.choice((1, 1, 2))))
                if rng.random() < 0.12
                else "",
                blood_group=rng.choices(BLOOD_GROUPS, BLOOD_WEIGHTS)[0]
                if rng.random() < 0.7
                else "",
            )
        )
    return patients


def _visit_count(rng: random.Random) -> int:
    return rng.choices((0, 1, 2, 3, 4, 5, 6, 8), (12, 24, 20, 16, 11, 8, 6, 3))[0]


def _age_on(patient: _Row, day: date) -> int:
    born = patient.date_of_birth or day
    return (day - born).days // 365


def _vitals(rng: random.Random, age: int, condition: Condition) -> dict[str, int | None]:
    adult = age >= 16
    hypertensive = "I10" in condition.codes
    feverish = "R50.9" in condition.codes or condition.codes[0] in ("J02.9", "J20.9")
    return {
        "bp_systolic": rng.randint(138, 165) if hypertensive else rng.randint(104, 134),
        "bp_diastolic": rng.randint(86, 100) if hypertensive else rng.randint(64, 86),
        "pulse": rng.randint(64, 96) if adult else rng.randint(80, 120),
        "temperature_dc": rng.randint(378, 392) if feverish else rng.randint(362, 373),
        "weight_hg": rng.randint(520, 1050) if adult else max(40, age * 25 + rng.randint(30, 90)),
        "height_cm": rng.randint(150, 190) if adult else min(175, 50 + age * 7),
        "spo2": rng.randint(93, 97) if "J45.9" in condition.codes else rng.randint(96, 100),
    }


def _plan_history(
    rng: random.Random,
    ids: _Ids,
    clinic_id: str,
    today: date,
    patients: Sequence[_Row],
    doctors: Sequence[str],
    billing_user: str,
    fees: dict[str, PriceItemView],
    services: dict[str, PriceItemView],
    medicines: dict[str, _MedicineRef],
    known_code: Callable[[str], bool],
) -> _Plan:
    plan = _Plan()
    raw: list[tuple[datetime, _Row, str, Condition, str]] = []
    for patient in patients:
        usual = rng.randrange(len(doctors))
        chronic = rng.choice([c for c in CONDITIONS if c.chronic]) if rng.random() < 0.2 else None
        for _ in range(_visit_count(rng)):
            day = today - timedelta(days=rng.randint(1, HISTORY_DAYS))
            if day.weekday() == 6:  # closed on Sundays
                day -= timedelta(days=1)
            doctor_pos = usual if rng.random() < 0.7 else rng.randrange(len(doctors))
            if chronic is not None and rng.random() < 0.6:
                condition = chronic
            else:
                condition = CONDITIONS[rng.choice(list(DOCTOR_CONDITIONS[doctor_pos]))]
            if _age_on(patient, day) < 0:
                continue
            status = rng.choices(("completed", "no_show", "cancelled"), (92, 5, 3))[0]
            arrived = _at(day, rng.randint(0, 540))
            raw.append((arrived, patient, doctors[doctor_pos], condition, status))
    raw.sort(key=lambda r: (r[0], r[1].patient_number))

    token_seq: dict[date, int] = {}
    for arrived, patient, doctor_id, condition, status in raw:
        day = arrived.date()
        token_seq[day] = token_seq.get(day, 0) + 1
        seq = token_seq[day]
        visit = _new(
            Visit,
            id=ids(),
            clinic_id=clinic_id,
            patient_id=patient.id,
            doctor_id=doctor_id,
            day=day,
            desk_code=DESK_CODE,
            token_seq=seq,
            token_label=token_label(DESK_CODE, seq),
            status=status,
            priority=1 if rng.random() < 0.05 else 0,
            queue_position=seq,
            arrived_at=arrived,
        )
        plan.visits.append(visit)
        if status != "completed":
            continue
        called = arrived + timedelta(minutes=rng.randint(5, 60))
        visit.called_at = called
        visit.started_at = called + timedelta(minutes=rng.randint(1, 4))
        visit.finished_at = visit.started_at + timedelta(minutes=rng.randint(8, 25))
        visit.complaint = condition.complaint
        for key, value in _vitals(rng, _age_on(patient, day), condition).items():
            setattr(visit, key, value)
        visit.examination = "General condition fair. Chest clear. Abdomen soft, non-tender."
        visit.diagnosis_codes = [c for c in condition.codes if known_code(c)]
        visit.advice = condition.advice
        if condition.chronic or rng.random() < 0.2:
            visit.follow_up_date = day + timedelta(days=rng.choice((7, 14, 30, 90)))
        _plan_prescription(rng, ids, plan, visit, condition, medicines)
        _plan_bill(rng, ids, plan, visit, patient, condition, fees, services, billing_user)
    return plan


def _plan_prescription(
    rng: random.Random,
    ids: _Ids,
    plan: _Plan,
    visit: _Row,
    condition: Condition,
    medicines: dict[str, _MedicineRef],
) -> None:
    if not condition.medicines or rng.random() < 0.2:
        return
    assert visit.finished_at is not None
    rx = _new(
        Prescription,
        id=ids(),
        clinic_id=visit.clinic_id,
        visit_id=visit.id,
        patient_id=visit.patient_id,
        doctor_id=visit.doctor_id,
        revision=1,
        status="signed",
        signed_at=visit.finished_at - timedelta(minutes=1),
        notes="",
    )
    plan.prescriptions.append(rx)
    for position, (name, dose, frequency, days, quantity) in enumerate(condition.medicines):
        medicine = medicines.get(name)
        plan.prescription_items.append(
            _new(
                PrescriptionItem,
                id=ids(),
                clinic_id=visit.clinic_id,
                prescription_id=rx.id,
                position=position,
                medicine_id=medicine.id if medicine else None,
                medicine_name=name,
                strength=medicine.strength if medicine else "",
                form=medicine.form if medicine else "",
                dose=dose,
                frequency=frequency,
                duration=days,
                route=medicine.route if medicine else "oral",
                quantity=quantity,
                instructions="After food." if "food" in frequency else "",
            )
        )


def _plan_bill(
    rng: random.Random,
    ids: _Ids,
    plan: _Plan,
    visit: _Row,
    patient: _Row,
    condition: Condition,
    fees: dict[str, PriceItemView],
    services: dict[str, PriceItemView],
    billing_user: str,
) -> None:
    """An issued bill for a finished visit, and its payments (mostly paid in full)."""
    assert visit.finished_at is not None
    bill = _new(
        Bill,
        id=ids(),
        clinic_id=visit.clinic_id,
        visit_id=visit.id,
        patient_id=patient.id,
        desk_code=DESK_CODE,
        currency=CURRENCY,
        status="issued",
        issued_at=visit.finished_at + timedelta(minutes=rng.randint(2, 15)),
    )
    lines: list[PriceItemView] = [fees[visit.doctor_id]]
    lines += [services[code] for code in condition.services if rng.random() < 0.5]
    if "CERT-MED" in services and rng.random() < 0.05:
        lines.append(services["CERT-MED"])
    subtotal = 0
    for position, item in enumerate(lines):
        plan.bill_items.append(
            _new(
                BillItem,
                id=ids(),
                clinic_id=bill.clinic_id,
                bill_id=bill.id,
                position=position,
                price_item_id=item.id,
                description=item.name,
                quantity=1,
                unit_price_minor=item.amount_minor,
                amount_minor=item.amount_minor,
            )
        )
        subtotal += item.amount_minor
    senior = _age_on(patient, visit.day) >= 65
    bill.subtotal_minor = subtotal
    bill.discount_minor = subtotal // 10 if senior else 0
    bill.tax_minor = 0
    bill.total_minor = subtotal - bill.discount_minor
    plan.invoices += 1
    bill.invoice_number = invoice_number(DESK_CODE, plan.invoices)
    plan.bills.append(bill)

    assert bill.issued_at is not None
    outcome = rng.choices(("paid", "partial", "unpaid", "refunded"), (88, 6, 4, 2))[0]
    method = rng.choices(("cash", "card"), (55, 45))[0]

    def pay(amount: int, minutes: int, how: str, refund_of: str | None = None) -> _Row:
        assert bill.issued_at is not None
        payment = _new(
            Payment,
            id=ids(),
            clinic_id=bill.clinic_id,
            bill_id=bill.id,
            method=how,
            amount_minor=amount,
            currency=CURRENCY,
            received_at=bill.issued_at + timedelta(minutes=minutes),
            received_by=billing_user,
            desk_code=DESK_CODE,
            reference=f"TERM-{rng.randint(100000, 999999)}" if how == "card" else "",
            refund_of=refund_of,
            reason="Charged twice at the terminal" if refund_of else "",
        )
        plan.payments.append(payment)
        return payment

    if outcome == "paid":
        pay(bill.total_minor, 1, method)
        bill.status = "paid"
    elif outcome == "partial":
        pay(bill.total_minor // 2, 1, "cash")
        bill.status = "partially_paid"
    elif outcome == "refunded":
        first = pay(bill.total_minor, 1, method)
        pay(-bill.total_minor, rng.randint(30, 600), method, refund_of=first.id)
        bill.status = "refunded"


# --- loading ------------------------------------------------------------------------------


def tracked_values(
    desk: Desk, actor: Actor | None, row: _Row
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Column values of a new synced row, stamped, and its outbox entry, as the tracking hook
    (``store/tracking.py``) would make them on flush. ``test_demo`` checks the two agree."""
    stamp = desk.clock.now()
    values = {key: getattr(row, key) for key, _, _ in _defaults(row._model)}
    values["updated_at"] = row.updated_at = stamp
    values["updated_by"] = row.updated_by = actor.user_id if actor else None
    values["origin"] = row.origin = desk.device_id
    outbox = {
        "mutation_id": new_id(),
        "entity": row._model.__tablename__,
        "row_id": values["id"],
        "op": "insert",
        "fields": {key: to_json_value(value) for key, value in values.items()},
        "base_version": 0,
        "hlc": stamp,
        "actor_id": values["updated_by"],
        "state": "pending",
        "attempts": 0,
        "last_error": "",
    }
    return values, outbox


def _insert(desk: Desk, actor: Actor, rows: Iterable[_Row]) -> int:
    """Insert new synced rows in big transactions, each row with its outbox entry.

    Going through the ORM unit of work costs about a second per thousand rows here; the
    history has ~30,000, so rows and outbox entries go in as multi-row INSERTs instead, made
    exactly as the tracking hook makes them. Rows must come parents first.
    """
    pending = list(rows)
    for start in range(0, len(pending), BATCH):
        by_table: dict[Any, list[dict[str, Any]]] = {}
        outbox: list[dict[str, Any]] = []
        for row in pending[start : start + BATCH]:
            values, entry = tracked_values(desk, actor, row)
            by_table.setdefault(row._model.__table__, []).append(values)
            outbox.append(entry)
        with desk.engine.begin() as conn:
            for table, values_list in by_table.items():
                conn.execute(insert(table), values_list)
            conn.execute(insert(OutboxEntry.__table__), outbox)  # type: ignore[arg-type]
    return len(pending)


def _make_accounts(
    store: OpenedStore, clinic_id: str, progress: Callable[[str], None]
) -> tuple[Desk, Actor, dict[str, str]]:
    admin_spec = DEMO_USERS[0]
    result = users.setup_clinic(
        store.engine,
        device_id=store.device_id,
        audit_key=store.audit_key,
        clock=store.clock,
        clinic_name=CLINIC_NAME,
        currency=CURRENCY,
        desk_code=DESK_CODE,
        admin_username=admin_spec.username,
        admin_full_name=admin_spec.full_name,
        password=admin_spec.password,
        workstation_name="Front desk",
        clinic_id=clinic_id,
    )
    desk, admin = result.desk, result.admin
    user_ids = {admin_spec.username: admin.user_id}

    def create(spec: DemoUser) -> tuple[str, str]:
        user = users.create_user(
            desk,
            admin,
            username=spec.username,
            full_name=spec.full_name,
            roles=spec.roles,
            password=spec.password,
            must_change_password=False,
        )
        progress(f"account {spec.username}")
        return spec.username, user.id

    # bcrypt releases the GIL and create_user hashes before taking the write lock, so the
    # accounts are made side by side (each still in its own transaction with its audit event).
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        user_ids.update(pool.map(create, DEMO_USERS[1:]))
    return desk, admin, user_ids


def load_demo(
    data_dir: Path,
    *,
    seed: int = DEMO_SEED,
    today: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Fill the (new or empty) store in ``data_dir`` with the demo clinic.

    Refuses a store that already holds a clinic, so a real clinic is never mixed with demo
    data.
    """
    started = time.perf_counter()
    say = progress or (lambda _text: None)
    rng = random.Random(seed)
    ids = _Ids(random.Random(seed + 1))
    today = today or datetime.now(UTC).date()
    summary = DemoSummary(data_dir=data_dir)

    store = open_store(data_dir)
    try:
        if users.is_set_up(store.engine):
            raise InvalidState(
                f"{store.data_dir} already holds a clinic. Load the demo into an empty folder "
                "(for example --data-dir /tmp/clinic-demo)."
            )
        clinic_id = ids()
        say("accounts (bcrypt makes this the slow part)")
        desk, admin, user_ids = _make_accounts(store, clinic_id, say)
        summary.clinic_id = clinic_id
        catalogues.seed_medicines(desk, admin)
        with desk.transaction(admin) as session:  # what prints on prescriptions and receipts
            clinic = session.scalars(select(ClinicSettings)).one()
            clinic.address = CLINIC_ADDRESS
            clinic.phone = CLINIC_PHONE
            record_event(session, desk, admin, "clinic.update", "clinic_settings", clinic.id)

        doctor_specs = [u for u in DEMO_USERS if "doctor" in u.roles]
        doctors = [user_ids[u.username] for u in doctor_specs]
        say("price list")
        fees: dict[str, PriceItemView] = {}
        for spec in doctor_specs:
            assert spec.fee_minor is not None
            fee = billing.create_price_item(
                desk,
                admin,
                code=f"CONS-{spec.username.split('.')[-1].upper()}",
                name=f"Consultation, {spec.full_name} ({spec.specialty})",
                kind="consultation",
                doctor_id=user_ids[spec.username],
                amount_minor=spec.fee_minor,
            )
            fees[user_ids[spec.username]] = fee
        services = {
            code: billing.create_price_item(
                desk, admin, code=code, name=name, kind=kind, amount_minor=amount
            )
            for code, name, kind, amount in SERVICES
        }

        with desk.reading() as session:
            medicines = {
                m.name: _MedicineRef(m.id, m.strength, m.form, m.route)
                for m in session.scalars(select(Medicine).order_by(Medicine.name, Medicine.id))
            }
        icd = catalogues.icd10()

        say(f"{PATIENT_COUNT:,} patients")
        fakers = _fakers(seed)
        patients = _make_patients(rng, ids, fakers, clinic_id, today)
        say("two years of visits, prescriptions, bills and payments")
        plan = _plan_history(
            rng,
            ids,
            clinic_id,
            today,
            patients,
            doctors,
            user_ids["billing"],
            fees,
            services,
            medicines,
            lambda code: icd.get(code) is not None,
        )
        say("writing to the encrypted store")
        counts = summary.counts
        counts["patients"] = _insert(desk, admin, patients)
        counts["past visits"] = _insert(desk, admin, plan.visits)
        counts["prescriptions"] = _insert(
            desk, admin, [*plan.prescriptions, *plan.prescription_items]
        ) - len(plan.prescription_items)
        counts["bills"] = _insert(desk, admin, [*plan.bills, *plan.bill_items]) - len(
            plan.bill_items
        )
        counts["payments"] = _insert(desk, admin, plan.payments)
        with desk.transaction(admin) as session:
            session.merge(DeskCounter(name=f"patient:{DESK_CODE}", value=len(patients)))
            session.merge(DeskCounter(name=f"invoice:{DESK_CODE}", value=plan.invoices))

        say("today's queue")
        counts["tokens today"] = _make_today(rng, desk, today, patients, medicines)
        with desk.transaction(admin) as session:
            record_event(
                session,
                desk,
                admin,
                "demo.load",
                "clinic_settings",
                clinic_id,
                " ".join(f"{k.replace(' ', '_')}={v}" for k, v in counts.items()),
            )
    finally:
        store.close()
    settings = load_settings(store.data_dir)
    save_settings(
        store.data_dir,
        Settings(
            server_url=settings.server_url,
            desk_code=DESK_CODE,
            idle_lock_minutes=settings.idle_lock_minutes,
        ),
    )
    summary.data_dir = store.data_dir
    summary.seconds = time.perf_counter() - started
    return summary


class _ScriptedClock(Clock):
    """Lets the demo replay this morning's queue at believable times through the services."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def utcnow(self) -> datetime:
        return self.at


def _actors(desk: Desk) -> dict[str, Actor]:
    with desk.reading() as session:
        return {u.username: users.actor_for(u) for u in session.scalars(select(User))}


def _make_today(
    rng: random.Random,
    desk: Desk,
    today: date,
    patients: Sequence[_Row],
    medicines: dict[str, _MedicineRef],
) -> int:
    """This morning's queue, made through the queue, consultation, prescription and billing
    services exactly as the desks would: six patients seen (three already billed and paid,
    three waiting for the cashier), some called or in the room, the rest waiting."""
    actors = _actors(desk)
    reception, cashier = actors["reception"], actors["billing"]
    doctors = [actors[u.username] for u in DEMO_USERS if "doctor" in u.roles]
    now = datetime.now(UTC)
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
    end = now if now.date() == today else midnight + timedelta(hours=13)
    begin = max(midnight, end - timedelta(hours=4))
    step = (end - begin) / 40
    clock = _ScriptedClock(begin)
    saved_clock, desk.now = desk.now, clock
    no_allergy = [p for p in patients if not p.allergies]
    chosen = rng.sample(no_allergy, 30)
    try:
        visits = []
        for seq, patient in enumerate(chosen, start=1):
            clock.at = begin + step * seq
            condition = rng.choice(CONDITIONS[:-1])
            visit = queue.issue_token(
                desk,
                reception,
                patient.id,
                doctors[(seq - 1) % len(doctors)].user_id,
                priority=2 if seq == 24 else 1 if seq in (15, 21) else 0,
                complaint=condition.complaint,
            )
            visits.append((visit.id, patient, condition, doctors[(seq - 1) % len(doctors)]))
        for seq, (visit_id, patient, condition, doctor) in enumerate(visits, start=1):
            if seq > 11:
                break
            clock.at = begin + step * (seq + 1)
            queue.call(desk, doctor, visit_id)
            if seq in (8, 10):
                continue
            queue.start(desk, doctor, visit_id)
            if seq > 6:
                continue
            clock.at += step / 2
            _see_patient(rng, desk, doctor, visit_id, patient, condition, medicines, today)
            if seq <= 3:
                clock.at += step / 4
                bill = billing.create_bill_for_visit(desk, cashier, visit_id)
                bill = billing.issue_bill(desk, cashier, bill.id)
                tendered = -(-bill.total_minor // 1000) * 1000  # next $10 note
                billing.record_cash_payment(desk, cashier, bill.id, tendered)
    finally:
        desk.now = saved_clock
    return len(visits)


def _see_patient(
    rng: random.Random,
    desk: Desk,
    doctor: Actor,
    visit_id: str,
    patient: _Row,
    condition: Condition,
    medicines: dict[str, _MedicineRef],
    today: date,
) -> None:
    vitals = _vitals(rng, _age_on(patient, today), condition)
    consultation.record_consultation(
        desk,
        doctor,
        visit_id,
        bp_systolic=vitals["bp_systolic"],
        bp_diastolic=vitals["bp_diastolic"],
        pulse=vitals["pulse"],
        temperature_c=f"{(vitals['temperature_dc'] or 370) / 10:.1f}",
        weight_kg=f"{(vitals['weight_hg'] or 700) / 10:.1f}",
        height_cm=vitals["height_cm"],
        spo2=vitals["spo2"],
        examination="General condition fair. Chest clear. Abdomen soft, non-tender.",
        diagnosis_codes=list(condition.codes),
        advice=condition.advice,
    )
    if condition.medicines:
        rx = prescriptions.create_draft(desk, doctor, visit_id)
        for name, dose, frequency, days, quantity in condition.medicines:
            ref = medicines.get(name)
            prescriptions.add_item(
                desk,
                doctor,
                rx.id,
                medicine_id=ref.id if ref else None,
                medicine_name="" if ref else name,
                dose=dose,
                frequency=frequency,
                duration=days,
                quantity=quantity,
            )
        prescriptions.sign(desk, doctor, rx.id)
    consultation.finish_consultation(desk, doctor, visit_id)
