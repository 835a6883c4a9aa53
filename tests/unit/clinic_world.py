"""A small clinic for consultation, prescription and billing tests.

Users, patients and visits are written as model rows (the queue and patient services are
tested on their own); everything under test goes through the services. The clock is fixed
so "today", "the same day" and day-end ranges are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, select

from clinic_desktop.models import (
    AuditEvent,
    ClinicSettings,
    OutboxEntry,
    Patient,
    User,
    Visit,
    new_id,
)
from clinic_desktop.services.context import Actor, Clock, Desk
from clinic_desktop.services.users import actor_for

T = TypeVar("T")

# SQL, markup, quotes and scripts a field must keep exactly as typed.
HOSTILE_TEXTS = [
    "Robert'); DROP TABLE visit;--",
    '<img src=x onerror="alert(1)">',
    "<b>bold</b> & \"quoted\" 'single'",
    "ألم في الصدر",  # Arabic
    "सिरदर्द और बुखार",  # Devanagari
    "头痛，发烧三天",  # CJK
    "fever 🤒 since Monday 👍🏽",
    "line one\nline two\ttabbed",
]


class FixedClock(Clock):
    """A wall clock that only moves when a test moves it."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def utcnow(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment = self.moment + timedelta(**delta)


# 10:00 in Kolkata (UTC+05:30) on a Wednesday.
START = datetime(2026, 3, 4, 4, 30, tzinfo=UTC)


@dataclass
class World:
    desk: Desk
    clock: FixedClock
    admin: Actor
    doctor: Actor
    other_doctor: Actor
    cashier: Actor
    receptionist: Actor
    patient_id: str
    _token: int = field(default=0)

    @property
    def today(self) -> date:
        return date(2026, 3, 4)

    def add_user(self, username: str, full_name: str, roles: list[str]) -> Actor:
        with self.desk.transaction(None) as session:
            user = User(
                clinic_id=self.desk.clinic_id,
                username=username,
                full_name=full_name,
                roles=roles,
                password_hash="not-used-in-these-tests",
            )
            session.add(user)
        return actor_for(user)

    def add_patient(
        self, full_name: str = "Asha Verma", allergies: str = "", **extra: object
    ) -> str:
        with self.desk.transaction(None) as session:
            number = session.scalar(select(func.count()).select_from(Patient)) or 0
            patient = Patient(
                clinic_id=self.desk.clinic_id,
                patient_number=f"P-B-{number + 1:06d}",
                full_name=full_name,
                allergies=allergies,
                **extra,
            )
            session.add(patient)
        return patient.id

    def add_visit(
        self,
        *,
        status: str = "in_consultation",
        doctor: Actor | None = None,
        patient_id: str | None = None,
        day: date | None = None,
        finished_at: datetime | None = None,
        **fields: object,
    ) -> str:
        self._token += 1
        now = self.clock.utcnow()
        with self.desk.transaction(None) as session:
            visit = Visit(
                clinic_id=self.desk.clinic_id,
                patient_id=patient_id or self.patient_id,
                doctor_id=(doctor or self.doctor).user_id,
                day=day or self.today,
                desk_code="B",
                token_seq=self._token,
                token_label=f"B-{self._token:03d}",
                status=status,
                arrived_at=now,
                started_at=now if status in ("in_consultation", "completed") else None,
                finished_at=finished_at or (now if status == "completed" else None),
                **fields,
            )
            session.add(visit)
        return visit.id

    def set_allergies(self, patient_id: str, allergies: str) -> None:
        with self.desk.transaction(None) as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            patient.allergies = allergies

    def disable(self, actor: Actor) -> None:
        with self.desk.transaction(None) as session:
            user = session.get(User, actor.user_id)
            assert user is not None
            user.disabled = True

    def set_tax(self, basis_points: int) -> None:
        with self.desk.transaction(None) as session:
            settings = session.scalars(select(ClinicSettings)).one()
            settings.tax_rate_bp = basis_points

    def outbox_count(self) -> int:
        with self.desk.reading() as session:
            return session.scalar(select(func.count()).select_from(OutboxEntry)) or 0

    def audit_actions(self) -> list[str]:
        with self.desk.reading() as session:
            return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))

    def audit_events(self) -> list[AuditEvent]:
        """Every audit event, detached with its columns loaded."""
        with self.desk.sessions() as session:
            events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
            session.expunge_all()
            return events

    def row(self, model: type[T], row_id: str) -> T:
        """A stored row, detached with its columns loaded (for asserting on what was written)."""
        with self.desk.sessions() as session:
            found = session.get(model, row_id)
            assert found is not None, f"no {model.__name__} {row_id}"
            session.expunge_all()
            return found

    def visit_row(self, visit_id: str) -> Visit:
        return self.row(Visit, visit_id)


def build_world(desk: Desk, *, currency: str = "INR", timezone: str = "Asia/Kolkata") -> World:
    """Settings, one user per role (plus a second doctor) and one patient on ``desk``."""
    clock = FixedClock(START)
    desk.now = clock
    with desk.transaction(None) as session:
        settings = session.scalars(select(ClinicSettings)).first()
        if settings is None:
            session.add(
                ClinicSettings(
                    clinic_id=desk.clinic_id,
                    name="Lakeside Clinic",
                    address="12 Lake Road",
                    phone="+91 22 5555 0101",
                    currency=currency,
                    timezone=timezone,
                )
            )
        else:
            settings.currency = currency
            settings.timezone = timezone
    world = World(
        desk=desk,
        clock=clock,
        admin=Actor("", "", "", frozenset()),
        doctor=Actor("", "", "", frozenset()),
        other_doctor=Actor("", "", "", frozenset()),
        cashier=Actor("", "", "", frozenset()),
        receptionist=Actor("", "", "", frozenset()),
        patient_id="",
    )
    world.admin = world.add_user(f"admin-{new_id()[:6]}", "Ada Admin", ["admin"])
    world.doctor = world.add_user("drmehta", "Dr Nina Mehta", ["doctor"])
    world.other_doctor = world.add_user("drkhan", "Dr Omar Khan", ["doctor"])
    world.cashier = world.add_user("cashier", "Carl Cashier", ["billing"])
    world.receptionist = world.add_user("reception", "Rita Reception", ["receptionist"])
    world.patient_id = world.add_patient()
    return world
