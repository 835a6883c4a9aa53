"""Patients: register, edit, open (audited), merge duplicates, and fast search.

Rules that matter here:

- Everything is validated before anything is written; errors come back per form field.
- Names in any script are accepted (Arabic, Devanagari, CJK, emoji); control characters are
  not. Text is stored exactly as typed (after trimming), never HTML-escaped or SQL-quoted by
  hand: the store binds parameters and the views show plain text.
- Registering warns about likely duplicates (same phone, or a similar name with the same
  birth date) and refuses until the receptionist confirms it is a different person.
- Every read of a patient's record (:func:`open_record`) writes an audit event.
- Merging never rewrites history: visits, bills and prescriptions keep pointing at the
  record they were made for (signed prescriptions and issued bills are frozen anyway);
  the merged record gets ``merged_into`` and :func:`history_ids` resolves the family.
- Search goes through the FTS5 index of :mod:`clinic_desktop.store.patient_index` and asks
  for at most a bounded number of rows, so it stops early even over a million patients.
"""

from __future__ import annotations

import re
import threading
import unicodedata
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import date, timedelta
from typing import Any

from rapidfuzz.distance import OSA
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from clinic_desktop.models import Patient
from clinic_desktop.models.patient import BLOOD_GROUPS, SEXES
from clinic_desktop.services.audit import record_event
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import ClinicError, InvalidState, NotFound, ValidationError
from clinic_desktop.services.numbering import next_patient_number, patient_number
from clinic_desktop.services.queue import clinic_today
from clinic_desktop.services.users import authorize

WRITE_ROLES = ("admin", "receptionist")
READ_ROLES = ("admin", "receptionist", "doctor", "billing")
MAX_AGE_YEARS = 130
MAX_SEARCH_LIMIT = 100

_LIMITS = {
    "full_name": 200,
    "address": 500,
    "emergency_contact_name": 200,
    "allergies": 1000,
    "notes": 2000,
}
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"^\+?\d{6,20}$")


class DuplicateWarning(ClinicError):
    """Registering looks like a patient already on file; nothing was written.

    ``candidates`` are the existing records; call again with ``confirm_not_duplicate=True``
    once a person has checked that this is someone else.
    """

    def __init__(self, candidates: list[Patient]) -> None:
        self.candidates = candidates
        numbers = ", ".join(p.patient_number for p in candidates[:5])
        super().__init__(
            f"This patient may already be registered ({numbers}). "
            "Open the existing record, or confirm this is a different person."
        )


@dataclass
class PatientDraft:
    """What the registration form holds. Text as typed; :func:`validate` cleans it."""

    full_name: str = ""
    sex: str = "unknown"
    date_of_birth: date | str | None = None
    age_years: int | str | None = None
    phone: str = ""
    address: str = ""
    emergency_contact_name: str = ""
    emergency_contact_phone: str = ""
    allergies: str = ""
    blood_group: str = ""
    notes: str = ""


@dataclass(frozen=True)
class CleanPatient:
    """A validated draft, ready to be written (column values)."""

    full_name: str
    sex: str
    date_of_birth: date | None
    dob_estimated: bool
    phone: str
    address: str
    emergency_contact_name: str
    emergency_contact_phone: str
    allergies: str
    blood_group: str
    notes: str


@dataclass(frozen=True)
class PatientHit:
    """One search result: enough for a result list, without opening (and auditing) a record."""

    id: str
    patient_number: str
    full_name: str
    phone: str
    sex: str
    date_of_birth: date | None
    dob_estimated: bool
    match: str = field(default="name")  # number | phone | name | prefix | fuzzy


# ---------------------------------------------------------------------------------------------
# Validation


def _has_control(value: str, *, allow_newlines: bool = False) -> bool:
    for ch in value:
        if allow_newlines and ch in "\n\t":
            continue
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return True
    return False


def clean_name(raw: str) -> str:
    """NFC-normalized, trimmed, single-spaced (what is stored and compared)."""
    return " ".join(unicodedata.normalize("NFC", raw).split())


def normalize_phone(raw: str) -> str:
    """``+91 (98765) 43-210`` -> ``+919876543210``; raises ``ValueError`` when not a phone."""
    compact = _PHONE_SEPARATORS.sub("", raw.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _PHONE.match(compact):
        raise ValueError(compact)
    return compact


def _check_phone(raw: str, key: str, errors: dict[str, str]) -> str:
    if not raw.strip():
        return ""
    try:
        return normalize_phone(raw)
    except ValueError:
        errors[key] = (
            "Enter a phone number of 6 to 20 digits (spaces, dashes, brackets and a leading "
            "+ are fine)."
        )
        return raw.strip()


def _parse_date(value: date | str | None, key: str, errors: dict[str, str]) -> date | None:
    if value is None or isinstance(value, date):
        return value
    stripped = value.strip()
    if not stripped:
        return None
    try:
        return date.fromisoformat(stripped)
    except ValueError:
        errors[key] = "Enter the date as YYYY-MM-DD, for example 1984-07-23."
        return None


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year - years, day=28)


def validate(draft: PatientDraft, today: date) -> CleanPatient:
    """Check every field; raise one :class:`ValidationError` naming all bad fields."""
    errors: dict[str, str] = {}

    name = clean_name(draft.full_name)
    if not name:
        errors["full_name"] = "Enter the patient's full name."
    elif len(name) > _LIMITS["full_name"]:
        errors["full_name"] = "The name is too long (at most 200 characters)."
    elif _has_control(name):
        errors["full_name"] = "The name contains characters that cannot be printed."

    sex = (draft.sex or "unknown").strip().casefold()
    if sex not in SEXES:
        errors["sex"] = "Choose female, male, other or unknown."

    dob = _parse_date(draft.date_of_birth, "date_of_birth", errors)
    estimated = False
    age_given = draft.age_years is not None and str(draft.age_years).strip() != ""
    if age_given and dob is not None:
        errors["age_years"] = "Give either the date of birth or the age, not both."
    elif age_given:
        raw_age = str(draft.age_years).strip()
        if not raw_age.isdigit() or int(raw_age) > MAX_AGE_YEARS:
            errors["age_years"] = f"The age is a whole number of years from 0 to {MAX_AGE_YEARS}."
        else:
            dob = _years_before(today, int(raw_age))
            estimated = True
    elif dob is not None:
        if dob > today:
            errors["date_of_birth"] = "The date of birth cannot be in the future."
        elif dob < _years_before(today, MAX_AGE_YEARS):
            errors["date_of_birth"] = (
                f"The date of birth is more than {MAX_AGE_YEARS} years ago; check the year."
            )

    phone = _check_phone(draft.phone, "phone", errors)
    emergency_phone = _check_phone(draft.emergency_contact_phone, "emergency_contact_phone", errors)

    texts: dict[str, str] = {}
    for key in ("address", "emergency_contact_name", "allergies", "notes"):
        raw = getattr(draft, key) or ""
        value = unicodedata.normalize("NFC", raw).strip()
        multiline = key != "emergency_contact_name"
        if key == "emergency_contact_name":
            value = clean_name(value)
        if len(value) > _LIMITS[key]:
            errors[key] = f"Too long (at most {_LIMITS[key]} characters)."
        elif _has_control(value, allow_newlines=multiline):
            errors[key] = "Contains characters that cannot be printed."
        texts[key] = value

    blood = (draft.blood_group or "").replace(" ", "").upper()
    if blood not in BLOOD_GROUPS:
        errors["blood_group"] = "Choose a blood group: " + ", ".join(BLOOD_GROUPS[1:]) + "."

    if errors:
        raise ValidationError(errors)
    return CleanPatient(
        full_name=name,
        sex=sex,
        date_of_birth=dob,
        dob_estimated=estimated,
        phone=phone,
        address=texts["address"],
        emergency_contact_name=texts["emergency_contact_name"],
        emergency_contact_phone=emergency_phone,
        allergies=texts["allergies"],
        blood_group=blood,
        notes=texts["notes"],
    )


# ---------------------------------------------------------------------------------------------
# Similar names (duplicate check and typo-tolerant search)


def fold(value: str) -> str:
    """Case-folded, accents removed (``José`` -> ``jose``), like the search index folds."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def name_tokens(value: str) -> list[str]:
    """Words of a name as the index sees them (letters, digits, marks, symbols)."""
    words: list[str] = []
    current: list[str] = []
    for ch in fold(value):
        if unicodedata.category(ch)[0] in "LNMS" or unicodedata.category(ch) == "Co":
            current.append(ch)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (typos, including swapped neighbours), or
    ``limit + 1`` as soon as it is certain to exceed ``limit`` (rapidfuzz, in C)."""
    return int(OSA.distance(a, b, score_cutoff=limit))


def _allowed_typos(word: str) -> int:
    return 0 if len(word) < 4 else 1 if len(word) < 8 else 2


def names_similar(a: str, b: str) -> bool:
    """Same person's name, allowing word order, accents, case and a typo or two per word."""
    left, right = sorted(name_tokens(a)), sorted(name_tokens(b))
    if not left or not right:
        return False
    if left == right:
        return True
    if len(left) == len(right):
        return (
            all(
                edit_distance(x, y, _allowed_typos(max(x, y, key=len)))
                <= _allowed_typos(max(x, y, key=len))
                for x, y in zip(left, right, strict=True)
            )
            or edit_distance(" ".join(left), " ".join(right), 2) <= 2
        )
    shorter, longer = (left, right) if len(left) < len(right) else (right, left)
    # "Ali Khan" vs "Ali Hassan Khan": every word of the shorter name is in the longer one.
    return len(shorter) >= 2 and set(shorter) <= set(longer)


# ---------------------------------------------------------------------------------------------
# Register, edit, open


def _today(desk: Desk, session: Session | None = None) -> date:
    """The clinic's local date (a birth date "today" must not be refused near midnight)."""
    if session is not None:
        return clinic_today(session, desk)
    with desk.reading() as reading:
        return clinic_today(reading, desk)


def find_duplicates(
    desk: Desk, draft: PatientDraft | CleanPatient, *, exclude_id: str | None = None
) -> list[Patient]:
    """Live patients that may be the same person: same phone, or similar name and birth date.

    Estimated birth dates (from an age) match within a year either side.
    """
    clean = draft if isinstance(draft, CleanPatient) else validate(draft, _today(desk))
    with desk.reading() as session:
        found = _duplicates(session, desk, clean, exclude_id)
        session.expunge_all()
        return found


class _SessionCursor:
    """Lets the name vocabulary read through an ORM session (inside a write transaction)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._session.execute(text(sql), dict(params or {}))


_WINDOW_SQL = """
    SELECT p.id FROM patient_name_fts f
    JOIN patient_search_key k ON k.k = f.rowid
    JOIN patient p ON p.id = k.patient_id
    WHERE f.patient_name_fts MATCH :query AND p.deleted = 0 AND p.merged_into IS NULL
      AND p.date_of_birth BETWEEN :low AND :high AND (:any_estimate OR p.dob_estimated = 1)
    LIMIT 200"""


def _duplicates(
    session: Session, desk: Desk, clean: CleanPatient, exclude_id: str | None
) -> list[Patient]:
    """Phone and exact birth date go through plain indexes; a birth date estimated from an
    age (on either side) matches within a year, with candidates found by name through the
    search index (each word or a typo of it), so the cost stays flat as the clinic grows."""
    live = (Patient.deleted.is_(False), Patient.merged_into.is_(None))
    found: dict[str, Patient] = {}
    if clean.phone:
        for patient in session.scalars(
            select(Patient).where(Patient.phone == clean.phone, *live).limit(20)
        ):
            found[patient.id] = patient
    if clean.date_of_birth is None:
        found.pop(exclude_id or "", None)
        return list(found.values())
    dob = clean.date_of_birth
    if not clean.dob_estimated:
        for patient in session.scalars(
            select(Patient).where(Patient.date_of_birth == dob, *live).limit(500)
        ):
            if patient.id not in found and names_similar(patient.full_name, clean.full_name):
                found[patient.id] = patient
    tokens = name_tokens(clean.full_name)[:6]
    if tokens:
        cursor = _SessionCursor(session)
        vocabulary = name_vocabulary(desk)
        vocabulary.refresh(cursor)
        query = " AND ".join(
            "(" + " OR ".join(_quote(t) for t in [token, *vocabulary.near(token)]) + ")"
            for token in tokens
        )
        window = {
            "query": query,
            "low": (dob - timedelta(days=366)).isoformat(),
            "high": (dob + timedelta(days=366)).isoformat(),
            "any_estimate": 1 if clean.dob_estimated else 0,
        }
        for (patient_id,) in cursor.execute(_WINDOW_SQL, window).fetchall():
            candidate = session.get(Patient, patient_id)
            if (
                candidate is not None
                and candidate.id not in found
                and names_similar(candidate.full_name, clean.full_name)
            ):
                found[candidate.id] = candidate
    found.pop(exclude_id or "", None)
    return list(found.values())


def register(
    desk: Desk,
    actor: Actor,
    draft: PatientDraft,
    *,
    confirm_not_duplicate: bool = False,
) -> Patient:
    """Register a new patient with the next patient number of this desk (``P-B-000123``).

    Raises :class:`DuplicateWarning` (writing nothing) when the patient may already be on
    file, unless ``confirm_not_duplicate`` says a person checked it.
    """
    with desk.reading() as session:
        authorize(session, actor, *WRITE_ROLES, action="register patients")
    clean = validate(draft, _today(desk))
    with desk.transaction(actor) as session:
        authorize(session, actor, *WRITE_ROLES, action="register patients")
        duplicates = _duplicates(session, desk, clean, None)
        if duplicates and not confirm_not_duplicate:
            session.expunge_all()
            raise DuplicateWarning(duplicates)
        patient = Patient(
            clinic_id=desk.clinic_id,
            patient_number=next_patient_number(session, desk.desk_code),
            **{f.name: getattr(clean, f.name) for f in fields(CleanPatient)},
        )
        session.add(patient)
        detail = "confirmed_not_duplicate" if duplicates else ""
        record_event(session, desk, actor, "patient.register", "patient", patient.id, detail)
    return patient


def _load_live(session: Session, patient_id: str) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None or patient.deleted:
        raise NotFound("That patient record does not exist.")
    if patient.merged_into is not None:
        survivor = resolve(session, patient.id)
        raise InvalidState(
            f"This record was merged into {survivor.patient_number}; use that record instead."
        )
    return patient


def _draft_of(patient: Patient) -> PatientDraft:
    return PatientDraft(
        full_name=patient.full_name,
        sex=patient.sex,
        date_of_birth=patient.date_of_birth,
        phone=patient.phone,
        address=patient.address,
        emergency_contact_name=patient.emergency_contact_name,
        emergency_contact_phone=patient.emergency_contact_phone,
        allergies=patient.allergies,
        blood_group=patient.blood_group,
        notes=patient.notes,
    )


def edit(desk: Desk, actor: Actor, patient_id: str, changes: Mapping[str, Any]) -> Patient:
    """Change some fields (same rules as registering); only fields that really changed are
    written, so the outbox carries just those and field-by-field sync merges stay precise.

    ``changes`` uses :class:`PatientDraft` names; giving ``age_years`` replaces the birth
    date with an estimate, giving ``date_of_birth`` makes it exact again.
    """
    allowed = {f.name for f in fields(PatientDraft)}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValidationError({name: "This field cannot be edited." for name in unknown})
    with desk.transaction(actor) as session:
        authorize(session, actor, *WRITE_ROLES, action="edit patient records")
        patient = _load_live(session, patient_id)
        draft = _draft_of(patient)
        if "age_years" in changes and "date_of_birth" not in changes:
            draft.date_of_birth = None
        estimated_kept = patient.dob_estimated and not (
            {"age_years", "date_of_birth"} & set(changes)
        )
        draft = replace(draft, **dict(changes))
        clean = validate(draft, _today(desk, session))
        if estimated_kept:
            clean = replace(clean, dob_estimated=True)
        changed: list[str] = []
        for f in fields(CleanPatient):
            value = getattr(clean, f.name)
            if getattr(patient, f.name) != value:
                setattr(patient, f.name, value)
                changed.append(f.name)
        if changed:
            record_event(
                session,
                desk,
                actor,
                "patient.edit",
                "patient",
                patient.id,
                "fields=" + ",".join(changed),
            )
    return patient


def open_record(desk: Desk, actor: Actor, patient_id: str) -> Patient:
    """Read a patient's full record. Every opening is audited (who, when, which desk).

    A record merged into another opens the surviving record.
    """
    with desk.transaction(actor) as session:
        authorize(session, actor, *READ_ROLES, action="open patient records")
        patient = session.get(Patient, patient_id)
        if patient is None or patient.deleted:
            raise NotFound("That patient record does not exist.")
        if patient.merged_into is not None:
            patient = resolve(session, patient.id)
        record_event(session, desk, actor, "patient.open", "patient", patient.id)
    return patient


def resolve(session: Session, patient_id: str) -> Patient:
    """Follow ``merged_into`` links to the record that survives."""
    seen: set[str] = set()
    patient = session.get(Patient, patient_id)
    while patient is not None and patient.merged_into and patient.id not in seen:
        seen.add(patient.id)
        patient = session.get(Patient, patient.merged_into)
    if patient is None:
        raise NotFound("That patient record does not exist.")
    return patient


def history_ids(session: Session, patient_id: str) -> list[str]:
    """The patient's id and every record merged into it (directly or through others).

    History screens (visits, bills, prescriptions) query with ``patient_id IN history_ids``.
    """
    ids = [patient_id]
    frontier = [patient_id]
    while frontier:
        merged = session.scalars(
            select(Patient.id).where(Patient.merged_into.in_(frontier), Patient.id.not_in(ids))
        ).all()
        frontier = list(merged)
        ids.extend(frontier)
    return ids


# ---------------------------------------------------------------------------------------------
# Merge


def _combine_text(kept: str, lost: str) -> str:
    if not lost or lost == kept:
        return kept
    if not kept:
        return lost
    return f"{kept}; {lost}"


def merge(desk: Desk, actor: Actor, keep_id: str, merge_id: str) -> Patient:
    """Merge the duplicate ``merge_id`` into ``keep_id``.

    The kept record gets the other's details where its own are empty, and both records'
    allergies (a lost allergy could hurt someone). The merged record is kept, marked
    ``merged_into``, drops out of search, and its visits, bills and prescriptions stay
    reachable through :func:`history_ids`.
    """
    if keep_id == merge_id:
        raise ValidationError({"merge_id": "Choose two different records to merge."})
    with desk.transaction(actor) as session:
        authorize(session, actor, *WRITE_ROLES, action="merge patient records")
        kept = _load_live(session, keep_id)
        lost = _load_live(session, merge_id)
        filled: list[str] = []
        for name in (
            "phone",
            "address",
            "emergency_contact_name",
            "emergency_contact_phone",
            "blood_group",
        ):
            if not getattr(kept, name) and getattr(lost, name):
                setattr(kept, name, getattr(lost, name))
                filled.append(name)
        better_dob = kept.date_of_birth is None or (kept.dob_estimated and not lost.dob_estimated)
        if better_dob and lost.date_of_birth is not None:
            kept.date_of_birth = lost.date_of_birth
            kept.dob_estimated = lost.dob_estimated
            filled.append("date_of_birth")
        if kept.sex == "unknown" and lost.sex != "unknown":
            kept.sex = lost.sex
            filled.append("sex")
        for name in ("allergies", "notes"):
            combined = _combine_text(getattr(kept, name), getattr(lost, name))
            limit = _LIMITS[name]
            if combined != getattr(kept, name) and len(combined) <= limit:
                setattr(kept, name, combined)
                filled.append(name)
        lost.merged_into = kept.id
        record_event(
            session,
            desk,
            actor,
            "patient.merge",
            "patient",
            kept.id,
            f"merged={lost.id};fields=" + ",".join(filled),
        )
        record_event(
            session, desk, actor, "patient.merged_into", "patient", lost.id, f"into={kept.id}"
        )
    return kept


# ---------------------------------------------------------------------------------------------
# Search

_NAME_SQL = """
    SELECT p.id, p.patient_number, p.full_name, p.phone, p.sex, p.date_of_birth, p.dob_estimated
    FROM patient_name_fts f
    JOIN patient_search_key k ON k.k = f.rowid
    JOIN patient p ON p.id = k.patient_id
    WHERE f.patient_name_fts MATCH :query AND p.deleted = 0 AND p.merged_into IS NULL
    ORDER BY f.rowid DESC
    LIMIT :limit"""
_PHONE_SQL = """
    SELECT p.id, p.patient_number, p.full_name, p.phone, p.sex, p.date_of_birth, p.dob_estimated
    FROM patient_phone_suffix s
    JOIN patient_search_key k ON k.k = s.k
    JOIN patient p ON p.id = k.patient_id
    WHERE s.suffix >= :low AND s.suffix < :high AND p.deleted = 0 AND p.merged_into IS NULL
    LIMIT :limit"""
_EXACT_SQL = """
    SELECT p.id, p.patient_number, p.full_name, p.phone, p.sex, p.date_of_birth, p.dob_estimated
    FROM patient p
    WHERE p.phone IN (:phone, :plus_phone) AND p.deleted = 0 AND p.merged_into IS NULL
    LIMIT :limit"""
_NUMBER_SQL = """
    SELECT p.id, p.patient_number, p.full_name, p.phone, p.sex, p.date_of_birth, p.dob_estimated
    FROM patient p
    WHERE p.clinic_id = :clinic AND p.patient_number = :number
      AND p.deleted = 0 AND p.merged_into IS NULL"""
_DESK_CODES_SQL = "SELECT DISTINCT desk_code FROM workstation"
_NUMBER = re.compile(r"(?:P-?)?([A-Z]{1,3})-?(\d{1,9})")
_MAX_TERM_VARIANTS = 12


def _quote(token: str) -> str:
    """An FTS5 string literal: the user's text can never become query syntax."""
    return '"' + token.replace('"', '""') + '"'


def _to_hit(row: tuple[Any, ...], match: str) -> PatientHit:
    patient_id, number, full_name, phone, sex, dob, estimated = row
    if isinstance(dob, str):
        dob = date.fromisoformat(dob)
    return PatientHit(
        id=patient_id,
        patient_number=number,
        full_name=full_name,
        phone=phone,
        sex=sex,
        date_of_birth=dob,
        dob_estimated=bool(estimated),
        match=match,
    )


def _collect(hits: dict[str, PatientHit], cursor: Any, match: str, limit: int) -> None:
    for row in cursor.fetchall():
        if len(hits) >= limit:
            return
        if row[0] not in hits:
            hits[row[0]] = _to_hit(tuple(row), match)


@contextmanager
def _snapshot(desk: Desk) -> Iterator[Any]:
    """A read-only cursor on one consistent WAL snapshot, without the write lock.

    ``desk.reading()`` begins with ``BEGIN IMMEDIATE`` like every session of the store
    engine, so a search would wait behind (and hold up) any writer, e.g. the sync client
    applying a large batch. Search only reads, so it uses a plain deferred transaction on a
    pooled connection: readers never block writers in WAL mode, nor wait for them.
    """
    with desk.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute("BEGIN DEFERRED")
        try:
            yield cursor
        finally:
            cursor.execute("ROLLBACK")
            cursor.close()


def _deletes(word: str) -> set[str]:
    """The word with one character left out, each way (a typo index key, SymSpell style)."""
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class NameVocabulary:
    """Every indexed name word of one store, kept in memory for typo-tolerant search.

    Built once from the FTS5 vocabulary, then topped up with the names of patients added
    since (``patient_search_key`` numbers grow with every insert, local or synced), so a
    typo search costs a few dictionary look-ups, not a scan of the index. A word is found
    from a typo by the words-with-one-letter-left-out they share (substitution, insertion,
    deletion, swapped neighbours), then confirmed by edit distance.
    """

    _FULL_SQL = "SELECT term, doc FROM patient_name_terms"
    _TOP_SQL = "SELECT coalesce(max(k), 0) FROM patient_search_key"
    _NEW_SQL = """
        SELECT k.k, p.full_name
        FROM patient_search_key k JOIN patient p ON p.id = k.patient_id
        WHERE k.k > :after ORDER BY k.k LIMIT 50000"""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.by_delete: dict[str, set[str]] = {}
        self.seen_key = -1
        self._lock = threading.Lock()

    def _add(self, term: str, docs: int) -> None:
        known = term in self.counts
        self.counts[term] = self.counts.get(term, 0) + docs
        if known:
            return
        self.by_delete.setdefault(term, set()).add(term)
        for key in _deletes(term):
            self.by_delete.setdefault(key, set()).add(term)

    def refresh(self, cursor: Any) -> None:
        """Catch up with patients added since the last look (cheap when nothing changed)."""
        with self._lock:
            top = int(cursor.execute(self._TOP_SQL).fetchone()[0] or 0)
            if self.seen_key < 0:
                for term, docs in cursor.execute(self._FULL_SQL).fetchall():
                    self._add(str(term), int(docs))
                self.seen_key = top
                return
            while self.seen_key < top:
                rows = cursor.execute(self._NEW_SQL, {"after": self.seen_key}).fetchall()
                if not rows:
                    break
                for key, full_name in rows:
                    for term in name_tokens(full_name):
                        self._add(term, 1)
                    self.seen_key = int(key)

    def near(self, token: str) -> list[str]:
        """Known words within the typo allowance of ``token`` (most common first)."""
        allowed = _allowed_typos(token)
        if allowed == 0:
            return []
        keys = {token} | _deletes(token)
        if allowed > 1:
            keys |= {second for first in _deletes(token) for second in _deletes(first)}
        candidates: set[str] = set()
        for key in keys:
            candidates |= self.by_delete.get(key, set())
        scored = [
            (distance, -self.counts.get(term, 0), term)
            for term in candidates
            if term != token and (distance := edit_distance(token, term, allowed)) <= allowed
        ]
        scored.sort()
        return [term for _, _, term in scored[:_MAX_TERM_VARIANTS]]


_VOCABULARIES: weakref.WeakKeyDictionary[Engine, NameVocabulary] = weakref.WeakKeyDictionary()
_VOCABULARIES_LOCK = threading.Lock()


def name_vocabulary(desk: Desk) -> NameVocabulary:
    """The vocabulary of this desk's store (one per engine, shared by threads)."""
    with _VOCABULARIES_LOCK:
        vocabulary = _VOCABULARIES.get(desk.engine)
        if vocabulary is None:
            vocabulary = _VOCABULARIES[desk.engine] = NameVocabulary()
        return vocabulary


def warm_up_search(desk: Desk) -> None:
    """Load the typo vocabulary ahead of the first misspelt search (call from a worker
    thread after sign-in; over a million patients it takes about a second)."""
    with _snapshot(desk) as cursor:
        name_vocabulary(desk).refresh(cursor)


def search(desk: Desk, query: str, limit: int = 20) -> list[PatientHit]:
    """Find live patients by name, phone or patient number, best matches first.

    - a patient number (``P-B-000123``, ``B-123`` or its digits) finds that patient first;
    - a whole phone number comes next, then phones containing the digits (3 or more),
      those ending in them first;
    - words find names by prefix (``moh kha`` finds ``Mohammed Khan``), in any script;
    - when that finds too little, words of 4+ letters also match names a typo or two away.

    Each step asks the index for at most ``limit`` rows, so the cost does not grow with the
    number of patients (no ranking of every match). Any signed-in role may search; results
    carry no more than a result list shows, and opening a record is audited separately.
    """
    limit = max(1, min(int(limit), MAX_SEARCH_LIMIT))
    cleaned = clean_name(query)[:100]
    if not cleaned:
        return []
    compact = _PHONE_SEPARATORS.sub("", cleaned)
    digits_like = bool(re.fullmatch(r"\+?\d+", compact))
    number = _NUMBER.fullmatch(compact.upper())
    hits: dict[str, PatientHit] = {}
    with _snapshot(desk) as cursor:
        # 1. patient numbers, exactly: "P-B-000123", "b-123", or just the digits "000123"
        codes: list[str] = []
        if number is not None:
            codes = [number.group(1)]
        elif digits_like and len(compact) <= 9:
            codes = [desk.desk_code] + [
                str(code) for (code,) in cursor.execute(_DESK_CODES_SQL).fetchall()
            ]
        digits = number.group(2) if number is not None else compact
        for code in dict.fromkeys(codes):
            wanted = patient_number(code, int(digits))
            cursor.execute(_NUMBER_SQL, {"clinic": desk.clinic_id, "number": wanted})
            _collect(hits, cursor, "number", limit)
        # 2. a whole phone number, then phones containing the digits (3 or more)
        if digits_like and len(compact) >= 6:
            bare = compact.lstrip("+")
            if compact.startswith("00"):
                bare = compact[2:]
            params = {"phone": bare, "plus_phone": "+" + bare, "limit": limit}
            _collect(hits, cursor.execute(_EXACT_SQL, params), "phone", limit)
        fragment = compact.lstrip("+")
        if digits_like and len(fragment) >= 3 and len(hits) < limit:
            # Digits sort before ":", so this range is every suffix starting with the fragment.
            params = {"low": fragment, "high": fragment + ":", "limit": limit}
            _collect(hits, cursor.execute(_PHONE_SQL, params), "phone", limit)
        # 3. names: whole words first, then prefixes, then typo-tolerant words
        tokens = [] if digits_like or number is not None else name_tokens(cleaned)[:6]
        if tokens and len(hits) < limit:
            exact = " AND ".join(_quote(t) for t in tokens)
            _collect(
                hits,
                cursor.execute(_NAME_SQL, {"query": exact, "limit": limit}),
                "name",
                limit,
            )
        if tokens and len(hits) < limit:
            prefix = " AND ".join(_quote(t) + "*" for t in tokens)
            _collect(
                hits,
                cursor.execute(_NAME_SQL, {"query": prefix, "limit": limit}),
                "prefix",
                limit,
            )
        if tokens and len(hits) < limit and any(_allowed_typos(t) for t in tokens):
            vocabulary = name_vocabulary(desk)
            vocabulary.refresh(cursor)
            parts: list[str] = []
            for token in tokens:
                options = [_quote(token) + "*"]
                options += [_quote(term) for term in vocabulary.near(token)]
                parts.append("(" + " OR ".join(options) + ")")
            _collect(
                hits,
                cursor.execute(_NAME_SQL, {"query": " AND ".join(parts), "limit": limit}),
                "fuzzy",
                limit,
            )
    return list(hits.values())
