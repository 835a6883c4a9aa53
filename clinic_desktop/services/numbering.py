"""Human-facing numbers made offline: they carry the desk code, so they are unique by
construction across desks and never renumbered after sync (DESIGN.md section 3).

- token labels count per desk per day: ``B-014``
- patient numbers count per desk for ever: ``P-B-000123``
- invoice numbers count per desk for ever, with no gaps: ``INV-B-000231``

Counters live in the desk-only ``desk_counter`` table and advance inside the caller's
transaction, so a rolled-back bill does not burn an invoice number. On first use a counter
starts above the highest number of this desk already in the store (after a reinstall the
synced rows come back, and the series continues instead of clashing).
"""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from clinic_desktop.models import Bill, DeskCounter, Patient, Visit

DESK_CODE = re.compile(r"^[A-Z]{1,3}$")


def token_label(desk_code: str, seq: int) -> str:
    return f"{desk_code}-{seq:03d}"


def patient_number(desk_code: str, seq: int) -> str:
    return f"P-{desk_code}-{seq:06d}"


def invoice_number(desk_code: str, seq: int) -> str:
    return f"INV-{desk_code}-{seq:06d}"


def _highest_suffix(
    session: Session,
    column: InstrumentedAttribute[str] | InstrumentedAttribute[str | None],
    prefix: str,
) -> int:
    """Largest numeric suffix among existing numbers starting with ``prefix``."""
    values = session.scalars(select(column).where(column.like(f"{prefix}%"))).all()
    best = 0
    for value in values:
        tail = str(value)[len(prefix) :]
        if tail.isdigit():
            best = max(best, int(tail))
    return best


def _advance(session: Session, name: str, floor: int) -> int:
    counter = session.get(DeskCounter, name)
    if counter is None:
        counter = DeskCounter(name=name, value=floor)
        session.add(counter)
    counter.value = max(counter.value, floor) + 1
    session.flush()
    return counter.value


def next_token_seq(session: Session, desk_code: str, day: date) -> int:
    """Next token number of this desk for ``day`` (derived from the visits themselves)."""
    highest = session.scalar(
        select(func.max(Visit.token_seq)).where(Visit.desk_code == desk_code, Visit.day == day)
    )
    return int(highest or 0) + 1


def next_patient_number(session: Session, desk_code: str) -> str:
    name = f"patient:{desk_code}"
    floor = 0
    if session.get(DeskCounter, name) is None:
        floor = _highest_suffix(session, Patient.patient_number, f"P-{desk_code}-")
    return patient_number(desk_code, _advance(session, name, floor))


def next_invoice_number(session: Session, desk_code: str) -> str:
    name = f"invoice:{desk_code}"
    floor = 0
    if session.get(DeskCounter, name) is None:
        floor = _highest_suffix(session, Bill.invoice_number, f"INV-{desk_code}-")
    return invoice_number(desk_code, _advance(session, name, floor))
