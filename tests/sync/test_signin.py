"""Sign-in: checked against the server when online (the server wins), cached when offline."""

from __future__ import annotations

import pytest

from clinic_desktop.models import User
from clinic_desktop.services import users
from clinic_desktop.services.errors import AuthenticationFailed
from clinic_desktop.sync.enrolment import sign_in_anywhere
from tests.sync.conftest import ADMIN, PASSWORD, DeskHandle, SharedClinic

NEW_PASSWORD = "Brisk-meadow-42"


def _new_receptionist(shared: SharedClinic, username: str) -> str:
    admin_desk = shared.admin_desk
    user = users.create_user(
        admin_desk.desk,
        admin_desk.actors[ADMIN],
        username=username,
        full_name="Sam Second",
        roles=["receptionist"],
        password=PASSWORD,
        must_change_password=False,
    )
    assert admin_desk.sync().rejected == 0
    return user.id


def test_a_password_changed_on_the_server_wins_over_the_desk_cache(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    user_id = _new_receptionist(shared, "sam")
    front = shared.new_desk("Front", "sam")
    desks.append(front)
    admin_desk = shared.admin_desk
    users.reset_password(admin_desk.desk, admin_desk.actors[ADMIN], user_id, NEW_PASSWORD)
    assert admin_desk.sync().rejected == 0
    # The front desk has not pulled the change: its cache still holds the old password.

    with pytest.raises(AuthenticationFailed):
        sign_in_anywhere(front.desk, front.transport, "sam", PASSWORD)
    result = sign_in_anywhere(front.desk, front.transport, "sam", NEW_PASSWORD)
    assert result.online
    assert result.actor.user_id == user_id

    # Offline from now on: the cache already knows the new password, not the old one.
    assert users.sign_in(front.desk, "sam", NEW_PASSWORD).user_id == user_id
    with pytest.raises(AuthenticationFailed):
        users.sign_in(front.desk, "sam", PASSWORD)


def test_an_account_disabled_on_the_server_is_refused_here_too(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    user_id = _new_receptionist(shared, "tara")
    front = shared.new_desk("Front", "tara")
    desks.append(front)
    admin_desk = shared.admin_desk
    users.set_disabled(admin_desk.desk, admin_desk.actors[ADMIN], user_id, True)
    assert admin_desk.sync().rejected == 0

    with pytest.raises(AuthenticationFailed, match="disabled"):
        sign_in_anywhere(front.desk, front.transport, "tara", PASSWORD)
    with front.desk.reading() as session:
        cached = session.get(User, user_id)
        assert cached is not None
        assert cached.disabled
    with pytest.raises(AuthenticationFailed):
        users.sign_in(front.desk, "tara", PASSWORD)  # also when the server is out of reach


def test_offline_sign_in_uses_the_cached_account(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    front = shared.new_desk("Front", shared.staff.receptionist)
    desks.append(front)
    shared.server.stop()
    try:
        result = sign_in_anywhere(front.desk, front.transport, shared.staff.receptionist, PASSWORD)
        assert not result.online
        assert result.actor.username == shared.staff.receptionist
        with pytest.raises(AuthenticationFailed):
            sign_in_anywhere(
                front.desk, front.transport, shared.staff.receptionist, "Wrong-pass-99"
            )
    finally:
        shared.server.start()
