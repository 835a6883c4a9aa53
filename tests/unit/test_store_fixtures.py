"""The shared ``desk`` fixture is the real thing: keyring key, migrations, first-run setup."""

from __future__ import annotations

from sqlalchemy import func, select

from clinic_desktop.models import AuditEvent, ClinicSettings
from clinic_desktop.services.audit import verify_chain
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.store.open import OpenedStore, desk_for


def test_desk_fixture_is_set_up_on_the_opened_store(
    opened_store: OpenedStore, desk: Desk, admin: Actor
) -> None:
    reopened = desk_for(opened_store)
    assert reopened is not None
    assert (reopened.clinic_id, reopened.desk_code) == (desk.clinic_id, "A")
    assert desk.device_id == opened_store.device_id
    assert admin.has("admin")
    with desk.reading() as session:
        assert session.scalar(select(func.count()).select_from(ClinicSettings)) == 1
        assert (session.scalar(select(func.count()).select_from(AuditEvent)) or 0) >= 1
        assert verify_chain(session, desk).ok
