"""The clinical reference lists shipped in ``resources/``: ICD-10 codes and the medicine catalogue.

The ICD-10 list is read once into memory (a few hundred rows; searching it is a loop over
pre-folded words, well under a millisecond). The medicine catalogue is a synced table, seeded
from ``resources/medicines.csv`` on first run so every desk can add to it later; its
autocomplete reads the table, not the file.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import func, or_, select

from clinic_desktop.models import Medicine
from clinic_desktop.services.audit import record_event
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import NotFound, ValidationError
from clinic_desktop.services.users import authorize

RESOURCES_ENV = "CLINIC_DESK_RESOURCES"
ICD10_FILE = "icd10.tsv"
MEDICINES_FILE = "medicines.csv"


def resources_dir() -> Path:
    """Where the shipped reference files live, in a checkout, an install or a PyInstaller bundle.

    Order: the ``CLINIC_DESK_RESOURCES`` variable (tests, unusual installs); the bundle's
    unpack dir (``sys._MEIPASS/resources``, so the spec must add ``resources`` as data); the
    ``resources/`` folder beside the package in a source checkout.
    """
    override = os.environ.get(RESOURCES_ENV)
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


# --- ICD-10 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IcdCode:
    code: str
    title: str


# Common abbreviations a doctor types, expanded to the words of the WHO titles.
_ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "uti": ("urinary", "tract", "infection"),
    "urti": ("upper", "respiratory", "infection"),
    "uri": ("upper", "respiratory", "infection"),
    "htn": ("hypertension",),
    "dm": ("diabetes",),
    "t2dm": ("type", "2", "diabetes"),
    "t1dm": ("type", "1", "diabetes"),
    "copd": ("chronic", "obstructive", "pulmonary"),
    "gerd": ("reflux",),
    "gord": ("reflux",),
    "ibs": ("irritable", "bowel"),
    "flu": ("influenza",),
    "mi": ("myocardial", "infarction"),
    "ckd": ("chronic", "kidney"),
    "af": ("atrial", "fibrillation"),
    "tb": ("tuberculosis",),
    "bph": ("hyperplasia", "prostate"),
    "pcos": ("polycystic",),
    "cold": ("nasopharyngitis",),
}

_WORD = re.compile(r"[0-9a-z]+")
_CODE_QUERY = re.compile(r"^[A-Z][0-9][0-9A-Z]?\.?[0-9A-Z]?$")


def _fold(word: str) -> str:
    """British and American spellings meet: anaemia/anemia, oedema/edema, diarrhoea/diarrhea."""
    return word.replace("ae", "e").replace("oe", "e")


def _words(text: str) -> list[str]:
    return [_fold(w) for w in _WORD.findall(text.casefold())]


def _bare_code(code: str) -> str:
    return code.replace(".", "").upper()


class IcdIndex:
    """ICD-10 codes with lookup by exact code and search by code prefix or title words."""

    def __init__(self, codes: list[IcdCode]) -> None:
        self._codes = sorted(codes, key=lambda c: c.code)
        self._by_code = {c.code: c for c in self._codes}
        self._by_bare = {_bare_code(c.code): c for c in self._codes}
        self._title_words = [_words(c.title) for c in self._codes]

    def __len__(self) -> int:
        return len(self._codes)

    def get(self, code: str) -> IcdCode | None:
        """The entry for ``code`` ("J06.9", "j069", " J06.9 "), or None when not in the list."""
        cleaned = (code or "").strip().upper()
        return self._by_code.get(cleaned) or self._by_bare.get(_bare_code(cleaned))

    def search(self, query: str, limit: int = 20) -> list[IcdCode]:
        """Codes whose code starts with ``query``, or whose title has every query word as a
        word prefix (in any order). Title matches starting with the first word rank first."""
        text = (query or "").strip()
        if not text:
            return []
        if _CODE_QUERY.match(text.upper()):
            prefix = _bare_code(text)
            hits = [c for c in self._codes if _bare_code(c.code).startswith(prefix)]
            if hits:
                return hits[:limit]
        terms: list[str] = []
        for word in _words(text):
            terms.extend(_fold(w) for w in _ABBREVIATIONS.get(word, (word,)))
        if not terms:
            return []
        first: list[IcdCode] = []
        rest: list[IcdCode] = []
        for entry, words in zip(self._codes, self._title_words, strict=True):
            if all(any(w.startswith(t) for w in words) for t in terms):
                (first if words and words[0].startswith(terms[0]) else rest).append(entry)
        return (first + rest)[:limit]


def load_icd10(path: Path | None = None) -> IcdIndex:
    """Read a ``code<TAB>title`` file (with a header line) into an index."""
    source = path or resources_dir() / ICD10_FILE
    codes: list[IcdCode] = []
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header != ["code", "title"]:
            raise ValueError(f"{source.name}: expected a 'code<TAB>title' header")
        for row in reader:
            if len(row) != 2 or not row[0].strip():
                continue
            codes.append(IcdCode(code=row[0].strip().upper(), title=row[1].strip()))
    return IcdIndex(codes)


@lru_cache(maxsize=1)
def icd10() -> IcdIndex:
    """The shipped ICD-10 list, loaded on first use and kept for the life of the process."""
    return load_icd10()


def search_icd10(query: str, limit: int = 20) -> list[IcdCode]:
    return icd10().search(query, limit)


def icd10_title(code: str) -> str:
    """The title of a code, or an empty string for a code not in the shipped list."""
    entry = icd10().get(code)
    return entry.title if entry else ""


# --- Medicines ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MedicineRow:
    """One line of ``medicines.csv``."""

    name: str
    generic_name: str
    strength: str
    form: str
    route: str
    drug_class: str


@dataclass(frozen=True)
class MedicineOption:
    """A medicine as the prescription builder's autocomplete shows it."""

    id: str
    name: str
    generic_name: str
    strength: str
    form: str
    route: str
    drug_class: str

    @property
    def label(self) -> str:
        """What the drop-down shows: "Amoxicillin 500 mg capsule"."""
        return " ".join(part for part in (self.name, self.strength, self.form) if part)


_MEDICINE_COLUMNS = ["name", "generic_name", "strength", "form", "route", "drug_class"]


def load_medicine_rows(path: Path | None = None) -> list[MedicineRow]:
    source = path or resources_dir() / MEDICINES_FILE
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != _MEDICINE_COLUMNS:
            raise ValueError(f"{source.name}: expected columns {', '.join(_MEDICINE_COLUMNS)}")
        return [
            MedicineRow(**{key: (row[key] or "").strip() for key in _MEDICINE_COLUMNS})
            for row in reader
            if (row.get("name") or "").strip()
        ]


def seed_medicines(desk: Desk, actor: Actor | None, path: Path | None = None) -> int:
    """Fill an empty medicine table from the shipped catalogue; returns how many were added.

    Runs on first start (``actor`` is the first admin, or None while the setup wizard or the
    demo loader bootstraps the store). Does nothing once the table has any row, so it is safe
    to call on every start and never duplicates a catalogue that arrived by sync.
    """
    rows = load_medicine_rows(path)
    with desk.transaction(actor) as session:
        if actor is not None:
            authorize(session, actor, "admin", action="load the medicine catalogue")
        existing = session.scalar(
            select(func.count()).select_from(Medicine).where(Medicine.clinic_id == desk.clinic_id)
        )
        if existing:
            return 0
        for row in rows:
            session.add(
                Medicine(
                    clinic_id=desk.clinic_id,
                    name=row.name,
                    generic_name=row.generic_name,
                    strength=row.strength,
                    form=row.form,
                    route=row.route,
                    drug_class=row.drug_class,
                )
            )
        record_event(session, desk, actor, "medicine.seed", "medicine", "", f"count={len(rows)}")
    return len(rows)


def _option(row: Medicine) -> MedicineOption:
    return MedicineOption(
        id=row.id,
        name=row.name,
        generic_name=row.generic_name,
        strength=row.strength,
        form=row.form,
        route=row.route,
        drug_class=row.drug_class,
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_medicines(desk: Desk, query: str, limit: int = 20) -> list[MedicineOption]:
    """Autocomplete: medicines whose name or generic name has every typed word as a word
    prefix ("amox 500" finds Amoxicillin 500 mg). Names that start with the query rank first."""
    if limit < 1:
        raise ValidationError({"limit": "Ask for at least one result."})
    terms = [w for w in (query or "").casefold().split() if w]
    if not terms:
        return []
    first = _like_escape(terms[0])
    with desk.reading() as session:
        candidates = session.scalars(
            select(Medicine)
            .where(
                Medicine.clinic_id == desk.clinic_id,
                Medicine.deleted.is_(False),
                or_(
                    func.lower(Medicine.name).like(f"%{first}%", escape="\\"),
                    func.lower(Medicine.generic_name).like(f"%{first}%", escape="\\"),
                    func.lower(Medicine.strength).like(f"%{first}%", escape="\\"),
                ),
            )
            .order_by(Medicine.name, Medicine.strength)
        ).all()
        ranked: list[tuple[int, str, MedicineOption]] = []
        for row in candidates:
            words = re.findall(
                r"[^\s()+,/]+", f"{row.name} {row.generic_name} {row.strength}".casefold()
            )
            if not all(any(w.startswith(t) for w in words) for t in terms):
                continue
            rank = 0 if row.name.casefold().startswith(terms[0]) else 1
            ranked.append((rank, row.name.casefold(), _option(row)))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [option for _rank, _name, option in ranked[:limit]]


def get_medicine(desk: Desk, medicine_id: str) -> MedicineOption | None:
    with desk.reading() as session:
        row = session.get(Medicine, medicine_id)
        if row is None or row.deleted or row.clinic_id != desk.clinic_id:
            return None
        return _option(row)


_MEDICINE_LIMITS = {
    "name": ("The name", 200),
    "generic_name": ("The generic name", 200),
    "strength": ("The strength", 60),
    "form": ("The form", 40),
    "route": ("The route", 40),
    "drug_class": ("The drug class", 100),
}


def add_medicine(
    desk: Desk,
    actor: Actor,
    *,
    name: str,
    generic_name: str = "",
    strength: str = "",
    form: str = "",
    route: str = "",
    drug_class: str = "",
) -> MedicineOption:
    """Add a medicine to the clinic's catalogue (admins). Give the drug class in plain words
    ("penicillins", "NSAIDs"): the allergy check matches against it."""
    values = {
        "name": name,
        "generic_name": generic_name,
        "strength": strength,
        "form": form,
        "route": route,
        "drug_class": drug_class,
    }
    with desk.transaction(actor) as session:
        authorize(session, actor, "admin", action="change the medicine catalogue")
        errors: dict[str, str] = {}
        clean: dict[str, str] = {}
        for key, value in values.items():
            label, limit = _MEDICINE_LIMITS[key]
            if not isinstance(value, str):
                errors[key] = f"{label} must be text."
                continue
            text = " ".join(value.split())
            if len(text) > limit:
                errors[key] = f"{label} is too long (at most {limit} characters)."
            clean[key] = text
        if not errors and not clean["name"]:
            errors["name"] = "Enter the medicine's name."
        if not errors:
            duplicate = session.scalar(
                select(Medicine.id).where(
                    Medicine.clinic_id == desk.clinic_id,
                    Medicine.deleted.is_(False),
                    func.lower(Medicine.name) == clean["name"].lower(),
                    func.lower(Medicine.strength) == clean["strength"].lower(),
                    func.lower(Medicine.form) == clean["form"].lower(),
                )
            )
            if duplicate:
                errors["name"] = "This medicine, strength and form is already in the catalogue."
        if errors:
            raise ValidationError(errors)
        row = Medicine(clinic_id=desk.clinic_id, **clean)
        session.add(row)
        record_event(session, desk, actor, "medicine.create", "medicine", row.id)
        return _option(row)


def remove_medicine(desk: Desk, actor: Actor, medicine_id: str) -> None:
    """Take a medicine out of the catalogue (tombstoned: prescriptions naming it keep it)."""
    with desk.transaction(actor) as session:
        authorize(session, actor, "admin", action="change the medicine catalogue")
        row = session.get(Medicine, medicine_id)
        if row is None or row.deleted or row.clinic_id != desk.clinic_id:
            raise NotFound("That medicine is not in the catalogue.")
        row.deleted = True
        record_event(session, desk, actor, "medicine.remove", "medicine", row.id)
