"""First clinic and admin, created from the command line (no HTTP endpoint can do this)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from clinic_desktop.models import ClinicSettings, User, new_id
from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_desktop.services import passwords
from clinic_desktop.services.errors import ValidationError
from clinic_server.db import Database
from clinic_server.sync.apply import server_write
from clinic_server.sync.changes import ChangeSet
from clinic_server.tables import Clinic


@dataclass(frozen=True)
class Bootstrapped:
    clinic_id: str
    user_id: str


def clinic_ids(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(Clinic.id).order_by(Clinic.created_at)))


def create_clinic(
    db: Database, name: str, *, currency: str = "USD", clinic_id: str | None = None
) -> str:
    """A new tenant with its settings row."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationError({"clinic_name": "The clinic name must be 1 to 200 characters."})
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise ValidationError({"currency": "The currency is a 3-letter code such as USD."})
    clinic_id = clinic_id or new_id()
    clock = HybridLogicalClock("server")
    with db.write() as session:
        session.add(
            Clinic(id=clinic_id, name=name, created_at=datetime.now(UTC), change_seq=0, log_floor=0)
        )
        session.flush()
        changes = ChangeSet(clinic_id)
        server_write(
            session,
            changes,
            ClinicSettings(id=new_id(), clinic_id=clinic_id, name=name, currency=currency),
            {},
            clock,
        )
        changes.finish(session)
    return clinic_id


def create_admin(db: Database, clinic_id: str, username: str, full_name: str, password: str) -> str:
    """An admin account in ``clinic_id`` (password rules as on the desk)."""
    username = username.strip().casefold()
    errors: dict[str, str] = {}
    if not (3 <= len(username) <= 64) or not all(c.isalnum() or c in "._-" for c in username):
        errors["username"] = (
            "The user name must be 3-64 letters, digits, dots, dashes or underscores."
        )
    if not full_name.strip() or len(full_name) > 200:
        errors["full_name"] = "The full name must be 1 to 200 characters."
    problem = passwords.password_problem(password, username=username)
    if problem:
        errors["password"] = problem
    if errors:
        raise ValidationError(errors)
    clock = HybridLogicalClock("server")
    with db.write() as session:
        if session.get(Clinic, clinic_id) is None:
            raise ValidationError({"clinic": "No such clinic."})
        taken = session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.clinic_id == clinic_id, func.lower(User.username) == username)
        )
        if taken:
            raise ValidationError({"username": f"The user name {username} is already taken."})
        user = User(
            id=new_id(),
            clinic_id=clinic_id,
            username=username,
            full_name=full_name.strip(),
            roles=["admin"],
            password_hash=passwords.hash_password(password),
        )
        changes = ChangeSet(clinic_id)
        server_write(session, changes, user, {}, clock)
        changes.finish(session)
        return user.id
