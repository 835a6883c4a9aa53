"""Clinic settings: only admins change them, every value is checked before anything is
written, only changed fields are written (and synced), and the audit names fields, not values."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from clinic_desktop.models import AuditEvent, ClinicSettings, OutboxEntry
from clinic_desktop.services import billing, users
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import InvalidState, PermissionDenied, ValidationError
from clinic_desktop.services.settings import get_settings, update_settings
from tests.unit.clinic_world import build_world

STAFF_PASSWORD = "staff password 7"


def staff(desk: Desk, admin: Actor, username: str, *roles: str) -> Actor:
    """A real account made by the admin, as services see it once signed in."""
    user = users.create_user(
        desk,
        admin,
        username=username,
        full_name=username.title(),
        roles=roles,
        password=STAFF_PASSWORD,
        must_change_password=False,
    )
    return users.actor_for(user)


def outbox(desk: Desk) -> list[OutboxEntry]:
    """Every pending mutation, oldest first (detached with its columns loaded)."""
    with desk.reading() as session:
        entries = list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.seq)))
        session.expunge_all()
        return entries


def settings_mutations(entries: list[OutboxEntry]) -> list[OutboxEntry]:
    return [e for e in entries if e.entity == "clinic_settings"]


def settings_events(desk: Desk) -> list[AuditEvent]:
    with desk.reading() as session:
        events = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "settings.update")
                .order_by(AuditEvent.seq)
            )
        )
        session.expunge_all()
        return events


def snapshot(desk: Desk) -> dict[str, object]:
    row = get_settings(desk)
    return {
        col: getattr(row, col)
        for col in (
            "name",
            "address",
            "phone",
            "currency",
            "timezone",
            "tax_rate_bp",
            "idle_lock_minutes",
            "version",
        )
    }


def test_admin_changes_tax_and_idle_minutes_and_only_those_fields_are_synced(
    desk: Desk, admin: Actor
) -> None:
    before = len(outbox(desk))

    stored = update_settings(desk, admin, tax_rate_bp=1250, idle_lock_minutes=15)

    assert (stored.tax_rate_bp, stored.idle_lock_minutes) == (1250, 15)
    reread = get_settings(desk)
    assert (reread.tax_rate_bp, reread.idle_lock_minutes) == (1250, 15)
    assert reread.name == "Test Clinic"
    new = outbox(desk)[before:]
    # One update of the settings row, plus the insert of its audit event.
    assert sorted((e.entity, e.op) for e in new) == [
        ("audit_event", "insert"),
        ("clinic_settings", "update"),
    ]
    new = settings_mutations(new)
    assert new[0].row_id == reread.id
    assert set(new[0].fields) == {"tax_rate_bp", "idle_lock_minutes"}
    (event,) = settings_events(desk)
    assert (event.actor_id, event.entity, event.entity_id) == (
        admin.user_id,
        "clinic_settings",
        reread.id,
    )
    # Field names only: neither 1250 nor 15 appears.
    assert event.detail == "fields=tax_rate_bp,idle_lock_minutes"


def test_the_admin_window_form_saves_with_the_percentage_as_typed(desk: Desk, admin: Actor) -> None:
    """The form sends every field; only what differs from the stored row is written."""
    current = get_settings(desk)
    before = len(outbox(desk))

    update_settings(
        desk,
        admin,
        name=current.name,
        address=current.address,
        phone="+44 20 7946 0000",
        tax_rate="12.5",
        idle_lock_minutes=current.idle_lock_minutes,
        timezone="Europe/London",
    )

    stored = get_settings(desk)
    assert (stored.phone, stored.tax_rate_bp, stored.timezone) == (
        "+44 20 7946 0000",
        1250,
        "Europe/London",
    )
    (entry,) = settings_mutations(outbox(desk)[before:])
    assert set(entry.fields) == {"phone", "timezone", "tax_rate_bp"}
    assert settings_events(desk)[-1].detail == "fields=phone,timezone,tax_rate_bp"


def test_saving_unchanged_values_writes_nothing(desk: Desk, admin: Actor) -> None:
    current = get_settings(desk)
    before = len(outbox(desk))

    update_settings(desk, admin, name=current.name, idle_lock_minutes=current.idle_lock_minutes)

    assert len(outbox(desk)) == before
    assert settings_events(desk) == []


@pytest.mark.parametrize("roles", [("receptionist",), ("doctor",), ("billing",)])
def test_only_admins_change_settings_and_a_refusal_writes_nothing(
    desk: Desk, admin: Actor, roles: tuple[str, ...]
) -> None:
    other = staff(desk, admin, "someone", *roles)
    before, settings_before = len(outbox(desk)), snapshot(desk)

    with pytest.raises(PermissionDenied, match="admin"):
        update_settings(desk, other, idle_lock_minutes=60)

    assert len(outbox(desk)) == before
    assert snapshot(desk) == settings_before
    assert settings_events(desk) == []


def test_a_disabled_admin_cannot_change_settings(desk: Desk, admin: Actor) -> None:
    second = staff(desk, admin, "second-admin", "admin")
    users.set_disabled(desk, admin, second.user_id, True)

    with pytest.raises(PermissionDenied):
        update_settings(desk, second, idle_lock_minutes=60)
    assert get_settings(desk).idle_lock_minutes != 60


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": ""}, "name", "required"),
        ({"name": "   "}, "name", "required"),
        ({"name": "x" * 201}, "name", "at most 200"),
        ({"name": "Clinic\x07Bell"}, "name", "cannot be stored"),
        ({"name": "Clinic\nTwo lines"}, "name", "cannot be stored"),
        ({"name": 42}, "name", "must be text"),
        ({"address": "a" * 501}, "address", "at most 500"),
        ({"address": "12 Road\x00"}, "address", "cannot be stored"),
        ({"phone": "1" * 41}, "phone", "at most 40"),
        ({"currency": "usd"}, "currency", "three-letter"),
        ({"currency": "US"}, "currency", "three-letter"),
        ({"currency": "EURO"}, "currency", "three-letter"),
        ({"currency": "U$D"}, "currency", "three-letter"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "time zone"),
        ({"timezone": ""}, "timezone", "time zone"),
        ({"timezone": "../../etc/passwd"}, "timezone", "time zone"),
        ({"tax_rate_bp": -1}, "tax_rate_bp", "between 0 and 5000"),
        ({"tax_rate_bp": 5001}, "tax_rate_bp", "between 0 and 5000"),
        ({"tax_rate_bp": 12.5}, "tax_rate_bp", "whole number"),
        ({"tax_rate_bp": True}, "tax_rate_bp", "whole number"),
        ({"tax_rate": "50.01"}, "tax_rate", "50 %"),
        ({"tax_rate": "abc"}, "tax_rate", "number"),
        ({"tax_rate": "-5"}, "tax_rate", "negative"),
        ({"idle_lock_minutes": 0}, "idle_lock_minutes", "between 1 and 120"),
        ({"idle_lock_minutes": 121}, "idle_lock_minutes", "between 1 and 120"),
        ({"idle_lock_minutes": "ten"}, "idle_lock_minutes", "whole number"),
        ({"desk_code": "Z"}, "desk_code", "not a clinic setting"),
        ({"clinic_id": "other-clinic"}, "clinic_id", "not a clinic setting"),
    ],
)
def test_each_bad_value_is_refused_on_its_field_and_nothing_is_written(
    desk: Desk, admin: Actor, fields: dict[str, Any], field: str, message: str
) -> None:
    before, settings_before = len(outbox(desk)), snapshot(desk)

    with pytest.raises(ValidationError) as caught:
        # A valid change alongside proves the whole form is refused, not just the bad field.
        update_settings(desk, admin, **{"idle_lock_minutes": 33, "phone": "0123", **fields})

    assert list(caught.value.fields) == [field]
    assert message in caught.value.fields[field]
    assert len(outbox(desk)) == before
    assert snapshot(desk) == settings_before
    assert settings_events(desk) == []


def test_every_bad_field_is_reported_at_once(desk: Desk, admin: Actor) -> None:
    with pytest.raises(ValidationError) as caught:
        update_settings(desk, admin, name="", timezone="Nowhere/Else", idle_lock_minutes=500)
    assert set(caught.value.fields) == {"name", "timezone", "idle_lock_minutes"}


def test_limits_themselves_are_accepted(desk: Desk, admin: Actor) -> None:
    update_settings(
        desk,
        admin,
        name="n" * 200,
        address="Line one\nLine two " + "a" * 480,
        phone="1" * 40,
        tax_rate_bp=5000,
        idle_lock_minutes=120,
        timezone="Asia/Kolkata",
    )
    stored = get_settings(desk)
    assert (len(stored.name), stored.tax_rate_bp, stored.idle_lock_minutes) == (200, 5000, 120)
    update_settings(desk, admin, tax_rate_bp=0, idle_lock_minutes=1)
    assert (get_settings(desk).tax_rate_bp, get_settings(desk).idle_lock_minutes) == (0, 1)


def test_currency_changes_until_the_first_bill_and_then_is_refused(desk: Desk) -> None:
    world = build_world(desk, currency="USD", timezone="UTC")
    update_settings(desk, world.admin, currency="EUR")
    assert get_settings(desk).currency == "EUR"

    billing.create_bill_for_visit(desk, world.cashier, world.add_visit(status="completed"))
    before = len(outbox(desk))

    with pytest.raises(InvalidState, match="currency cannot be changed once bills"):
        update_settings(desk, world.admin, currency="GBP", idle_lock_minutes=42)

    assert get_settings(desk).currency == "EUR"
    assert get_settings(desk).idle_lock_minutes != 42
    assert len(outbox(desk)) == before
    # Re-saving the same currency (the admin form shows it) is not a change and is allowed.
    update_settings(desk, world.admin, currency="EUR", idle_lock_minutes=42)
    assert get_settings(desk).idle_lock_minutes == 42


def test_settings_are_one_row_per_clinic(desk: Desk, admin: Actor) -> None:
    update_settings(desk, admin, name="Renamed Clinic")
    with desk.reading() as session:
        assert session.scalar(select(func.count()).select_from(ClinicSettings)) == 1
    assert get_settings(desk).name == "Renamed Clinic"
