"""The clinic-wide settings an admin edits: what prints on documents and the clinic's knobs.

Every value is checked before anything is written, so a form with one bad field changes
nothing. Only fields whose value actually changes are assigned: the outbox entry then carries
just those columns, and a concurrent change of another field on another desk is not
overwritten when the two meet on the server. The audit event names the changed fields but
never their values.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clinic_desktop.models import Bill, ClinicSettings
from clinic_desktop.services import money
from clinic_desktop.services.audit import record_event
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import InvalidState, NotFound, ValidationError
from clinic_desktop.services.users import authorize

MAX_NAME = 200
MAX_ADDRESS = 500
MAX_PHONE = 40
MAX_TAX_BP = 5_000  # 50 %
MIN_IDLE_MINUTES = 1
MAX_IDLE_MINUTES = 120

# The settings columns an admin may change, in the order they are reported.
EDITABLE = ("name", "address", "phone", "currency", "timezone", "tax_rate_bp", "idle_lock_minutes")
# ``tax_rate`` is the percentage as typed in the admin window ("12.5"); it stores as
# ``tax_rate_bp``. Errors are reported under the name the caller used.
ALIASES = {"tax_rate": "tax_rate_bp"}


def _load(session: Session, desk: Desk) -> ClinicSettings:
    row = session.scalars(
        select(ClinicSettings)
        .where(ClinicSettings.clinic_id == desk.clinic_id, ClinicSettings.deleted.is_(False))
        .limit(1)
    ).first()
    if row is None:
        raise NotFound("This desk has no clinic settings yet. Connect it to the server first.")
    return row


def get_settings(desk: Desk) -> ClinicSettings:
    """This clinic's settings (any signed-in user may read them: they print on documents)."""
    with desk.reading() as session:
        row = _load(session, desk)
        # Detached with its columns loaded: the read session rolls back (expiring rows) on exit.
        session.expunge(row)
        return row


def _has_control_chars(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def _text(value: object, field: str, label: str, limit: int, errors: dict[str, str]) -> str:
    if not isinstance(value, str):
        errors[field] = f"{label} must be text."
        return ""
    clean = value.strip()
    if len(clean) > limit:
        errors[field] = f"{label} is too long (at most {limit} characters)."
    elif _has_control_chars(clean.replace("\n", "") if field == "address" else clean):
        errors[field] = f"{label} contains a character that cannot be stored."
    return clean


def _whole_number(
    value: object, field: str, label: str, low: int, high: int, unit: str, errors: dict[str, str]
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        else:
            errors[field] = f"{label} must be a whole number."
            return 0
    if not low <= value <= high:
        errors[field] = f"{label} must be between {low} and {high} {unit}."
    return value


def _validate(fields: dict[str, Any]) -> dict[str, object]:
    """Map the caller's fields to clean column values, or raise one ValidationError for all."""
    errors: dict[str, str] = {}
    clean: dict[str, object] = {}
    for key, value in fields.items():
        column = ALIASES.get(key, key)
        if column not in EDITABLE:
            errors[key] = f"'{key}' is not a clinic setting that can be changed."
            continue
        if column in clean:
            errors[key] = "The tax rate was given twice."
            continue
        if column == "name":
            name = _text(value, key, "The clinic name", MAX_NAME, errors)
            if key not in errors and not name:
                errors[key] = "The clinic name is required."
            clean[column] = name
        elif column == "address":
            clean[column] = _text(value, key, "The address", MAX_ADDRESS, errors)
        elif column == "phone":
            clean[column] = _text(value, key, "The phone number", MAX_PHONE, errors)
        elif column == "currency":
            code = value.strip() if isinstance(value, str) else ""
            if len(code) != 3 or not code.isascii() or not code.isalpha() or not code.isupper():
                errors[key] = "Choose a three-letter currency code in capitals, such as USD."
            clean[column] = code
        elif column == "timezone":
            zone = value.strip() if isinstance(value, str) else ""
            try:
                if not zone:
                    raise ValueError(zone)
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                errors[key] = "Choose a time zone such as Europe/London or Asia/Kolkata."
            clean[column] = zone
        elif column == "tax_rate_bp" and key == "tax_rate":
            try:
                bp = money.parse_percent(value, field=key)
            except ValidationError as exc:
                errors.update(exc.fields)
                continue
            if bp > MAX_TAX_BP:
                errors[key] = "The tax rate cannot be more than 50 %."
            clean[column] = bp
        elif column == "tax_rate_bp":
            bp = _whole_number(value, key, "The tax rate", 0, MAX_TAX_BP, "basis points", errors)
            clean[column] = bp
        else:  # idle_lock_minutes
            clean[column] = _whole_number(
                value,
                key,
                "The idle lock time",
                MIN_IDLE_MINUTES,
                MAX_IDLE_MINUTES,
                "minutes",
                errors,
            )
    if errors:
        raise ValidationError(errors)
    return clean


def update_settings(desk: Desk, actor: Actor, **fields: Any) -> ClinicSettings:
    """Change clinic settings (admins only). Accepts the column names of
    :data:`EDITABLE` plus ``tax_rate`` as a typed percentage. Returns the stored row."""
    with desk.transaction(actor) as session:
        authorize(session, actor, "admin", action="change the clinic settings")
        clean = _validate(fields)
        row = _load(session, desk)
        changed = [col for col in EDITABLE if col in clean and getattr(row, col) != clean[col]]
        if "currency" in changed:
            bills = session.scalar(
                select(func.count()).select_from(Bill).where(Bill.clinic_id == desk.clinic_id)
            )
            if bills:
                raise InvalidState(
                    "The currency cannot be changed once bills have been made in "
                    f"{row.currency}: their amounts would no longer add up."
                )
        if not changed:
            return row
        for col in changed:
            setattr(row, col, clean[col])
        record_event(
            session,
            desk,
            actor,
            "settings.update",
            "clinic_settings",
            row.id,
            "fields=" + ",".join(changed),
        )
        return row
