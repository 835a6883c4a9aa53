"""The one place views call services from.

It holds no rules: each function calls a service and reshapes what comes back into the small
read-only rows the windows display (so a change in a service's return type touches one file,
not five windows). Everything here may raise the services' :class:`ClinicError` types, which
the windows show as messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from clinic_desktop.printing.documents import (
    ClinicHeader,
    PrescriptionDoc,
    PrescriptionLine,
)
from clinic_desktop.services import (
    audit,
    billing,
    catalogues,
    patients,
    prescriptions,
    queue,
    sync_admin,
    users,
)
from clinic_desktop.services import (
    consultation as consultation_service,
)

if TYPE_CHECKING:
    from clinic_desktop.services.context import Actor, Desk
    from clinic_desktop.store.open import OpenedStore


# ---------------------------------------------------------------------------- users


def setup_clinic(store: OpenedStore, values: dict[str, str]) -> Desk:
    """First-run setup from the wizard's fields; returns the new desk."""
    result = users.setup_clinic(
        store.engine,
        device_id=store.device_id,
        audit_key=store.audit_key,
        clock=store.clock,
        clinic_name=values.get("clinic_name", ""),
        currency=values.get("currency", ""),
        desk_code=values.get("desk_code", ""),
        admin_username=values.get("admin_username", ""),
        admin_full_name=values.get("admin_full_name", ""),
        password=values.get("password", ""),
    )
    # A new clinic starts with the shipped starter catalogue, so the doctor's medicine
    # autocomplete and the allergy check work from the first prescription.
    from clinic_desktop.services.catalogues import seed_medicines

    seed_medicines(result.desk, result.admin)
    return result.desk


def join_server(store: OpenedStore, values: dict[str, str], *, allow_insecure: bool) -> Desk:
    """Enrol this (empty) workstation with the clinic's server; the first download then
    runs in the sync worker."""
    from clinic_desktop.services.errors import InvalidState, ValidationError
    from clinic_desktop.store.open import desk_for
    from clinic_desktop.sync.enrolment import enrol

    missing = {
        name: message
        for name, message in (
            ("server_url", "Enter the server's address."),
            ("enrolment_code", "Enter the enrolment code from the administrator."),
            ("join_desk_code", "Enter this desk's code (one to three letters)."),
        )
        if not values.get(name, "").strip()
    }
    if missing:
        raise ValidationError(missing)
    enrol(
        store,
        values["server_url"],
        values["enrolment_code"],
        values["join_desk_code"],
        values.get("workstation_name", ""),
        allow_insecure=allow_insecure,
    )
    desk = desk_for(store)
    if desk is None:
        raise InvalidState("The server did not give this desk its identity; try again.")
    return desk


def sync_error_text(exc: BaseException) -> str | None:
    """A person-readable line for a sync/network failure, or None for anything else."""
    from clinic_desktop.sync.errors import SyncError

    if isinstance(exc, SyncError):
        return str(exc) or "The server could not be reached."
    return None


def sign_in(desk: Desk, username: str, password: str) -> Actor:
    return users.sign_in(desk, username, password)


@dataclass(frozen=True)
class SignInResult:
    actor: Actor
    tokens: Any  # the server's tokens, or None when signed in offline / standalone


def sign_in_anywhere(desk: Desk, transport: Any, username: str, password: str) -> SignInResult:
    """The server when this desk has one and it answers, else this desk's own accounts."""
    from clinic_desktop.sync.enrolment import sign_in_anywhere as sign_in_any

    result = sign_in_any(desk, transport, username, password)
    return SignInResult(result.actor, result.tokens)


def must_change_password(desk: Desk, actor: Actor) -> bool:
    return users.must_change_password(desk, actor)


def change_own_password(desk: Desk, actor: Actor, old: str, new: str) -> None:
    users.change_own_password(desk, actor, old, new)


def verify_unlock(desk: Desk, actor: Actor, password: str) -> Actor:
    return users.verify_password_for_unlock(desk, actor, password)


# ---------------------------------------------------------------------------- settings


def clinic_header(desk: Desk) -> ClinicHeader:
    """Name, address and phone for document headers and window titles."""
    settings = clinic_settings(desk)
    if settings is None:
        return ClinicHeader(name="Clinic")
    return ClinicHeader(name=settings.name, address=settings.address, phone=settings.phone)


@dataclass(frozen=True)
class SettingsView:
    name: str
    address: str
    phone: str
    currency: str
    tax_rate_bp: int
    idle_lock_minutes: int
    timezone: str


def clinic_settings(desk: Desk) -> SettingsView | None:
    from clinic_desktop.services.consultation import clinic_settings as read_settings

    with desk.reading() as session:
        row = read_settings(session, desk)
        if row is None:
            return None
        return SettingsView(
            name=row.name,
            address=row.address,
            phone=row.phone,
            currency=row.currency,
            tax_rate_bp=row.tax_rate_bp,
            idle_lock_minutes=row.idle_lock_minutes,
            timezone=row.timezone,
        )


def idle_lock_minutes(desk: Desk) -> float:
    settings = clinic_settings(desk)
    return float(settings.idle_lock_minutes) if settings and settings.idle_lock_minutes else 5.0


# ---------------------------------------------------------------------------- queue and board


@dataclass(frozen=True)
class BoardLine:
    """One doctor on the waiting-room board (token labels only: the board faces the public)."""

    doctor_id: str
    doctor_name: str
    now_serving: str | None
    next_tokens: tuple[str, ...]


def board_lines(desk: Desk, day: date | None = None) -> list[BoardLine]:
    """Per doctor: the token just called (or the one in consultation) and the next few."""
    return [
        BoardLine(
            doctor_id=row.doctor_id,
            doctor_name=row.doctor_name,
            now_serving=row.called[-1] if row.called else row.serving,
            next_tokens=tuple(row.next),
        )
        for row in queue.now_serving(desk, day)
    ]


@dataclass(frozen=True)
class DoctorRef:
    id: str
    name: str


def doctors(desk: Desk) -> list[DoctorRef]:
    return [DoctorRef(d.user_id, d.full_name) for d in queue.list_doctors(desk)]


@dataclass(frozen=True)
class QueueRow:
    """A token in a queue list."""

    visit_id: str
    token: str
    status: str
    priority: int
    patient_id: str
    patient_name: str
    patient_number: str
    doctor_id: str
    doctor_name: str
    arrived_at: datetime

    @property
    def arrived(self) -> str:
        return self.arrived_at.astimezone().strftime("%H:%M")


def _queue_rows(entries: Sequence[Any], doctor_name: str) -> list[QueueRow]:
    return [
        QueueRow(
            visit_id=e.visit_id,
            token=e.token_label,
            status=e.status,
            priority=e.priority,
            patient_id=e.patient_id,
            patient_name=e.patient_name,
            patient_number=e.patient_number,
            doctor_id=e.doctor_id,
            doctor_name=doctor_name,
            arrived_at=e.arrived_at,
        )
        for e in entries
    ]


def today_queue(
    desk: Desk, actor: Actor, doctor_id: str | None, *, include_finished: bool = False
) -> list[QueueRow]:
    """Today's tokens of one doctor, or of every doctor (grouped by doctor)."""
    rows: list[QueueRow] = []
    for doctor in doctors(desk):
        if doctor_id is not None and doctor.id != doctor_id:
            continue
        entries = queue.doctor_queue(desk, doctor.id, include_finished=include_finished)
        rows.extend(_queue_rows(entries, doctor.name))
    return rows


def doctor_queue(desk: Desk, actor: Actor) -> list[QueueRow]:
    """The signed-in doctor's own queue."""
    return _queue_rows(queue.doctor_queue(desk, actor.user_id), actor.full_name)


def _row_for(desk: Desk, actor: Actor, visit: Any) -> QueueRow:
    for row in today_queue(desk, actor, visit.doctor_id, include_finished=True):
        if row.visit_id == visit.id:
            return row
    from clinic_desktop.services.errors import NotFound

    raise NotFound("That token is not in today's queue.")


def call_next(desk: Desk, actor: Actor) -> QueueRow | None:
    """Call the head of the doctor's queue; None when nobody is waiting."""
    visit = queue.call_next(desk, actor)
    return _row_for(desk, actor, visit) if visit is not None else None


def start_consultation(desk: Desk, actor: Actor, visit_id: str) -> QueueRow:
    return _row_for(desk, actor, queue.start(desk, actor, visit_id))


@dataclass(frozen=True)
class TokenView:
    """What a token slip shows."""

    visit_id: str
    token_label: str
    doctor_name: str
    patient_name: str
    patient_number: str
    issued_at: datetime
    waiting_ahead: int | None


def token_from_row(row: QueueRow, desk: Desk, actor: Actor) -> TokenView:
    ahead = [r for r in today_queue(desk, actor, row.doctor_id) if r.status == "waiting"]
    position = next((n for n, r in enumerate(ahead) if r.visit_id == row.visit_id), None)
    return TokenView(
        visit_id=row.visit_id,
        token_label=row.token,
        doctor_name=row.doctor_name,
        patient_name=row.patient_name,
        patient_number=row.patient_number,
        issued_at=row.arrived_at,
        waiting_ahead=position,
    )


def issue_token(
    desk: Desk, actor: Actor, patient_id: str, doctor_id: str, priority: int
) -> TokenView:
    visit = queue.issue_token(desk, actor, patient_id, doctor_id, priority=priority)
    return token_from_row(_row_for(desk, actor, visit), desk, actor)


def move_in_queue(desk: Desk, actor: Actor, visit_id: str, steps: int) -> bool:
    queue.move(desk, actor, visit_id, steps)
    return True


def set_priority(desk: Desk, actor: Actor, visit_id: str, priority: int) -> bool:
    queue.set_priority(desk, actor, visit_id, priority)
    return True


def mark_no_show(desk: Desk, actor: Actor, visit_id: str) -> bool:
    queue.no_show(desk, actor, visit_id)
    return True


def cancel_visit(desk: Desk, actor: Actor, visit_id: str) -> bool:
    queue.cancel(desk, actor, visit_id)
    return True


# ---------------------------------------------------------------------------- patients

SEX_SHORT = {"female": "F", "male": "M", "other": "O", "unknown": "?", "": "?"}


def age_text(born: date | None, estimated: bool = False, today: date | None = None) -> str:
    """ "34 y", "7 m", "~40 y" for an estimated birth date, "" when unknown."""
    if born is None:
        return ""
    today = today or date.today()
    months = (today.year - born.year) * 12 + today.month - born.month - (today.day < born.day)
    if months < 0:
        return ""
    text = f"{months} m" if months < 24 else f"{months // 12} y"
    return f"~{text}" if estimated else text


@dataclass(frozen=True)
class PatientRow:
    """A patient as lists show them (search results, duplicate warnings)."""

    id: str
    name: str
    number: str
    phone: str
    age_sex: str
    allergies: str = ""


def _age_sex(born: date | None, estimated: bool, sex: str) -> str:
    age = age_text(born, estimated)
    short = SEX_SHORT.get(sex, "?")
    return f"{age} / {short}" if age else short


def _patient_row(p: Any) -> PatientRow:
    return PatientRow(
        id=p.id,
        name=p.full_name,
        number=p.patient_number,
        phone=p.phone,
        age_sex=_age_sex(p.date_of_birth, p.dob_estimated, p.sex),
        allergies=getattr(p, "allergies", "") or "",
    )


@dataclass(frozen=True)
class PatientRecord:
    """A patient's full record as the edit form shows it."""

    patient_id: str
    name: str
    number: str
    sex: str
    date_of_birth: date | None
    dob_estimated: bool
    age_years: int | None
    phone: str
    address: str
    emergency_contact_name: str
    emergency_contact_phone: str
    allergies: str
    blood_group: str
    notes: str


def open_patient(desk: Desk, actor: Actor, patient_id: str) -> PatientRecord:
    """The full record (the service audits the opening)."""
    p = patients.open_record(desk, actor, patient_id)
    age = age_text(p.date_of_birth)
    return PatientRecord(
        patient_id=p.id,
        name=p.full_name,
        number=p.patient_number,
        sex=p.sex,
        date_of_birth=p.date_of_birth,
        dob_estimated=p.dob_estimated,
        age_years=int(age[:-2]) if age.endswith(" y") else None,
        phone=p.phone,
        address=p.address,
        emergency_contact_name=p.emergency_contact_name,
        emergency_contact_phone=p.emergency_contact_phone,
        allergies=p.allergies,
        blood_group=p.blood_group,
        notes=p.notes,
    )


def edit_patient(
    desk: Desk, actor: Actor, patient_id: str, changes: dict[str, object]
) -> PatientRow:
    return _patient_row(patients.edit(desk, actor, patient_id, changes))


def search_patients(desk: Desk, actor: Actor, query: str, limit: int = 50) -> list[PatientRow]:
    return [_patient_row(hit) for hit in patients.search(desk, query, limit=limit)]


def _draft(values: dict[str, object]) -> Any:
    return patients.PatientDraft(**{k: v for k, v in values.items()})  # type: ignore[arg-type]


def find_duplicates(desk: Desk, actor: Actor, values: dict[str, object]) -> list[PatientRow]:
    """Likely existing records for the form's values (empty when the form is not valid yet:
    registering then reports the field problems)."""
    from clinic_desktop.services.errors import ValidationError

    try:
        return [_patient_row(p) for p in patients.find_duplicates(desk, _draft(values))]
    except ValidationError:
        return []


def register_patient(
    desk: Desk, actor: Actor, values: dict[str, object], *, confirmed: bool
) -> PatientRow:
    """Register; raises the service's duplicate warning unless a person ``confirmed``."""
    patient = patients.register(desk, actor, _draft(values), confirm_not_duplicate=confirmed)
    return _patient_row(patient)


def duplicate_candidates(exc: BaseException) -> list[PatientRow] | None:
    """The likely matches behind a duplicate warning, or None for any other error."""
    if isinstance(exc, patients.DuplicateWarning):
        return [_patient_row(p) for p in exc.candidates]
    return None


@dataclass(frozen=True)
class PatientHeader:
    """What the doctor sees at the top: who, how old, and what they are allergic to."""

    patient_id: str
    name: str
    number: str
    age_sex: str
    allergies: str
    blood_group: str
    phone: str


def patient_header(desk: Desk, actor: Actor, patient_id: str) -> PatientHeader:
    p = patients.open_record(desk, actor, patient_id)
    return PatientHeader(
        patient_id=p.id,
        name=p.full_name,
        number=p.patient_number,
        age_sex=_age_sex(p.date_of_birth, p.dob_estimated, p.sex),
        allergies=p.allergies,
        blood_group=p.blood_group,
        phone=p.phone,
    )


# ---------------------------------------------------------------------------- consultation


def search_icd10(query: str, limit: int = 20) -> list[tuple[str, str]]:
    return [(c.code, c.title) for c in catalogues.search_icd10(query, limit)]


@dataclass(frozen=True)
class ConsultationView:
    complaint: str
    examination: str
    advice: str
    vitals: dict[str, str]
    diagnoses: list[tuple[str, str]]
    follow_up_date: date | None

    @classmethod
    def empty(cls) -> ConsultationView:
        return cls("", "", "", {}, [], None)


def _consultation_view(r: Any) -> ConsultationView:
    def text(value: object) -> str:
        return "" if value is None else str(value)

    vitals = {
        "bp_systolic": text(r.bp_systolic),
        "bp_diastolic": text(r.bp_diastolic),
        "pulse": text(r.pulse),
        "temperature_c": text(r.temperature_c),
        "weight_kg": text(r.weight_kg),
        "height_cm": text(r.height_cm),
        "spo2": text(r.spo2),
    }
    return ConsultationView(
        complaint=r.complaint,
        examination=r.examination,
        advice=r.advice,
        vitals=vitals,
        diagnoses=[(d.code, d.title) for d in r.diagnoses],
        follow_up_date=r.follow_up_date,
    )


def consultation(desk: Desk, actor: Actor, visit_id: str) -> ConsultationView:
    return _consultation_view(consultation_service.get_consultation(desk, actor, visit_id))


def record_consultation(
    desk: Desk, actor: Actor, visit_id: str, values: dict[str, object]
) -> ConsultationView:
    return _consultation_view(
        consultation_service.record_consultation(desk, actor, visit_id, **values)  # type: ignore[arg-type]
    )


def finish_consultation(desk: Desk, actor: Actor, visit_id: str) -> ConsultationView:
    return _consultation_view(consultation_service.finish_consultation(desk, actor, visit_id))


def history_html(desk: Desk, actor: Actor, patient_id: str, exclude_visit_id: str) -> str:
    """The patient's timeline as escaped HTML for a read-only text browser."""
    from html import escape

    entries = consultation_service.history(
        desk, actor, patient_id, exclude_visit_id=exclude_visit_id
    )
    if not entries:
        return "<p style='color:#627d98'>No earlier visits.</p>"
    parts: list[str] = []
    for e in entries:
        parts.append(
            f"<h3 style='margin-bottom:2px'>{escape(e.day.isoformat())} · "
            f"{escape(e.doctor_name)}</h3>"
        )
        if e.complaint:
            parts.append(f"<div><b>Complaint:</b> {escape(e.complaint)}</div>")
        if e.diagnoses:
            diag = "; ".join(f"{d.code} {d.title}" for d in e.diagnoses)
            parts.append(f"<div><b>Diagnosis:</b> {escape(diag)}</div>")
        if e.advice:
            parts.append(f"<div><b>Advice:</b> {escape(e.advice)}</div>")
        for rx in e.prescriptions:
            items = ", ".join(
                " ".join(
                    x for x in (i.medicine_name, i.strength, i.dose, i.frequency, i.duration) if x
                )
                for i in rx.items
            )
            parts.append(f"<div><b>Rx (rev {rx.revision}):</b> {escape(items)}</div>")
        parts.append("<hr>")
    return "".join(parts)


# ---------------------------------------------------------------------------- prescriptions


@dataclass(frozen=True)
class MedicineChoice:
    id: str
    name: str
    strength: str
    form: str
    route: str
    label: str


def search_medicines(desk: Desk, query: str, limit: int = 15) -> list[MedicineChoice]:
    return [
        MedicineChoice(o.id, o.name, o.strength, o.form, o.route, o.label)
        for o in catalogues.search_medicines(desk, query, limit)
    ]


def prescription_presets() -> dict[str, list[str]]:
    """Suggestions the builder offers (the service owns the lists)."""
    return {
        "dose": list(prescriptions.DOSE_PRESETS),
        "frequency": list(prescriptions.FREQUENCY_PRESETS),
        "frequency_meaning": [f"{k}: {v}" for k, v in prescriptions.FREQUENCY_PRESETS.items()],
        "duration": list(prescriptions.DURATION_PRESETS),
        "route": list(prescriptions.ROUTES),
    }


@dataclass(frozen=True)
class RxLine:
    """A prescription line as the builder shows it (``item_id`` once stored in the draft)."""

    medicine: str
    medicine_id: str | None = None
    strength: str = ""
    form: str = ""
    dose: str = ""
    frequency: str = ""
    duration: str = ""
    route: str = ""
    quantity: str = ""
    instructions: str = ""
    item_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DraftView:
    prescription_id: str
    revision: int
    status: str
    lines: list[RxLine]


def _draft_view(view: Any) -> DraftView:
    return DraftView(
        prescription_id=view.id,
        revision=view.revision,
        status=view.status,
        lines=[
            RxLine(
                medicine=i.medicine_name,
                medicine_id=i.medicine_id,
                strength=i.strength,
                form=i.form,
                dose=i.dose,
                frequency=i.frequency,
                duration=i.duration,
                route=i.route,
                quantity=i.quantity,
                instructions=i.instructions,
                item_id=i.id,
            )
            for i in view.items
        ],
    )


def current_draft(desk: Desk, actor: Actor, visit_id: str) -> DraftView | None:
    """The visit's latest prescription (draft or signed), if any."""
    views = prescriptions.prescriptions_for_visit(desk, actor, visit_id)
    return _draft_view(views[-1]) if views else None


def ensure_draft(desk: Desk, actor: Actor, visit_id: str) -> DraftView:
    """The visit's editable draft: the existing draft, an amendment of a signed one, or new."""
    views = prescriptions.prescriptions_for_visit(desk, actor, visit_id)
    if not views:
        return _draft_view(prescriptions.create_draft(desk, actor, visit_id))
    latest = views[-1]
    if latest.status == "signed":
        return _draft_view(prescriptions.amend(desk, actor, latest.id))
    return _draft_view(latest)


def add_line(desk: Desk, actor: Actor, prescription_id: str, line: RxLine) -> tuple[str, list[str]]:
    """Store a line in the draft; returns its item id and any allergy warnings for it."""
    result = prescriptions.add_item(
        desk,
        actor,
        prescription_id,
        medicine_id=line.medicine_id,
        medicine_name=line.medicine,
        strength=line.strength,
        form=line.form,
        dose=line.dose,
        frequency=line.frequency,
        duration=line.duration,
        route=line.route,
        quantity=line.quantity,
        instructions=line.instructions,
    )
    return result.item.id, [w.message for w in result.warnings]


def remove_line(desk: Desk, actor: Actor, item_id: str) -> DraftView:
    return _draft_view(prescriptions.remove_item(desk, actor, item_id))


def discard_draft(desk: Desk, actor: Actor, prescription_id: str) -> bool:
    prescriptions.discard_draft(desk, actor, prescription_id)
    return True


def get_draft(desk: Desk, actor: Actor, prescription_id: str) -> DraftView:
    return _draft_view(prescriptions.get_prescription(desk, actor, prescription_id))


@dataclass(frozen=True)
class Favourite:
    prescription_id: str
    summary: str


def favourites(desk: Desk, actor: Actor) -> list[Favourite]:
    return [
        Favourite(f.prescription_id, f.summary)
        for f in prescriptions.favourite_sources(desk, actor)
    ]


def apply_favourite(
    desk: Desk, actor: Actor, prescription_id: str, source_id: str
) -> tuple[DraftView, list[str]]:
    view, warnings = prescriptions.copy_items_from(desk, actor, prescription_id, source_id)
    return _draft_view(view), [w.message for w in warnings]


def sign_prescription(
    desk: Desk, actor: Actor, prescription_id: str, *, acknowledge_allergy: bool
) -> DraftView:
    return _draft_view(
        prescriptions.sign(desk, actor, prescription_id, acknowledge_allergy=acknowledge_allergy)
    )


def allergy_refusal(exc: BaseException) -> list[str] | None:
    """The warnings behind a refused signature, or None if ``exc`` is something else."""
    if isinstance(exc, prescriptions.AllergyAcknowledgementRequired):
        return [w.message for w in exc.warnings]
    return None


def prescription_document(desk: Desk, actor: Actor, prescription_id: str) -> PrescriptionDoc:
    doc = prescriptions.prescription_document(desk, prescription_id, actor)
    sex = SEX_SHORT.get(doc.patient_sex, "")
    return PrescriptionDoc(
        clinic=ClinicHeader(doc.clinic_name, doc.clinic_address, doc.clinic_phone),
        patient_name=doc.patient_name,
        patient_number=doc.patient_number,
        age_sex=" / ".join(x for x in (doc.patient_age, sex) if x),
        doctor_name=doc.doctor_name,
        issued_on=doc.dated,
        items=[
            PrescriptionLine(
                medicine=i.medicine_name,
                strength=i.strength,
                form=i.form,
                dose=i.dose,
                frequency=(
                    f"{i.frequency} ({i.frequency_meaning})" if i.frequency_meaning else i.frequency
                ),
                duration=i.duration,
                route=i.route,
                quantity=i.quantity,
                instructions=i.instructions,
            )
            for i in doc.items
        ],
        allergies=doc.allergies,
        diagnoses=[f"{code} {title}".strip() for code, title in doc.diagnoses],
        advice=doc.advice,
        follow_up=doc.follow_up_date,
        revision=doc.revision,
        signed_at=doc.signed_at if doc.signed else None,
    )


# ---------------------------------------------------------------------------- money


def money(minor: int, currency: str, *, with_code: bool = True) -> str:
    from clinic_desktop.services.money import format_amount

    return format_amount(minor, currency, with_code=with_code)


def parse_money(text: str, currency: str, *, field: str = "amount", label: str = "Amount") -> int:
    from clinic_desktop.services.money import parse_amount

    return parse_amount(text.strip(), currency, field=field, label=label)


def parse_percent(text: str) -> int:
    from clinic_desktop.services.money import parse_percent as parse

    return parse(text.strip(), field="discount")


# ---------------------------------------------------------------------------- billing


def price_items(desk: Desk, *, include_inactive: bool = False) -> list[Any]:
    return list(billing.list_price_items(desk, include_inactive=include_inactive))


def bills_awaiting(desk: Desk, actor: Actor) -> list[Any]:
    return list(billing.bills_awaiting(desk, actor))


def open_bill_for(desk: Desk, actor: Actor, visit: Any) -> Any:
    """The visit's draft bill if one was started, else a new one pre-filled by the service."""
    if visit.draft_bill_id:
        return billing.get_bill(desk, actor, visit.draft_bill_id)
    return billing.create_bill_for_visit(desk, actor, visit.visit_id)


def get_bill(desk: Desk, actor: Actor, bill_id: str) -> Any:
    return billing.get_bill(desk, actor, bill_id)


def add_price_line(desk: Desk, actor: Actor, bill_id: str, item_id: str, qty: int) -> Any:
    return billing.add_price_line(desk, actor, bill_id, item_id, qty)


def add_custom_line(desk: Desk, actor: Actor, bill_id: str, text: str, price: int) -> Any:
    return billing.add_custom_line(desk, actor, bill_id, text, price)


def remove_bill_line(desk: Desk, actor: Actor, line_id: str) -> Any:
    return billing.remove_line(desk, actor, line_id)


def set_discount(
    desk: Desk, actor: Actor, bill_id: str, amount: int | None, percent_bp: int | None
) -> Any:
    return billing.set_discount(desk, actor, bill_id, amount_minor=amount, percent_bp=percent_bp)


def issue_bill(desk: Desk, actor: Actor, bill_id: str) -> Any:
    return billing.issue_bill(desk, actor, bill_id)


def pay_cash(desk: Desk, actor: Actor, bill_id: str, tendered: int, applied: int | None) -> Any:
    return billing.record_cash_payment(desk, actor, bill_id, tendered, applied)


def pay_card(desk: Desk, actor: Actor, bill_id: str, amount: int, reference: str) -> Any:
    return billing.record_card_payment(desk, actor, bill_id, amount, reference)


def refund(desk: Desk, actor: Actor, payment_id: str, amount: int, reason: str) -> Any:
    return billing.refund_payment(desk, actor, payment_id, amount, reason)


def receipt_document(desk: Desk, actor: Actor, bill_id: str) -> Any:
    from clinic_desktop.printing.documents import ReceiptDoc, ReceiptLine, ReceiptPayment

    doc = billing.receipt_document(desk, bill_id, actor)
    return ReceiptDoc(
        clinic=ClinicHeader(doc.clinic_name, doc.clinic_address, doc.clinic_phone),
        invoice_number=doc.invoice_number,
        patient_name=doc.patient_name,
        patient_number=doc.patient_number,
        currency=doc.currency,
        lines=[
            ReceiptLine(x.description, x.quantity, x.unit_price_minor, x.amount_minor)
            for x in doc.lines
        ],
        subtotal_minor=doc.subtotal_minor,
        discount_minor=doc.discount_minor,
        tax_minor=doc.tax_minor,
        total_minor=doc.total_minor,
        payments=[
            ReceiptPayment(p.method, p.amount_minor, p.received_at, p.reference, p.reason)
            for p in doc.payments
        ],
        cashier=doc.printed_by,
        issued_at=doc.issued_at,
        title=doc.title,
        doctor_name=doc.doctor_name,
        cancels_invoice=doc.cancels_invoice,
        paid=doc.paid_minor,
        balance=doc.balance_minor,
    )


def day_end(desk: Desk, actor: Actor, day: date) -> Any:
    return billing.day_end_summary(desk, actor, day)


def day_end_document(desk: Desk, summary: Any) -> Any:
    from clinic_desktop.printing.documents import DayEndReport, ReportRow

    def rows(lines: Sequence[Any]) -> list[ReportRow]:
        return [
            ReportRow(x.label, x.payments + x.refunds, x.received_minor, x.refunded_minor)
            for x in lines
        ]

    header = clinic_header(desk)
    return DayEndReport(
        clinic=header,
        day=summary.first_day,
        currency=summary.currency,
        by_method=rows(summary.by_method),
        by_user=rows(summary.by_user),
        received_minor=summary.received_minor,
        refunded_minor=summary.refunded_minor,
        net_minor=summary.net_minor,
        bills_issued=summary.bills_issued,
        prepared_by=summary.generated_by,
    )


# ---------------------------------------------------------------------------- admin


@dataclass(frozen=True)
class UserRow:
    user_id: str
    username: str
    full_name: str
    roles: tuple[str, ...]
    disabled: bool
    locked: bool

    @property
    def state(self) -> str:
        if self.disabled:
            return "Disabled"
        return "Locked out" if self.locked else "Active"


def list_users(desk: Desk, actor: Actor) -> list[UserRow]:
    now = desk.now.utcnow()
    return [
        UserRow(
            user_id=u.id,
            username=u.username,
            full_name=u.full_name,
            roles=tuple(u.roles or ()),
            disabled=u.disabled,
            locked=u.locked_until is not None and u.locked_until > now,
        )
        for u in users.list_users(desk, actor)
    ]


def create_user(
    desk: Desk, actor: Actor, username: str, full_name: str, roles: list[str], password: str
) -> str:
    return users.create_user(
        desk, actor, username=username, full_name=full_name, roles=roles, password=password
    ).id


def update_roles(desk: Desk, actor: Actor, user_id: str, roles: list[str]) -> bool:
    users.update_roles(desk, actor, user_id, roles)
    return True


def set_disabled(desk: Desk, actor: Actor, user_id: str, disabled: bool) -> bool:
    users.set_disabled(desk, actor, user_id, disabled)
    return True


def reset_password(desk: Desk, actor: Actor, user_id: str, password: str) -> bool:
    users.reset_password(desk, actor, user_id, password)
    return True


def unlock_user(desk: Desk, actor: Actor, user_id: str) -> bool:
    users.unlock(desk, actor, user_id)
    return True


def create_price_item(
    desk: Desk,
    actor: Actor,
    code: str,
    name: str,
    amount_minor: int,
    kind: str,
    doctor_id: str | None,
) -> Any:
    return billing.create_price_item(
        desk,
        actor,
        code=code,
        name=name,
        amount_minor=amount_minor,
        kind=kind,
        doctor_id=doctor_id,
    )


def update_price_item(desk: Desk, actor: Actor, item_id: str, **changes: Any) -> Any:
    return billing.update_price_item(desk, actor, item_id, **changes)


def percent_text(basis_points: int) -> str:
    from clinic_desktop.services.money import format_percent

    return format_percent(basis_points).rstrip("%").strip()


def verify_audit_chain(desk: Desk, actor: Actor) -> str:
    """The chain check as a sentence for the admin."""
    actor.require("admin", action="verify the audit log")
    with desk.reading() as session:
        report = audit.verify_chain(session, desk)
    if report.ok:
        return f"Audit chain intact: {report.checked} events of this desk checked."
    shown = "; ".join(report.problems[:5])
    more = f" (and {len(report.problems) - 5} more)" if len(report.problems) > 5 else ""
    return f"AUDIT CHAIN BROKEN: {shown}{more}."


def backup_now(store: OpenedStore, dest: Any = None) -> Any:
    from clinic_desktop.store.open import backup_now as backup

    return backup(store, dest)


def restore_from(store: OpenedStore, file: Any) -> tuple[OpenedStore, Any]:
    from clinic_desktop.store.open import restore_from as restore

    return restore(store, file)


# Services the admin window uses when they exist in this build. The settings editor and the
# audit-log list need service functions (validation, role checks, audit) that views must not
# stand in for; until they ship, those parts of the window say so instead of failing.
SETTINGS_SERVICE = ("clinic_desktop.services.settings", "update_settings")
AUDIT_LIST_SERVICE = ("clinic_desktop.services.audit", "list_events")


def _service(spec: tuple[str, str]) -> Any:
    import importlib

    try:
        module = importlib.import_module(spec[0])
    except ImportError:
        return None
    return getattr(module, spec[1], None)


def settings_editable() -> bool:
    return _service(SETTINGS_SERVICE) is not None


def audit_listable() -> bool:
    return _service(AUDIT_LIST_SERVICE) is not None


def update_settings(desk: Desk, actor: Actor, **values: Any) -> Any:
    from clinic_desktop.services.errors import InvalidState

    update = _service(SETTINGS_SERVICE)
    if update is None:
        raise InvalidState("Changing clinic settings is not available in this version.")
    return update(desk, actor, **values)


@dataclass(frozen=True)
class AuditRow:
    when: str
    user: str
    desk_code: str
    action: str
    entity: str
    entity_id: str
    detail: str
    flagged: bool


def audit_events(
    desk: Desk,
    actor: Actor,
    *,
    action: str = "",
    user_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
    flagged_only: bool = False,
) -> list[AuditRow]:
    from clinic_desktop.models.hlc import parse_hlc
    from clinic_desktop.services.errors import InvalidState

    list_events = _service(AUDIT_LIST_SERVICE)
    if list_events is None:
        raise InvalidState("Listing audit events is not available in this version.")
    names = {u.user_id: u.full_name for u in list_users(desk, actor)}
    rows: list[AuditRow] = []
    for e in list_events(
        desk,
        actor,
        action=action,
        user_id=user_id,
        since=since,
        until=until,
        flagged_only=flagged_only,
    ):
        millis = parse_hlc(e.occurred_at)[0]
        when = datetime.fromtimestamp(millis / 1000).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(
            AuditRow(
                when,
                names.get(e.actor_id or "", "(system)"),
                e.desk_code,
                e.action,
                e.entity,
                e.entity_id,
                e.detail,
                e.flagged,
            )
        )
    return rows


# ---------------------------------------------------------------------------- sync admin


def sync_summary(desk: Desk) -> str:
    """One line on the server connection for the admin's sync tab."""
    from clinic_desktop.sync.enrolment import server_url

    url = server_url(desk)
    if not url:
        return "Not connected to a server: this desk works standalone."
    return f"Server: {url}"


def sync_problems(desk: Desk, actor: Actor) -> list[Any]:
    return list(sync_admin.list_problems(desk, actor))


def retry_problem(desk: Desk, actor: Actor, problem_id: str) -> bool:
    sync_admin.retry_problem(desk, actor, problem_id)
    return True


def discard_problem(desk: Desk, actor: Actor, problem_id: str) -> bool:
    sync_admin.discard_problem(desk, actor, problem_id)
    return True


def sync_conflicts(desk: Desk, actor: Actor) -> list[Any]:
    return list(sync_admin.list_conflicts(desk, actor))


def keep_conflict(desk: Desk, actor: Actor, conflict_id: str) -> bool:
    sync_admin.keep_conflict(desk, actor, conflict_id)
    return True


def restore_conflict(desk: Desk, actor: Actor, conflict_id: str) -> bool:
    sync_admin.restore_conflict(desk, actor, conflict_id)
    return True


def duplicate_pairs(desk: Desk, actor: Actor) -> list[Any]:
    return list(sync_admin.find_cross_desk_duplicates(desk, actor))


def merge_duplicate(desk: Desk, actor: Actor, keep_id: str, merge_id: str) -> bool:
    sync_admin.merge_duplicate(desk, actor, keep_id, merge_id)
    return True
