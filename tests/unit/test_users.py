"""User accounts: first-run setup, password rules, sign-in, lock-out and admin management."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clinic_desktop.models import AuditEvent, ClinicSettings, OutboxEntry, SyncState, User
from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_desktop.services import passwords, users
from clinic_desktop.services.audit import verify_chain
from clinic_desktop.services.context import Actor, Clock, Desk
from clinic_desktop.services.errors import (
    AuthenticationFailed,
    InvalidState,
    PermissionDenied,
    ValidationError,
)
from clinic_desktop.store.open import OpenedStore, desk_for

ADMIN_PASSWORD = "correct horse 42"
STAFF_PASSWORD = "staff password 7"


class FixedClock(Clock):
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def utcnow(self) -> datetime:
        return self.at


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def clinic(opened_store: OpenedStore) -> tuple[Desk, Actor]:
    """First-run setup on a store opened (and migrated) exactly as the application does."""
    result = users.setup_clinic(
        opened_store.engine,
        device_id=opened_store.device_id,
        audit_key=opened_store.audit_key,
        clock=opened_store.clock,
        clinic_name="Green Valley Clinic",
        currency="inr",
        desk_code="b",
        admin_username="Admin",
        admin_full_name="  Asha   Rao ",
        password=ADMIN_PASSWORD,
        now=FixedClock(),
    )
    return result.desk, result.admin


def count(desk: Desk, model: type) -> int:
    with desk.reading() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def audit_actions(desk: Desk) -> list[str]:
    with desk.reading() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all())


# --- password rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("short", "at least 10 characters"),
        ("a" * 73, "too long"),
        ("é" * 37, "too long"),  # 74 bytes in UTF-8 although only 37 characters
        ("tab\there-is-it", "control characters"),
        (" leading space ok?", "start or end with a space"),
        ("aaaaaaaaaaaa", "more variety"),
        ("Password123", "too common"),
        ("xx-admin-xx-1", "cannot contain the user name"),
    ],
)
def test_password_rules_refuse_weak_or_over_long_passwords(password: str, expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        passwords.check_password_rules(password, username="admin")
    assert expected in info.value.fields["password"]


def test_a_72_byte_password_is_accepted_and_a_73rd_byte_is_never_truncated_away() -> None:
    longest = "Zq9" + "x" * 68 + "!"
    assert len(longest.encode()) == 72
    passwords.check_password_rules(longest)
    stored = passwords.hash_password(longest)
    assert passwords.verify_password(longest, stored)
    # bcrypt would compare only the first 72 bytes; the longer one must not match.
    assert not passwords.verify_password(longest + "A", stored)
    with pytest.raises(ValidationError):
        passwords.hash_password(longest + "A")


def test_unicode_passwords_hash_and_verify() -> None:
    word = "पासवर्ड-密码-🔑"
    stored = passwords.hash_password(word)
    assert stored.startswith("$2")
    assert passwords.verify_password(word, stored)
    assert not passwords.verify_password(word + "x", stored)
    assert not passwords.verify_password(word, "not a bcrypt hash")


# --- first-run setup --------------------------------------------------------------------------


def test_setup_creates_clinic_workstation_first_admin_and_desk_identity(
    clinic: tuple[Desk, Actor],
) -> None:
    desk, admin = clinic
    assert admin.roles == frozenset({"admin"})
    assert admin.username == "admin"
    assert admin.full_name == "Asha Rao"
    with desk.reading() as session:
        settings = session.scalars(select(ClinicSettings)).one()
        assert (settings.name, settings.currency) == ("Green Valley Clinic", "INR")
        assert session.get(SyncState, "clinic_id").value == desk.clinic_id  # type: ignore[union-attr]
        assert session.get(SyncState, "desk_code").value == "B"  # type: ignore[union-attr]
        user = session.get(User, admin.user_id)
        assert user is not None
        assert user.password_hash != ADMIN_PASSWORD
        assert passwords.verify_password(ADMIN_PASSWORD, user.password_hash)
        # settings, workstation and admin each left an outbox entry
        entities = set(session.scalars(select(OutboxEntry.entity)).all())
        assert {"clinic_settings", "workstation", "user_account"} <= entities
        assert verify_chain(session, desk).ok
    assert audit_actions(desk) == ["clinic.setup", "workstation.enrol", "user.create"]
    assert users.is_set_up(desk.engine)


def test_the_store_reopens_as_the_same_desk_after_setup(
    clinic: tuple[Desk, Actor], opened_store: OpenedStore
) -> None:
    desk, admin = clinic
    reopened = desk_for(opened_store)
    assert reopened is not None
    assert (reopened.clinic_id, reopened.desk_code, reopened.device_id) == (
        desk.clinic_id,
        "B",
        desk.device_id,
    )
    assert users.sign_in(reopened, "admin", ADMIN_PASSWORD) == admin


def test_setup_refuses_to_run_twice(clinic: tuple[Desk, Actor]) -> None:
    desk, _ = clinic
    with pytest.raises(InvalidState, match="already set up"):
        users.setup_clinic(
            desk.engine,
            device_id=desk.device_id,
            audit_key=desk.audit_key,
            clock=desk.clock,
            clinic_name="Another",
            currency="USD",
            desk_code="C",
            admin_username="other",
            admin_full_name="Other Admin",
            password=ADMIN_PASSWORD,
        )
    assert count(desk, ClinicSettings) == 1


def test_setup_validates_every_field_before_writing_anything(opened_store: OpenedStore) -> None:
    with pytest.raises(ValidationError) as info:
        users.setup_clinic(
            opened_store.engine,
            device_id="dev",
            audit_key=secrets.token_bytes(32),
            clock=HybridLogicalClock("dev"),
            clinic_name="   ",
            currency="rupees",
            desk_code="B1",
            admin_username="a",
            admin_full_name="",
            password="short",
            timezone="Mars/Olympus",
        )
    assert set(info.value.fields) == {
        "clinic_name",
        "currency",
        "desk_code",
        "username",
        "admin_full_name",
        "password",
        "timezone",
    }
    assert not users.is_set_up(opened_store.engine)
    assert desk_for(opened_store) is None
    with Session(opened_store.engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxEntry)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


# --- managing accounts ------------------------------------------------------------------------


def make_user(desk: Desk, admin: Actor, username: str, *roles: str) -> User:
    return users.create_user(
        desk,
        admin,
        username=username,
        full_name=username.title(),
        roles=roles,
        password=STAFF_PASSWORD,
        must_change_password=False,
    )


def test_admin_creates_users_with_several_roles(clinic: tuple[Desk, Actor]) -> None:
    desk, admin = clinic
    outbox_before = count(desk, OutboxEntry)
    user = users.create_user(
        desk,
        admin,
        username=" Dr.Mehta ",
        full_name="Ravi Mehta",
        roles=["billing", "Doctor", "doctor"],
        password=STAFF_PASSWORD,
    )
    assert user.username == "dr.mehta"
    assert user.roles == ["doctor", "billing"]
    assert user.must_change_password
    # the account and its audit event both travel through the outbox
    with desk.reading() as session:
        entities = session.scalars(
            select(OutboxEntry.entity).where(OutboxEntry.seq > outbox_before)
        ).all()
    assert sorted(entities) == ["audit_event", "user_account"]
    assert audit_actions(desk)[-1] == "user.create"
    listed = [u.username for u in users.list_users(desk, admin)]
    assert listed == ["admin", "dr.mehta"]


def test_user_names_are_unique_ignoring_case(clinic: tuple[Desk, Actor]) -> None:
    desk, admin = clinic
    make_user(desk, admin, "nurse", "receptionist")
    with pytest.raises(ValidationError, match="already taken"):
        make_user(desk, admin, "NURSE", "receptionist")


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("username", {"username": "x"}),
        ("username", {"username": "robert'); DROP TABLE user_account;--"}),
        ("full_name", {"full_name": "   "}),
        ("full_name", {"full_name": "n" * 201}),
        ("full_name", {"full_name": "bell\x07name"}),
        ("roles", {"roles": []}),
        ("roles", {"roles": ["superuser"]}),
        ("password", {"password": "tiny"}),
    ],
)
def test_create_user_rejects_bad_input_before_writing(
    clinic: tuple[Desk, Actor], field: str, kwargs: dict[str, object]
) -> None:
    desk, admin = clinic
    values: dict[str, object] = {
        "username": "frontdesk",
        "full_name": "Front Desk",
        "roles": ["receptionist"],
        "password": STAFF_PASSWORD,
    }
    values.update(kwargs)
    before = (count(desk, User), count(desk, OutboxEntry), count(desk, AuditEvent))
    with pytest.raises(ValidationError) as info:
        users.create_user(desk, admin, **values)  # type: ignore[arg-type]
    assert field in info.value.fields
    assert (count(desk, User), count(desk, OutboxEntry), count(desk, AuditEvent)) == before


def test_names_with_html_and_quotes_are_stored_verbatim(clinic: tuple[Desk, Actor]) -> None:
    desk, admin = clinic
    odd = '<img src=x onerror=alert(1)> O\'Brien "Bob"; DROP TABLE user_account;--'
    user = users.create_user(
        desk, admin, username="bob", full_name=odd, roles=["billing"], password=STAFF_PASSWORD
    )
    with desk.reading() as session:
        assert session.get(User, user.id).full_name == odd  # type: ignore[union-attr]
    assert count(desk, User) == 2


def test_only_admins_manage_users(clinic: tuple[Desk, Actor]) -> None:
    desk, admin = clinic
    clerk = users.actor_for(make_user(desk, admin, "clerk", "receptionist", "billing"))
    doctor = make_user(desk, admin, "doc", "doctor")
    before = count(desk, AuditEvent)
    with pytest.raises(PermissionDenied, match="admin"):
        make_user(desk, clerk, "sneaky", "admin")
    with pytest.raises(PermissionDenied):
        users.set_disabled(desk, clerk, doctor.id, True)
    with pytest.raises(PermissionDenied):
        users.update_roles(desk, clerk, clerk.user_id, ["admin"])
    with pytest.raises(PermissionDenied):
        users.reset_password(desk, clerk, doctor.id, "new password 99")
    with pytest.raises(PermissionDenied):
        users.list_users(desk, clerk)
    assert count(desk, AuditEvent) == before


def test_update_roles_and_the_last_admin_is_protected(clinic: tuple[Desk, Actor]) -> None:
    desk, admin = clinic
    user = make_user(desk, admin, "sam", "receptionist")
    updated = users.update_roles(desk, admin, user.id, ["receptionist", "billing"])
    assert updated.roles == ["receptionist", "billing"]
    assert audit_actions(desk)[-1] == "user.roles"
    with pytest.raises(InvalidState, match="last administrator"):
        users.update_roles(desk, admin, admin.user_id, ["doctor"])
    with pytest.raises(InvalidState, match="own account"):
        users.set_disabled(desk, admin, admin.user_id, True)
    # With a second admin, the first may drop the role.
    users.update_roles(desk, admin, user.id, ["admin"])
    users.update_roles(desk, admin, admin.user_id, ["doctor"])


def test_a_disabled_user_cannot_sign_in_nor_keep_acting(clinic: tuple[Desk, Actor]) -> None:
    desk, admin = clinic
    second_admin = users.actor_for(make_user(desk, admin, "deputy", "admin"))
    assert users.sign_in(desk, "deputy", STAFF_PASSWORD).user_id == second_admin.user_id
    users.set_disabled(desk, admin, second_admin.user_id, True)
    assert audit_actions(desk)[-1] == "user.disable"
    with pytest.raises(AuthenticationFailed, match="disabled"):
        users.sign_in(desk, "deputy", STAFF_PASSWORD)
    # The Actor from before is still in memory; the next action must still be refused.
    with pytest.raises(PermissionDenied, match="disabled"):
        make_user(desk, second_admin, "late", "billing")
    # A wrong password for a disabled account gets the generic message, revealing nothing.
    with pytest.raises(AuthenticationFailed) as info:
        users.sign_in(desk, "deputy", "wrong password 1")
    assert str(info.value) == users.BAD_SIGN_IN
    users.set_disabled(desk, admin, second_admin.user_id, False)
    assert users.sign_in(desk, "deputy", STAFF_PASSWORD).username == "deputy"


# --- signing in -------------------------------------------------------------------------------


def test_sign_in_returns_the_actor_and_audits_success(clinic: tuple[Desk, Actor]) -> None:
    desk, admin = clinic
    actor = users.sign_in(desk, "  ADMIN ", ADMIN_PASSWORD)
    assert actor == admin
    with desk.reading() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert event is not None
        assert (event.action, event.actor_id, event.entity_id) == (
            "auth.sign_in",
            admin.user_id,
            admin.user_id,
        )
        assert ADMIN_PASSWORD not in event.detail


def test_wrong_user_and_wrong_password_give_the_same_message(clinic: tuple[Desk, Actor]) -> None:
    desk, _ = clinic
    with pytest.raises(AuthenticationFailed) as unknown:
        users.sign_in(desk, "nobody", ADMIN_PASSWORD)
    with pytest.raises(AuthenticationFailed) as wrong:
        users.sign_in(desk, "admin", "not the password")
    assert str(unknown.value) == str(wrong.value) == users.BAD_SIGN_IN
    assert audit_actions(desk)[-2:] == ["auth.sign_in_failed", "auth.sign_in_failed"]


def test_five_failures_lock_the_account_for_fifteen_minutes(clinic: tuple[Desk, Actor]) -> None:
    desk, admin = clinic
    clock = desk.now
    assert isinstance(clock, FixedClock)
    for _ in range(users.MAX_FAILED_ATTEMPTS - 1):
        with pytest.raises(AuthenticationFailed, match="Wrong user name or password"):
            users.sign_in(desk, "admin", "guess guess 1")
    with pytest.raises(AuthenticationFailed, match="locked"):
        users.sign_in(desk, "admin", "guess guess 5")
    # Locked: even the right password is refused, and the lock is audited and flagged.
    with pytest.raises(AuthenticationFailed, match=r"locked.*15 minutes"):
        users.sign_in(desk, "admin", ADMIN_PASSWORD)
    with desk.reading() as session:
        flagged = session.scalars(select(AuditEvent).where(AuditEvent.flagged.is_(True))).all()
        assert [e.action for e in flagged] == ["auth.locked"]
    clock.at += timedelta(minutes=14)
    with pytest.raises(AuthenticationFailed, match="locked"):
        users.sign_in(desk, "admin", ADMIN_PASSWORD)
    clock.at += timedelta(minutes=1, seconds=1)
    assert users.sign_in(desk, "admin", ADMIN_PASSWORD) == admin


def test_a_success_resets_the_failure_count(clinic: tuple[Desk, Actor]) -> None:
    desk, _ = clinic
    for _ in range(users.MAX_FAILED_ATTEMPTS - 1):
        with pytest.raises(AuthenticationFailed):
            users.sign_in(desk, "admin", "guess guess 1")
    users.sign_in(desk, "admin", ADMIN_PASSWORD)
    for _ in range(users.MAX_FAILED_ATTEMPTS - 1):
        with pytest.raises(AuthenticationFailed, match="Wrong user name"):
            users.sign_in(desk, "admin", "guess guess 1")


def test_admin_unlock_and_password_reset_force_a_new_password(clinic: tuple[Desk, Actor]) -> None:
    desk, admin = clinic
    staff = make_user(desk, admin, "reena", "receptionist")
    for _ in range(users.MAX_FAILED_ATTEMPTS):
        with pytest.raises(AuthenticationFailed):
            users.sign_in(desk, "reena", "forgot it again")
    with pytest.raises(AuthenticationFailed, match="locked"):
        users.sign_in(desk, "reena", STAFF_PASSWORD)
    users.unlock(desk, admin, staff.id)
    actor = users.sign_in(desk, "reena", STAFF_PASSWORD)
    assert not users.must_change_password(desk, actor)

    users.reset_password(desk, admin, staff.id, "temporary pass 1")
    with pytest.raises(AuthenticationFailed):
        users.sign_in(desk, "reena", STAFF_PASSWORD)
    actor = users.sign_in(desk, "reena", "temporary pass 1")
    assert users.must_change_password(desk, actor)
    with pytest.raises(AuthenticationFailed, match="current password is wrong"):
        users.change_own_password(desk, actor, "not it at all", "my own secret 22")
    with pytest.raises(ValidationError) as info:
        users.change_own_password(desk, actor, "temporary pass 1", "short")
    assert "new_password" in info.value.fields
    users.change_own_password(desk, actor, "temporary pass 1", "my own secret 22")
    assert not users.must_change_password(desk, actor)
    assert users.sign_in(desk, "reena", "my own secret 22").user_id == staff.id
    actions = audit_actions(desk)
    for action in ("user.unlock", "user.password_reset", "user.password_change"):
        assert action in actions


def test_idle_unlock_checks_the_same_persons_password(clinic: tuple[Desk, Actor]) -> None:
    desk, admin = clinic
    assert users.verify_password_for_unlock(desk, admin, ADMIN_PASSWORD) == admin
    with pytest.raises(AuthenticationFailed, match="Wrong password"):
        users.verify_password_for_unlock(desk, admin, "wrong wrong 1")
    assert audit_actions(desk)[-2:] == ["auth.unlock", "auth.unlock_failed"]
    for _ in range(users.MAX_FAILED_ATTEMPTS - 1):
        with pytest.raises(AuthenticationFailed):
            users.verify_password_for_unlock(desk, admin, "wrong wrong 1")
    with pytest.raises(AuthenticationFailed, match="locked"):
        users.verify_password_for_unlock(desk, admin, ADMIN_PASSWORD)


def test_failed_sign_ins_write_the_lockout_counter_through_the_outbox(
    clinic: tuple[Desk, Actor],
) -> None:
    desk, admin = clinic
    before = count(desk, OutboxEntry)
    with pytest.raises(AuthenticationFailed):
        users.sign_in(desk, "admin", "guess guess 1")
    with desk.reading() as session:
        entries = session.scalars(select(OutboxEntry).where(OutboxEntry.seq > before)).all()
        assert [(e.entity, e.row_id) for e in entries if e.entity == "user_account"] == [
            ("user_account", admin.user_id)
        ]
        # no password material in the outbox
        assert all("guess" not in str(e.fields) for e in entries)
