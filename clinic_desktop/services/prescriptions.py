"""Prescriptions: a draft the visit's doctor builds, signs, and from then on never changes.

- Items come from the medicine catalogue (``medicine_id`` fills name, strength, form and
  route unless typed) or as free text. Dose, frequency and duration presets are suggestions
  for the form; free text is accepted too.
- Allergy check: a prescribed medicine whose name, generic name or drug class matches one of
  the patient's recorded allergies (case-insensitive, word by word: "penicillin" matches
  amoxicillin through its class "penicillins") gives :class:`AllergyWarning` objects. Adding
  an item returns them; signing refuses until the doctor passes ``acknowledge_allergy=True``
  (the override is written to the audit log, flagged for review).
- Signed means immutable: every edit raises :class:`InvalidState`. :func:`amend` makes a new
  draft (``revision + 1``, ``supersedes_id``) with the same items.
- Favourites need no table of their own: a doctor's earlier signed prescriptions are the
  templates (:func:`favourite_sources`), and :func:`copy_items_from` copies one into a draft.
- Prescriptions follow the visit's record window (see ``consultation``): written while the
  visit is in consultation, corrected on the day it finished, then left as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from clinic_desktop.models import (
    Medicine,
    Patient,
    Prescription,
    PrescriptionItem,
    User,
    Visit,
)
from clinic_desktop.services.audit import record_event
from clinic_desktop.services.catalogues import icd10
from clinic_desktop.services.consultation import (
    check_record_open,
    check_text,
    clinic_settings,
    clinic_today,
    clinic_zone,
)
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import InvalidState, NotFound, PermissionDenied, ValidationError
from clinic_desktop.services.users import authorize

SIGNED_IMMUTABLE = "A signed prescription cannot be changed; amend it instead."

# Presets the prescription builder offers; any other text is accepted as typed.
FREQUENCY_PRESETS: dict[str, str] = {
    "OD": "once a day",
    "BD": "twice a day",
    "TDS": "three times a day",
    "QID": "four times a day",
    "HS": "at bedtime",
    "SOS": "only when needed",
    "STAT": "at once, a single dose",
    "1-0-0": "morning",
    "0-1-0": "afternoon",
    "0-0-1": "night",
    "1-0-1": "morning and night",
    "1-1-0": "morning and afternoon",
    "0-1-1": "afternoon and night",
    "1-1-1": "morning, afternoon and night",
    "Q4H": "every 4 hours",
    "Q6H": "every 6 hours",
    "Q8H": "every 8 hours",
    "WEEKLY": "once a week",
}
DOSE_PRESETS: tuple[str, ...] = (
    "1 tablet",
    "2 tablets",
    "1/2 tablet",
    "1 capsule",
    "2.5 mL",
    "5 mL",
    "10 mL",
    "1 puff",
    "2 puffs",
    "1 drop",
    "2 drops",
    "1 sachet",
    "apply thinly",
)
DURATION_PRESETS: tuple[str, ...] = (
    "1 day",
    "3 days",
    "5 days",
    "7 days",
    "10 days",
    "14 days",
    "1 month",
    "3 months",
    "until review",
)
ROUTES: tuple[str, ...] = (
    "oral",
    "sublingual",
    "topical",
    "inhalation",
    "intranasal",
    "ophthalmic",
    "otic",
    "intramuscular",
    "intravenous",
    "subcutaneous",
    "rectal",
    "vaginal",
    "transdermal",
)

# Column limits of PrescriptionItem, with the labels a doctor sees.
_ITEM_FIELDS: dict[str, tuple[str, int]] = {
    "medicine_name": ("Medicine", 200),
    "strength": ("Strength", 60),
    "form": ("Form", 40),
    "dose": ("Dose", 60),
    "frequency": ("Frequency", 60),
    "duration": ("Duration", 60),
    "route": ("Route", 40),
    "quantity": ("Quantity", 40),
    "instructions": ("Instructions", 2_000),
}
MAX_ITEMS = 40
MAX_NOTES = 2_000


# --- read models --------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemView:
    id: str
    position: int
    medicine_id: str | None
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
class PrescriptionView:
    id: str
    visit_id: str
    patient_id: str
    doctor_id: str
    revision: int
    supersedes_id: str | None
    status: str
    signed_at: datetime | None
    notes: str
    items: list[ItemView]


@dataclass(frozen=True)
class AllergyWarning:
    """A prescribed item that matches one of the patient's recorded allergies."""

    item_id: str
    medicine_name: str
    allergy: str  # the patient's allergy entry, as recorded
    matched_on: str  # "name", "generic name" or "drug class"
    matched_text: str  # the medicine's text that matched

    @property
    def message(self) -> str:
        return (
            f"{self.medicine_name}: the patient is allergic to {self.allergy} "
            f"(matches its {self.matched_on}, {self.matched_text})."
        )


class AllergyAcknowledgementRequired(InvalidState):
    """Signing was refused because allergy warnings were not acknowledged."""

    def __init__(self, warnings: list[AllergyWarning]) -> None:
        self.warnings = warnings
        names = ", ".join(dict.fromkeys(w.medicine_name for w in warnings))
        super().__init__(
            f"Allergy warning for {names}. Review the patient's allergies and confirm to sign."
        )


@dataclass(frozen=True)
class ItemResult:
    """What adding or changing an item returns: the item and any allergy warnings for it."""

    item: ItemView
    warnings: list[AllergyWarning] = field(default_factory=list)


# --- allergy matching ---------------------------------------------------------------------

_NOISE = frozenset(
    {
        "allergy",
        "allergic",
        "allergies",
        "to",
        "drug",
        "drugs",
        "medicine",
        "medicines",
        "medication",
        "medications",
        "and",
        "or",
        "of",
        "the",
        "severe",
        "mild",
        "moderate",
        "rash",
        "reaction",
        "reactions",
        "anaphylaxis",
        "hives",
        "intolerance",
        "intolerant",
        "group",
        "class",
        "family",
        "known",
        "history",
        "with",
        "causes",
        "caused",
    }
)
_NO_ALLERGY = frozenset({"", "none", "nil", "no", "nkda", "nka", "no known allergies", "unknown"})
_TERM_SPLIT = re.compile(r"[,;\n/&]+|\band\b|\bor\b", re.IGNORECASE)
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _tokens(text: str) -> list[str]:
    return [_singular(w) for w in _TOKEN.findall(text.casefold())]


def allergy_terms(allergies: str) -> list[tuple[str, list[str]]]:
    """The patient's allergy text split into entries, each with its significant words."""
    terms: list[tuple[str, list[str]]] = []
    for part in _TERM_SPLIT.split(allergies or ""):
        entry = part.strip(" .-:\t")
        if entry.casefold() in _NO_ALLERGY:
            continue
        words = [w for w in _tokens(entry) if len(w) >= 3 and w not in _NOISE]
        if words:
            terms.append((entry, words))
    return terms


def _word_hits(allergy_word: str, words: list[str]) -> bool:
    """Same word, or the allergy word begins a longer one ("sulfa" in "sulfamethoxazole")."""
    return any(
        w == allergy_word or (len(allergy_word) >= 4 and w.startswith(allergy_word)) for w in words
    )


def match_allergies(
    allergies: str, name: str, generic_name: str, drug_class: str
) -> list[tuple[str, str, str]]:
    """``(allergy entry, matched_on, matched text)`` for each entry this medicine matches.

    An entry matches when every one of its significant words is found in one of the
    medicine's name, generic name or drug class.
    """
    fields = (("name", name), ("generic name", generic_name), ("drug class", drug_class))
    tokenised = [(label, text, _tokens(text)) for label, text in fields if text]
    hits: list[tuple[str, str, str]] = []
    for entry, words in allergy_terms(allergies):
        for label, text, tokens in tokenised:
            if all(_word_hits(word, tokens) for word in words):
                hits.append((entry, label, text))
                break
    return hits


def _catalogue_facts(session: Session, item: PrescriptionItem) -> tuple[str, str]:
    """Generic name and drug class of an item, also for free text that names a listed drug."""
    medicine = session.get(Medicine, item.medicine_id) if item.medicine_id else None
    if medicine is None:
        name = item.medicine_name.strip().casefold()
        medicine = session.scalars(
            select(Medicine)
            .where(
                Medicine.deleted.is_(False),
                or_(func.lower(Medicine.name) == name, func.lower(Medicine.generic_name) == name),
            )
            .limit(1)
        ).first()
    if medicine is None:
        return "", ""
    return medicine.generic_name, medicine.drug_class


def _warnings_for(
    session: Session, patient: Patient, items: list[PrescriptionItem]
) -> list[AllergyWarning]:
    warnings: list[AllergyWarning] = []
    if not allergy_terms(patient.allergies):
        return warnings
    for item in items:
        generic, drug_class = _catalogue_facts(session, item)
        for allergy, matched_on, text in match_allergies(
            patient.allergies, item.medicine_name, generic, drug_class
        ):
            warnings.append(
                AllergyWarning(
                    item_id=item.id,
                    medicine_name=item.medicine_name,
                    allergy=allergy,
                    matched_on=matched_on,
                    matched_text=text,
                )
            )
    return warnings


# --- loading and checks -------------------------------------------------------------------


def _item_view(item: PrescriptionItem) -> ItemView:
    return ItemView(
        id=item.id,
        position=item.position,
        medicine_id=item.medicine_id,
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


def _items(session: Session, prescription_id: str) -> list[PrescriptionItem]:
    return list(
        session.scalars(
            select(PrescriptionItem)
            .where(
                PrescriptionItem.prescription_id == prescription_id,
                PrescriptionItem.deleted.is_(False),
            )
            .order_by(PrescriptionItem.position)
        )
    )


def _view(session: Session, rx: Prescription) -> PrescriptionView:
    return PrescriptionView(
        id=rx.id,
        visit_id=rx.visit_id,
        patient_id=rx.patient_id,
        doctor_id=rx.doctor_id,
        revision=rx.revision,
        supersedes_id=rx.supersedes_id,
        status=rx.status,
        signed_at=rx.signed_at,
        notes=rx.notes,
        items=[_item_view(i) for i in _items(session, rx.id)],
    )


def _load(session: Session, desk: Desk, prescription_id: str) -> Prescription:
    rx = session.get(Prescription, prescription_id)
    if rx is None or rx.deleted or rx.clinic_id != desk.clinic_id:
        raise NotFound("That prescription no longer exists.")
    return rx


def _visit(session: Session, desk: Desk, visit_id: str) -> Visit:
    visit = session.get(Visit, visit_id)
    if visit is None or visit.deleted or visit.clinic_id != desk.clinic_id:
        raise NotFound("That visit no longer exists.")
    return visit


def _prescriber(session: Session, actor: Actor, visit: Visit, action: str) -> User:
    """The acting user, checked to be an active doctor and this visit's doctor."""
    user = authorize(session, actor, "doctor", action=action)
    if visit.doctor_id != user.id:
        raise PermissionDenied(f"Only the visit's own doctor can {action}.")
    return user


def _editable(session: Session, desk: Desk, actor: Actor, prescription_id: str) -> Prescription:
    """A draft the actor may change: role, ownership, then state (in that order)."""
    rx = _load(session, desk, prescription_id)
    visit = _visit(session, desk, rx.visit_id)
    _prescriber(session, actor, visit, "change this prescription")
    if rx.status == "signed":
        raise InvalidState(SIGNED_IMMUTABLE)
    check_record_open(session, desk, visit)
    return rx


def _clean_item_fields(values: dict[str, object], errors: dict[str, str]) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for key, value in values.items():
        label, limit = _ITEM_FIELDS[key]
        cleaned[key] = check_text(value, key, label, limit, errors)
    if "medicine_name" in cleaned and not cleaned["medicine_name"].strip():
        errors.setdefault("medicine_name", "Enter the medicine, or pick one from the list.")
    return cleaned


# --- commands -----------------------------------------------------------------------------


def create_draft(desk: Desk, actor: Actor, visit_id: str, notes: str = "") -> PrescriptionView:
    """Start the visit's prescription (one per visit; later changes go through amend)."""
    with desk.transaction(actor) as session:
        visit = _visit(session, desk, visit_id)
        _prescriber(session, actor, visit, "write a prescription for this visit")
        check_record_open(session, desk, visit)
        errors: dict[str, str] = {}
        notes = check_text(notes, "notes", "Notes", MAX_NOTES, errors)
        if errors:
            raise ValidationError(errors)
        existing = session.scalar(
            select(Prescription.id).where(
                Prescription.visit_id == visit.id, Prescription.deleted.is_(False)
            )
        )
        if existing:
            raise InvalidState(
                "This visit already has a prescription; open it, or amend it if it is signed."
            )
        rx = Prescription(
            clinic_id=desk.clinic_id,
            visit_id=visit.id,
            patient_id=visit.patient_id,
            doctor_id=visit.doctor_id,
            notes=notes,
        )
        session.add(rx)
        record_event(
            session, desk, actor, "prescription.create", "prescription", rx.id, f"visit={visit.id}"
        )
        return _view(session, rx)


def set_notes(desk: Desk, actor: Actor, prescription_id: str, notes: str) -> PrescriptionView:
    with desk.transaction(actor) as session:
        rx = _editable(session, desk, actor, prescription_id)
        errors: dict[str, str] = {}
        notes = check_text(notes, "notes", "Notes", MAX_NOTES, errors)
        if errors:
            raise ValidationError(errors)
        if rx.notes != notes:
            rx.notes = notes
            record_event(
                session, desk, actor, "prescription.update", "prescription", rx.id, "fields=notes"
            )
        return _view(session, rx)


def add_item(
    desk: Desk,
    actor: Actor,
    prescription_id: str,
    *,
    medicine_id: str | None = None,
    medicine_name: str = "",
    strength: str = "",
    form: str = "",
    dose: str = "",
    frequency: str = "",
    duration: str = "",
    route: str = "",
    quantity: str = "",
    instructions: str = "",
) -> ItemResult:
    """Add a medicine line. With ``medicine_id`` the catalogue fills the blanks of name,
    strength, form and route; without it the line is free text and needs a name."""
    with desk.transaction(actor) as session:
        rx = _editable(session, desk, actor, prescription_id)
        values: dict[str, object] = {
            "medicine_name": medicine_name,
            "strength": strength,
            "form": form,
            "dose": dose,
            "frequency": frequency,
            "duration": duration,
            "route": route,
            "quantity": quantity,
            "instructions": instructions,
        }
        errors: dict[str, str] = {}
        if medicine_id is not None:
            medicine = session.get(Medicine, medicine_id)
            if medicine is None or medicine.deleted or medicine.clinic_id != desk.clinic_id:
                errors["medicine_id"] = "That medicine is not in the catalogue any more."
            else:
                for key, fallback in (
                    ("medicine_name", medicine.name),
                    ("strength", medicine.strength),
                    ("form", medicine.form),
                    ("route", medicine.route),
                ):
                    if isinstance(values[key], str) and not str(values[key]).strip():
                        values[key] = fallback
        cleaned = _clean_item_fields(values, errors)
        existing = _items(session, rx.id)
        if len(existing) >= MAX_ITEMS:
            errors.setdefault("", f"A prescription can have at most {MAX_ITEMS} medicines.")
        if errors:
            raise ValidationError(errors)
        item = PrescriptionItem(
            clinic_id=desk.clinic_id,
            prescription_id=rx.id,
            position=max((i.position for i in existing), default=0) + 1,
            medicine_id=medicine_id,
            **cleaned,
        )
        session.add(item)
        record_event(
            session, desk, actor, "prescription.item.add", "prescription", rx.id, f"item={item.id}"
        )
        patient = session.get(Patient, rx.patient_id)
        warnings = _warnings_for(session, patient, [item]) if patient else []
        return ItemResult(item=_item_view(item), warnings=warnings)


def update_item(desk: Desk, actor: Actor, item_id: str, **changes: str) -> ItemResult:
    """Change fields of a draft's line (names as in :class:`ItemView`, text values)."""
    with desk.transaction(actor) as session:
        item = session.get(PrescriptionItem, item_id)
        if item is None or item.deleted or item.clinic_id != desk.clinic_id:
            raise NotFound("That prescription line no longer exists.")
        rx = _editable(session, desk, actor, item.prescription_id)
        unknown = sorted(set(changes) - set(_ITEM_FIELDS))
        if unknown:
            raise ValidationError({unknown[0]: f"'{unknown[0]}' is not a prescription field."})
        errors: dict[str, str] = {}
        cleaned = _clean_item_fields(dict(changes), errors)
        if errors:
            raise ValidationError(errors)
        changed = [key for key, value in cleaned.items() if getattr(item, key) != value]
        for key in changed:
            setattr(item, key, cleaned[key])
        if "medicine_name" in changed and item.medicine_id:
            medicine = session.get(Medicine, item.medicine_id)
            if medicine is not None and medicine.name != item.medicine_name:
                item.medicine_id = None  # renamed by hand: no longer that catalogue entry
        if changed:
            record_event(
                session,
                desk,
                actor,
                "prescription.item.update",
                "prescription",
                rx.id,
                f"item={item.id} fields={','.join(sorted(changed))}",
            )
        patient = session.get(Patient, rx.patient_id)
        warnings = _warnings_for(session, patient, [item]) if patient else []
        return ItemResult(item=_item_view(item), warnings=warnings)


def remove_item(desk: Desk, actor: Actor, item_id: str) -> PrescriptionView:
    with desk.transaction(actor) as session:
        item = session.get(PrescriptionItem, item_id)
        if item is None or item.deleted or item.clinic_id != desk.clinic_id:
            raise NotFound("That prescription line no longer exists.")
        rx = _editable(session, desk, actor, item.prescription_id)
        item.deleted = True
        record_event(
            session,
            desk,
            actor,
            "prescription.item.remove",
            "prescription",
            rx.id,
            f"item={item.id}",
        )
        session.flush()
        return _view(session, rx)


def discard_draft(desk: Desk, actor: Actor, prescription_id: str) -> None:
    """Throw away an unsigned draft (tombstoned, so other desks learn of it too)."""
    with desk.transaction(actor) as session:
        rx = _editable(session, desk, actor, prescription_id)
        rx.deleted = True
        for item in _items(session, rx.id):
            item.deleted = True
        record_event(session, desk, actor, "prescription.discard", "prescription", rx.id)


def allergy_warnings(desk: Desk, actor: Actor, prescription_id: str) -> list[AllergyWarning]:
    """Every line of the prescription that matches the patient's recorded allergies."""
    with desk.reading() as session:
        authorize(session, actor, "doctor", "admin", action="check a prescription")
        rx = _load(session, desk, prescription_id)
        patient = session.get(Patient, rx.patient_id)
        if patient is None:
            return []
        return _warnings_for(session, patient, _items(session, rx.id))


def sign(
    desk: Desk, actor: Actor, prescription_id: str, *, acknowledge_allergy: bool = False
) -> PrescriptionView:
    """Sign a draft: from now on it is the prescription as issued, and never changes."""
    with desk.transaction(actor) as session:
        rx = _editable(session, desk, actor, prescription_id)
        items = _items(session, rx.id)
        if not items:
            raise ValidationError({"": "Add at least one medicine before signing."})
        missing = [i.medicine_name for i in items if not (i.dose.strip() and i.frequency.strip())]
        if missing:
            raise ValidationError(
                {"": f"Give a dose and a frequency for: {', '.join(missing[:3])}."}
            )
        patient = session.get(Patient, rx.patient_id)
        warnings = _warnings_for(session, patient, items) if patient else []
        if warnings and not acknowledge_allergy:
            raise AllergyAcknowledgementRequired(warnings)
        rx.status = "signed"
        rx.signed_at = desk.now.utcnow()
        detail = f"items={len(items)}"
        if warnings:
            detail += f" allergy_override={len(warnings)}"
        record_event(
            session,
            desk,
            actor,
            "prescription.sign",
            "prescription",
            rx.id,
            detail,
            flagged=bool(warnings),
        )
        return _view(session, rx)


def amend(desk: Desk, actor: Actor, prescription_id: str) -> PrescriptionView:
    """A new draft version of a signed prescription, with its items, for the doctor to edit."""
    with desk.transaction(actor) as session:
        rx = _load(session, desk, prescription_id)
        visit = _visit(session, desk, rx.visit_id)
        _prescriber(session, actor, visit, "amend this prescription")
        if rx.status != "signed":
            raise InvalidState("Only a signed prescription is amended; edit the draft directly.")
        newer = session.scalar(
            select(Prescription.id).where(
                Prescription.supersedes_id == rx.id, Prescription.deleted.is_(False)
            )
        )
        if newer:
            raise InvalidState("This prescription was already amended; open the newest version.")
        check_record_open(session, desk, visit)
        draft = Prescription(
            clinic_id=desk.clinic_id,
            visit_id=rx.visit_id,
            patient_id=rx.patient_id,
            doctor_id=rx.doctor_id,
            revision=rx.revision + 1,
            supersedes_id=rx.id,
            notes=rx.notes,
        )
        session.add(draft)
        _copy_items(session, desk, _items(session, rx.id), draft.id, start=1)
        record_event(
            session,
            desk,
            actor,
            "prescription.amend",
            "prescription",
            draft.id,
            f"supersedes={rx.id}",
        )
        session.flush()
        return _view(session, draft)


def _copy_items(
    session: Session, desk: Desk, items: list[PrescriptionItem], target_id: str, *, start: int
) -> None:
    for offset, item in enumerate(items):
        session.add(
            PrescriptionItem(
                clinic_id=desk.clinic_id,
                prescription_id=target_id,
                position=start + offset,
                medicine_id=item.medicine_id,
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


@dataclass(frozen=True)
class FavouriteSource:
    """One of the doctor's earlier prescriptions offered as a template."""

    prescription_id: str
    signed_at: datetime | None
    summary: str  # "Amoxicillin 500 mg, Paracetamol 500 mg"
    item_count: int


def favourite_sources(desk: Desk, actor: Actor, limit: int = 20) -> list[FavouriteSource]:
    """The acting doctor's recent signed prescriptions with distinct medicine lists, newest
    first (no patient names: only what was prescribed)."""
    with desk.reading() as session:
        user = authorize(session, actor, "doctor", action="use prescription templates")
        recent = session.scalars(
            select(Prescription)
            .where(
                Prescription.doctor_id == user.id,
                Prescription.status == "signed",
                Prescription.deleted.is_(False),
                Prescription.clinic_id == desk.clinic_id,
            )
            .order_by(Prescription.signed_at.desc())
            .limit(limit * 5)
        ).all()
        seen: set[tuple[tuple[str, ...], ...]] = set()
        sources: list[FavouriteSource] = []
        for rx in recent:
            items = _items(session, rx.id)
            if not items:
                continue
            key = tuple(
                (i.medicine_name, i.strength, i.dose, i.frequency, i.duration) for i in items
            )
            if key in seen:
                continue
            seen.add(key)
            summary = ", ".join(
                " ".join(p for p in (i.medicine_name, i.strength) if p) for i in items
            )
            sources.append(FavouriteSource(rx.id, rx.signed_at, summary, len(items)))
            if len(sources) >= limit:
                break
        return sources


def copy_items_from(
    desk: Desk, actor: Actor, prescription_id: str, source_prescription_id: str
) -> tuple[PrescriptionView, list[AllergyWarning]]:
    """Append the lines of one of the doctor's own earlier prescriptions to a draft, and
    check them against this patient's allergies."""
    with desk.transaction(actor) as session:
        rx = _editable(session, desk, actor, prescription_id)
        source = _load(session, desk, source_prescription_id)
        if source.doctor_id != actor.user_id:
            raise PermissionDenied("Only your own earlier prescriptions can be used as templates.")
        items = _items(session, source.id)
        existing = _items(session, rx.id)
        if len(existing) + len(items) > MAX_ITEMS:
            raise ValidationError({"": f"A prescription can have at most {MAX_ITEMS} medicines."})
        _copy_items(
            session,
            desk,
            items,
            rx.id,
            start=max((i.position for i in existing), default=0) + 1,
        )
        record_event(
            session,
            desk,
            actor,
            "prescription.template",
            "prescription",
            rx.id,
            f"source={source.id}",
        )
        session.flush()
        patient = session.get(Patient, rx.patient_id)
        warnings = _warnings_for(session, patient, _items(session, rx.id)) if patient else []
        return _view(session, rx), warnings


def get_prescription(desk: Desk, actor: Actor, prescription_id: str) -> PrescriptionView:
    with desk.reading() as session:
        authorize(session, actor, "doctor", "admin", action="open a prescription")
        return _view(session, _load(session, desk, prescription_id))


def prescriptions_for_visit(desk: Desk, actor: Actor, visit_id: str) -> list[PrescriptionView]:
    """All versions written at a visit, oldest first (the last is the current one)."""
    with desk.reading() as session:
        authorize(session, actor, "doctor", "admin", action="open a prescription")
        rows = session.scalars(
            select(Prescription)
            .where(Prescription.visit_id == visit_id, Prescription.deleted.is_(False))
            .order_by(Prescription.revision)
        ).all()
        return [_view(session, rx) for rx in rows]


# --- printing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentItem:
    number: int
    medicine_name: str
    strength: str
    form: str
    dose: str
    frequency: str
    frequency_meaning: str  # "twice a day" for "BD"; empty for free text
    duration: str
    route: str
    quantity: str
    instructions: str


@dataclass(frozen=True)
class PrescriptionDocument:
    """Everything a printed prescription shows; the printing layer only lays it out."""

    clinic_name: str
    clinic_address: str
    clinic_phone: str
    doctor_name: str
    patient_name: str
    patient_number: str
    patient_sex: str
    patient_age: str  # "34 y", "7 m", "" when unknown
    allergies: str
    dated: date  # the day it was signed (the visit day for a draft)
    prescription_id: str
    revision: int
    signed: bool
    signed_at: datetime | None
    diagnoses: list[tuple[str, str]]
    items: list[DocumentItem]
    notes: str
    advice: str
    follow_up_date: date | None


def _age(born: date | None, today: date) -> str:
    if born is None or born > today:
        return ""
    months = (today.year - born.year) * 12 + today.month - born.month - (today.day < born.day)
    if months < 24:
        return f"{months} m"
    return f"{months // 12} y"


def prescription_document(
    desk: Desk, prescription_id: str, actor: Actor | None = None
) -> PrescriptionDocument:
    """The printable form of a prescription. With ``actor`` the print is audited."""
    with desk.transaction(actor) as session:
        if actor is not None:
            authorize(session, actor, "doctor", "admin", action="print a prescription")
        rx = _load(session, desk, prescription_id)
        visit = _visit(session, desk, rx.visit_id)
        patient = session.get(Patient, rx.patient_id)
        doctor = session.get(User, rx.doctor_id)
        settings = clinic_settings(session, desk)
        zone = clinic_zone(settings)
        today = clinic_today(session, desk)
        index = icd10()
        items = [
            DocumentItem(
                number=n,
                medicine_name=i.medicine_name,
                strength=i.strength,
                form=i.form,
                dose=i.dose,
                frequency=i.frequency,
                frequency_meaning=FREQUENCY_PRESETS.get(i.frequency.strip().upper(), ""),
                duration=i.duration,
                route=i.route,
                quantity=i.quantity,
                instructions=i.instructions,
            )
            for n, i in enumerate(_items(session, rx.id), start=1)
        ]
        diagnoses = []
        for code in visit.diagnosis_codes or []:
            entry = index.get(code)
            diagnoses.append((code, entry.title if entry else ""))
        if actor is not None:
            record_event(session, desk, actor, "prescription.print", "prescription", rx.id)
        return PrescriptionDocument(
            clinic_name=settings.name if settings else "",
            clinic_address=settings.address if settings else "",
            clinic_phone=settings.phone if settings else "",
            doctor_name=doctor.full_name if doctor else "",
            patient_name=patient.full_name if patient else "",
            patient_number=patient.patient_number if patient else "",
            patient_sex=patient.sex if patient else "",
            patient_age=_age(patient.date_of_birth if patient else None, today),
            allergies=patient.allergies if patient else "",
            dated=rx.signed_at.astimezone(zone).date() if rx.signed_at else visit.day,
            prescription_id=rx.id,
            revision=rx.revision,
            signed=rx.status == "signed",
            signed_at=rx.signed_at,
            diagnoses=diagnoses,
            items=items,
            notes=rx.notes,
            advice=visit.advice,
            follow_up_date=visit.follow_up_date,
        )
