"""The doctor's record of a visit: complaint, vitals, examination, ICD-10 diagnoses, advice,
follow-up; finishing the consultation; and the patient's history timeline.

Who may write: the visit's own doctor, or an admin. When: while the visit is
``in_consultation``, and after it is completed only on the same clinic day (for corrections
before the day closes); after that the record is part of the history and stays as it is.

Diagnoses are ICD-10 codes from the shipped list only (``resources/icd10.tsv``); a free-text
impression belongs in the examination notes. That keeps reports and history comparable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinic_desktop.models import (
    ClinicSettings,
    Patient,
    Prescription,
    PrescriptionItem,
    User,
    Visit,
)
from clinic_desktop.services import queue
from clinic_desktop.services.audit import record_event
from clinic_desktop.services.catalogues import icd10
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import InvalidState, NotFound, PermissionDenied, ValidationError
from clinic_desktop.services.users import authorize

# --- shared helpers (prescriptions and billing use these too) -----------------------------


def clinic_settings(session: Session, desk: Desk) -> ClinicSettings | None:
    """This clinic's settings row (None on a desk that has not synced it yet)."""
    return session.scalars(
        select(ClinicSettings)
        .where(ClinicSettings.clinic_id == desk.clinic_id, ClinicSettings.deleted.is_(False))
        .limit(1)
    ).first()


def clinic_zone(settings: ClinicSettings | None) -> ZoneInfo:
    """The clinic's time zone; UTC when unset or unknown on this machine."""
    try:
        return ZoneInfo(settings.timezone if settings and settings.timezone else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def clinic_today(session: Session, desk: Desk) -> date:
    """Today's date where the clinic is (a visit's "day" is a clinic day, not a UTC day)."""
    return desk.now.utcnow().astimezone(clinic_zone(clinic_settings(session, desk))).date()


def check_text(
    value: object, field: str, label: str, max_length: int, errors: dict[str, str]
) -> str:
    """Free text kept exactly as typed (quotes, markup and any script included), within limits."""
    if not isinstance(value, str):
        errors[field] = f"{label} must be text."
        return ""
    if len(value) > max_length:
        errors[field] = f"{label} is too long (at most {max_length} characters)."
    elif "\x00" in value:
        errors[field] = f"{label} contains a character that cannot be stored."
    return value


# --- consultation record ------------------------------------------------------------------


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

MAX_COMPLAINT = 2_000
MAX_EXAMINATION = 10_000
MAX_ADVICE = 5_000
MAX_DIAGNOSES = 12
FOLLOW_UP_HORIZON = timedelta(days=2 * 366)

# (field, label, unit, low, high) for whole-number vitals.
_INT_VITALS: dict[str, tuple[str, str, int, int]] = {
    "bp_systolic": ("Systolic blood pressure", "mmHg", 50, 260),
    "bp_diastolic": ("Diastolic blood pressure", "mmHg", 30, 160),
    "pulse": ("Pulse", "beats per minute", 20, 250),
    "height_cm": ("Height", "cm", 20, 250),
    "spo2": ("SpO2", "%", 50, 100),
}
# Typed with one decimal, stored in tenths: (label, unit, low tenths, high tenths).
_TENTHS_VITALS: dict[str, tuple[str, str, int, int]] = {
    "temperature_c": ("Temperature", "°C", 300, 450),
    "weight_kg": ("Weight", "kg", 3, 4000),
}
_TENTHS_COLUMN = {"temperature_c": "temperature_dc", "weight_kg": "weight_hg"}

_INT_TEXT = re.compile(r"^\d+$")


@dataclass(frozen=True)
class Diagnosis:
    code: str
    title: str


@dataclass(frozen=True)
class ConsultationRecord:
    """The consultation part of a visit, as the doctor's form shows it."""

    visit_id: str
    patient_id: str
    doctor_id: str
    status: str
    complaint: str
    bp_systolic: int | None
    bp_diastolic: int | None
    pulse: int | None
    temperature_c: Decimal | None
    weight_kg: Decimal | None
    height_cm: int | None
    spo2: int | None
    examination: str
    diagnoses: list[Diagnosis]
    advice: str
    follow_up_date: date | None


def _parse_int_vital(value: object, field: str, errors: dict[str, str]) -> int | None:
    label, unit, low, high = _INT_VITALS[field]
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT_TEXT.match(value.strip()):
        number = int(value.strip())
    elif isinstance(value, str) and value.strip().startswith("-"):
        errors[field] = f"{label} cannot be negative."
        return None
    if number is None:
        errors[field] = f"{label} must be a whole number ({unit})."
        return None
    if not low <= number <= high:
        errors[field] = f"{label} must be between {low} and {high} {unit}."
        return None
    return number


def _parse_tenths_vital(value: object, field: str, errors: dict[str, str]) -> int | None:
    label, unit, low, high = _TENTHS_VITALS[field]
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise InvalidOperation
        if isinstance(value, str):
            number = Decimal(value.strip().replace(",", "."))
        elif isinstance(value, float):  # a spin box's value: its shortest decimal form
            number = Decimal(repr(value))
        else:
            number = Decimal(value)
    except InvalidOperation:
        errors[field] = f"{label} must be a number ({unit})."
        return None
    if not number.is_finite():
        errors[field] = f"{label} must be a number ({unit})."
        return None
    if number < 0:
        errors[field] = f"{label} cannot be negative."
        return None
    tenths = number * 10
    if tenths != tenths.to_integral_value():
        errors[field] = f"{label} can have one decimal place at most."
        return None
    scaled = int(tenths)
    if not low <= scaled <= high:
        errors[field] = (
            f"{label} must be between {low // 10}.{low % 10} and {high // 10}.{high % 10} {unit}."
        )
        return None
    return scaled


def _parse_follow_up(value: object, today: date, errors: dict[str, str]) -> date | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, datetime):
        errors["follow_up_date"] = "The follow-up date must be a date without a time."
        return None
    if isinstance(value, date):
        day = value
    elif isinstance(value, str):
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            errors["follow_up_date"] = "The follow-up date is not a valid date (YYYY-MM-DD)."
            return None
    else:
        errors["follow_up_date"] = "The follow-up date is not a valid date (YYYY-MM-DD)."
        return None
    if day < today:
        errors["follow_up_date"] = "The follow-up date cannot be in the past."
        return None
    if day > today + FOLLOW_UP_HORIZON:
        errors["follow_up_date"] = "The follow-up date is more than two years ahead."
        return None
    return day


def _parse_diagnoses(value: object, errors: dict[str, str]) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        errors["diagnosis_codes"] = "Diagnoses must be a list of ICD-10 codes."
        return []
    index = icd10()
    codes: list[str] = []
    unknown: list[str] = []
    for raw in value:
        entry = index.get(raw) if isinstance(raw, str) else None
        if entry is None:
            unknown.append(str(raw)[:20])
        elif entry.code not in codes:
            codes.append(entry.code)
    if unknown:
        listed = ", ".join(repr(code) for code in unknown[:3])
        errors["diagnosis_codes"] = (
            f"Not in the ICD-10 list: {listed}. Search by code or words and pick a listed code."
        )
    elif len(codes) > MAX_DIAGNOSES:
        errors["diagnosis_codes"] = f"At most {MAX_DIAGNOSES} diagnoses per visit."
    return codes


def _load_visit(session: Session, desk: Desk, visit_id: str) -> Visit:
    visit = session.get(Visit, visit_id)
    if visit is None or visit.deleted or visit.clinic_id != desk.clinic_id:
        raise NotFound("That visit no longer exists.")
    return visit


def _local_day(moment: datetime | None, session: Session, desk: Desk) -> date | None:
    if moment is None:
        return None
    return moment.astimezone(clinic_zone(clinic_settings(session, desk))).date()


def check_clinician(user: User, visit: Visit, *, action: str) -> None:
    """Only the visit's doctor (or an admin) writes its clinical record."""
    if user.has_role("admin"):
        return
    if not user.has_role("doctor"):
        raise PermissionDenied(f"Only a doctor can {action}.")
    if visit.doctor_id != user.id:
        raise PermissionDenied(f"Only the visit's own doctor can {action}.")


def check_record_open(session: Session, desk: Desk, visit: Visit) -> None:
    """The consultation record can change while in consultation, or on the day it finished."""
    if visit.status == "in_consultation":
        return
    if visit.status == "completed":
        finished = _local_day(visit.finished_at, session, desk) or visit.day
        if finished == clinic_today(session, desk):
            return
        raise InvalidState(
            "This visit was completed on an earlier day; its record can no longer be changed."
        )
    if visit.status in ("waiting", "called"):
        raise InvalidState("Start the consultation before recording it.")
    raise InvalidState("This visit was cancelled or marked as no-show; nothing can be recorded.")


def _record(visit: Visit) -> ConsultationRecord:
    index = icd10()
    diagnoses = []
    for code in visit.diagnosis_codes or []:
        entry = index.get(code)
        diagnoses.append(Diagnosis(code=code, title=entry.title if entry else ""))
    return ConsultationRecord(
        visit_id=visit.id,
        patient_id=visit.patient_id,
        doctor_id=visit.doctor_id,
        status=visit.status,
        complaint=visit.complaint,
        bp_systolic=visit.bp_systolic,
        bp_diastolic=visit.bp_diastolic,
        pulse=visit.pulse,
        temperature_c=None if visit.temperature_dc is None else Decimal(visit.temperature_dc) / 10,
        weight_kg=None if visit.weight_hg is None else Decimal(visit.weight_hg) / 10,
        height_cm=visit.height_cm,
        spo2=visit.spo2,
        examination=visit.examination,
        diagnoses=diagnoses,
        advice=visit.advice,
        follow_up_date=visit.follow_up_date,
    )


def get_consultation(desk: Desk, actor: Actor, visit_id: str) -> ConsultationRecord:
    """Open a visit's consultation record (an audited opening of the patient's record)."""
    with desk.transaction(actor) as session:
        authorize(session, actor, "doctor", "admin", action="open a consultation record")
        visit = _load_visit(session, desk, visit_id)
        record_event(
            session,
            desk,
            actor,
            "patient.open",
            "patient",
            visit.patient_id,
            f"view=consultation visit={visit.id}",
        )
        return _record(visit)


def record_consultation(
    desk: Desk,
    actor: Actor,
    visit_id: str,
    *,
    complaint: str | _Unset = UNSET,
    bp_systolic: int | str | _Unset | None = UNSET,
    bp_diastolic: int | str | _Unset | None = UNSET,
    pulse: int | str | _Unset | None = UNSET,
    temperature_c: str | Decimal | float | _Unset | None = UNSET,
    weight_kg: str | Decimal | float | _Unset | None = UNSET,
    height_cm: int | str | _Unset | None = UNSET,
    spo2: int | str | _Unset | None = UNSET,
    examination: str | _Unset = UNSET,
    diagnosis_codes: Sequence[str] | _Unset = UNSET,
    advice: str | _Unset = UNSET,
    follow_up_date: date | str | _Unset | None = UNSET,
) -> ConsultationRecord:
    """Save the given fields of a visit's consultation (fields left out keep their value).

    Vitals come as typed (text or numbers; temperature and weight with one decimal) and an
    empty value clears one. Every field is checked before anything is written; all problems
    come back together in one :class:`ValidationError`, keyed by field name.
    """
    given = {
        "complaint": complaint,
        "bp_systolic": bp_systolic,
        "bp_diastolic": bp_diastolic,
        "pulse": pulse,
        "temperature_c": temperature_c,
        "weight_kg": weight_kg,
        "height_cm": height_cm,
        "spo2": spo2,
        "examination": examination,
        "diagnosis_codes": diagnosis_codes,
        "advice": advice,
        "follow_up_date": follow_up_date,
    }
    given = {key: value for key, value in given.items() if not isinstance(value, _Unset)}
    with desk.transaction(actor) as session:
        user = authorize(session, actor, "doctor", "admin", action="record a consultation")
        visit = _load_visit(session, desk, visit_id)
        check_clinician(user, visit, action="record this consultation")
        check_record_open(session, desk, visit)

        errors: dict[str, str] = {}
        values: dict[str, object] = {}
        texts = {
            "complaint": ("Complaint", MAX_COMPLAINT),
            "examination": ("Examination notes", MAX_EXAMINATION),
            "advice": ("Advice", MAX_ADVICE),
        }
        for field, (label, limit) in texts.items():
            if field in given:
                values[field] = check_text(given[field], field, label, limit, errors)
        for field in _INT_VITALS:
            if field in given:
                values[field] = _parse_int_vital(given[field], field, errors)
        for field, column in _TENTHS_COLUMN.items():
            if field in given:
                values[column] = _parse_tenths_vital(given[field], field, errors)
        if "diagnosis_codes" in given:
            values["diagnosis_codes"] = _parse_diagnoses(given["diagnosis_codes"], errors)
        if "follow_up_date" in given:
            today = clinic_today(session, desk)
            values["follow_up_date"] = _parse_follow_up(given["follow_up_date"], today, errors)

        if "bp_systolic" not in errors and "bp_diastolic" not in errors:
            systolic = values.get("bp_systolic", visit.bp_systolic)
            diastolic = values.get("bp_diastolic", visit.bp_diastolic)
            if (systolic is None) != (diastolic is None):
                missing = "bp_diastolic" if diastolic is None else "bp_systolic"
                errors[missing] = "Enter both the systolic and the diastolic pressure."
            elif isinstance(systolic, int) and isinstance(diastolic, int) and systolic <= diastolic:
                errors["bp_systolic"] = "Systolic pressure must be higher than diastolic pressure."
        if errors:
            raise ValidationError(errors)

        changed = [key for key, value in values.items() if getattr(visit, key) != value]
        for key in changed:
            setattr(visit, key, values[key])
        if changed:
            record_event(
                session,
                desk,
                actor,
                "visit.consultation",
                "visit",
                visit.id,
                "fields=" + ",".join(sorted(changed)),
            )
        return _record(visit)


def finish_consultation(desk: Desk, actor: Actor, visit_id: str) -> ConsultationRecord:
    """The doctor's "finish visit": check the record is complete, then complete the visit
    through the queue's state machine (``queue.complete``), which hands it to billing.

    Needs a complaint or at least one diagnosis, and no prescription left unsigned (sign it
    or discard it first), so nothing half-written reaches the patient or the bill.
    """
    with desk.reading() as session:
        user = authorize(session, actor, "doctor", "admin", action="finish a consultation")
        visit = _load_visit(session, desk, visit_id)
        check_clinician(user, visit, action="finish this consultation")
        if visit.status != "in_consultation":
            if visit.status == "completed":
                raise InvalidState("This visit is already finished.")
            raise InvalidState("Only a visit in consultation can be finished.")
        if not visit.complaint.strip() and not visit.diagnosis_codes:
            raise ValidationError(
                {"complaint": "Record the complaint or a diagnosis before finishing the visit."}
            )
        draft = session.scalar(
            select(Prescription.id).where(
                Prescription.visit_id == visit.id,
                Prescription.status == "draft",
                Prescription.deleted.is_(False),
            )
        )
        if draft:
            raise InvalidState("Sign or discard the draft prescription before finishing the visit.")
    completed = queue.complete(desk, actor, visit_id)
    return _record(completed)


# --- history ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryItem:
    medicine_name: str
    strength: str
    form: str
    dose: str
    frequency: str
    duration: str
    route: str
    quantity: str
    instructions: str


@dataclass(frozen=True)
class HistoryPrescription:
    prescription_id: str
    revision: int
    signed_at: datetime | None
    items: list[HistoryItem]


@dataclass(frozen=True)
class HistoryEntry:
    """One earlier visit on the patient's timeline."""

    visit_id: str
    patient_id: str  # the record it was made under (differs for merged records)
    day: date
    status: str
    doctor_name: str
    complaint: str
    diagnoses: list[Diagnosis]
    advice: str
    follow_up_date: date | None
    prescriptions: list[HistoryPrescription]


def _surviving_patient(session: Session, desk: Desk, patient_id: str) -> Patient:
    patient = session.get(Patient, patient_id)
    seen: set[str] = set()
    while patient is not None and patient.merged_into and patient.id not in seen:
        seen.add(patient.id)
        patient = session.get(Patient, patient.merged_into)
    if patient is None or patient.deleted or patient.clinic_id != desk.clinic_id:
        raise NotFound("That patient record no longer exists.")
    return patient


def _record_family(session: Session, patient_id: str) -> list[str]:
    """The patient and every record merged into it, directly or through another merge."""
    family = [patient_id]
    frontier = [patient_id]
    while frontier:
        children = session.scalars(
            select(Patient.id).where(Patient.merged_into.in_(frontier))
        ).all()
        frontier = [child for child in children if child not in family]
        family.extend(frontier)
    return family


def history(
    desk: Desk, actor: Actor, patient_id: str, *, exclude_visit_id: str | None = None
) -> list[HistoryEntry]:
    """The patient's earlier visits, newest first, with diagnoses and signed prescriptions.

    Includes visits recorded under records later merged into this one; a merged-away id is
    followed to the record it was merged into. Each call is audited as an opening of the
    patient's record. Pass the current visit as ``exclude_visit_id`` to leave it out.
    """
    with desk.transaction(actor) as session:
        authorize(session, actor, "doctor", "admin", action="read a patient's history")
        patient = _surviving_patient(session, desk, patient_id)
        family = _record_family(session, patient.id)
        visits = session.scalars(
            select(Visit)
            .where(
                Visit.patient_id.in_(family),
                Visit.deleted.is_(False),
                Visit.status.in_(("in_consultation", "completed")),
            )
            .order_by(Visit.day.desc(), Visit.arrived_at.desc())
        ).all()
        visits = [v for v in visits if v.id != exclude_visit_id]
        visit_ids = [v.id for v in visits]
        doctors = {
            user.id: user.full_name
            for user in session.scalars(
                select(User).where(User.id.in_({v.doctor_id for v in visits}))
            )
        }
        prescriptions = session.scalars(
            select(Prescription)
            .where(
                Prescription.visit_id.in_(visit_ids),
                Prescription.status == "signed",
                Prescription.deleted.is_(False),
            )
            .order_by(Prescription.revision)
        ).all()
        superseded = {p.supersedes_id for p in prescriptions if p.supersedes_id}
        current = [p for p in prescriptions if p.id not in superseded]
        items = session.scalars(
            select(PrescriptionItem)
            .where(
                PrescriptionItem.prescription_id.in_([p.id for p in current]),
                PrescriptionItem.deleted.is_(False),
            )
            .order_by(PrescriptionItem.position)
        ).all()
        items_by_rx: dict[str, list[HistoryItem]] = {}
        for item in items:
            items_by_rx.setdefault(item.prescription_id, []).append(
                HistoryItem(
                    medicine_name=item.medicine_name,
                    strength=item.strength,
                    form=item.form,
                    dose=item.dose,
                    frequency=item.frequency,
                    duration=item.duration,
                    route=item.route,
                    quantity=item.quantity,
                    instructions=item.instructions,
                )
            )
        rx_by_visit: dict[str, list[HistoryPrescription]] = {}
        for rx in current:
            rx_by_visit.setdefault(rx.visit_id, []).append(
                HistoryPrescription(
                    prescription_id=rx.id,
                    revision=rx.revision,
                    signed_at=rx.signed_at,
                    items=items_by_rx.get(rx.id, []),
                )
            )
        entries = []
        for visit in visits:
            record = _record(visit)
            entries.append(
                HistoryEntry(
                    visit_id=visit.id,
                    patient_id=visit.patient_id,
                    day=visit.day,
                    status=visit.status,
                    doctor_name=doctors.get(visit.doctor_id, ""),
                    complaint=visit.complaint,
                    diagnoses=record.diagnoses,
                    advice=visit.advice,
                    follow_up_date=visit.follow_up_date,
                    prescriptions=rx_by_visit.get(visit.id, []),
                )
            )
        record_event(session, desk, actor, "patient.open", "patient", patient.id, "view=history")
        return entries
