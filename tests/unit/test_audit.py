"""The audit log: admins list it newest first with filters (action prefix, user, flagged,
the clinic's local dates), never more than asked for; the keyed chain shows tampering."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_desktop.services import users
from clinic_desktop.services.audit import list_events, record_event, verify_chain
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import PermissionDenied, ValidationError
from clinic_desktop.services.settings import update_settings

STAFF_PASSWORD = "staff password 7"


def staff(desk: Desk, admin: Actor, username: str, *roles: str) -> Actor:
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


def record(
    desk: Desk, actor: Actor | None, action: str, entity_id: str = "x", *, flagged: bool = False
) -> None:
    with desk.transaction(actor) as session:
        record_event(session, desk, actor, action, "patient", entity_id, flagged=flagged)


def at(desk: Desk, moment: datetime) -> None:
    """Make the desk's clock read ``moment`` for the events recorded next."""
    millis = int(moment.timestamp() * 1000)
    desk.clock = HybridLogicalClock(desk.device_id, wall_ms=lambda: millis)


def test_admin_lists_events_newest_first_and_the_limit_bounds_the_list(
    desk: Desk, admin: Actor
) -> None:
    for n in range(5):
        record(desk, admin, "patient.open", f"p{n}")

    events = list_events(desk, admin)
    assert [e.occurred_at for e in events] == sorted((e.occurred_at for e in events), reverse=True)
    assert [e.entity_id for e in events[:5]] == ["p4", "p3", "p2", "p1", "p0"]
    # Setup's own events (clinic.setup, workstation.enrol, user.create) come after, oldest last.
    assert events[-1].action == "clinic.setup"

    assert [e.entity_id for e in list_events(desk, admin, limit=2)] == ["p4", "p3"]
    with pytest.raises(ValidationError):
        list_events(desk, admin, limit=0)


def test_the_action_filter_is_a_prefix_or_an_exact_name(desk: Desk, admin: Actor) -> None:
    record(desk, admin, "patient.open")
    record(desk, admin, "patient.update")
    record(desk, admin, "bill.issue")

    assert {e.action for e in list_events(desk, admin, action="patient.")} == {
        "patient.open",
        "patient.update",
    }
    assert [e.action for e in list_events(desk, admin, action="bill.issue")] == ["bill.issue"]
    assert list_events(desk, admin, action="nothing.like.this") == []
    # LIKE wildcards typed by the admin are matched literally.
    assert list_events(desk, admin, action="%") == []
    assert list_events(desk, admin, action="patient_open") == []


def test_the_user_and_flagged_filters(desk: Desk, admin: Actor) -> None:
    doctor = staff(desk, admin, "drmehta", "doctor")
    record(desk, doctor, "patient.open", "seen-by-doctor")
    record(desk, doctor, "patient.break_glass", "emergency", flagged=True)
    record(desk, admin, "patient.open", "seen-by-admin")

    by_doctor = list_events(desk, admin, user_id=doctor.user_id)
    assert [e.entity_id for e in by_doctor] == ["emergency", "seen-by-doctor"]
    flagged = list_events(desk, admin, flagged_only=True)
    assert [(e.entity_id, e.flagged) for e in flagged] == [("emergency", True)]
    both = list_events(desk, admin, user_id=admin.user_id, flagged_only=True)
    assert both == []


def test_the_date_range_uses_the_clinics_local_dates(desk: Desk, admin: Actor) -> None:
    update_settings(desk, admin, timezone="Asia/Kolkata")  # UTC+05:30
    # 20:00 UTC on 3 March is 01:30 on 4 March in Kolkata; 19:00 UTC on 4 March is 00:30 on
    # the 5th. A UTC-day filter would get both of these wrong.
    at(desk, datetime(2026, 3, 3, 20, 0, tzinfo=UTC))
    record(desk, admin, "patient.open", "early-on-the-4th")
    at(desk, datetime(2026, 3, 4, 19, 0, tzinfo=UTC))
    record(desk, admin, "patient.open", "just-after-midnight-on-the-5th")
    at(desk, datetime(2026, 3, 6, 12, 0, tzinfo=UTC))
    record(desk, admin, "patient.open", "on-the-6th")

    def ids(since: date | None, until: date | None) -> list[str]:
        found = list_events(desk, admin, action="patient.", since=since, until=until)
        return [e.entity_id for e in found]

    assert ids(date(2026, 3, 4), date(2026, 3, 4)) == ["early-on-the-4th"]
    assert ids(date(2026, 3, 5), date(2026, 3, 5)) == ["just-after-midnight-on-the-5th"]
    assert ids(date(2026, 3, 3), date(2026, 3, 3)) == []
    assert ids(date(2026, 3, 5), None) == ["on-the-6th", "just-after-midnight-on-the-5th"]
    assert ids(None, date(2026, 3, 5)) == [
        "just-after-midnight-on-the-5th",
        "early-on-the-4th",
    ]
    with pytest.raises(ValidationError):
        list_events(desk, admin, since=date(2026, 3, 6), until=date(2026, 3, 4))


@pytest.mark.parametrize("roles", [("receptionist",), ("doctor",), ("billing",)])
def test_only_admins_read_the_audit_log(desk: Desk, admin: Actor, roles: tuple[str, ...]) -> None:
    other = staff(desk, admin, "someone", *roles)
    with pytest.raises(PermissionDenied, match="admin"):
        list_events(desk, other)


def test_the_chain_is_intact_after_normal_work(desk: Desk, admin: Actor) -> None:
    for n in range(3):
        record(desk, admin, "patient.open", f"p{n}")
    with desk.reading() as session:
        report = verify_chain(session, desk)
    assert report.ok
    assert report.checked == 6  # setup's three events and these three


def test_the_chain_detects_an_event_edited_behind_the_apps_back(desk: Desk, admin: Actor) -> None:
    for n in range(3):
        record(desk, admin, "patient.open", f"p{n}")
    with desk.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_event SET detail = 'nothing to see' WHERE origin = :o AND seq = 4"),
            {"o": desk.device_id},
        )
    with desk.reading() as session:
        report = verify_chain(session, desk)
    assert not report.ok
    assert report.problems == ["event #4 was altered"]


def test_the_chain_detects_a_removed_middle_event(desk: Desk, admin: Actor) -> None:
    for n in range(3):
        record(desk, admin, "patient.open", f"p{n}")
    with desk.engine.begin() as conn:
        conn.execute(
            text("DELETE FROM audit_event WHERE origin = :o AND seq = 5"), {"o": desk.device_id}
        )
    with desk.reading() as session:
        report = verify_chain(session, desk)
    assert not report.ok
    assert "event #5 is missing (next found is #6)" in report.problems
    assert "event #6 does not follow the one before it" in report.problems
