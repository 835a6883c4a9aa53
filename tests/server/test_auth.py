"""Sign-in, tokens, roles, enrolment and clinic isolation over real HTTP."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest

from clinic_desktop.sync import protocol
from clinic_server.security import AccessClaims, issue_access_token
from tests.server.conftest import PASSWORD, World, mutation, patient_fields


def test_login_gives_tokens_that_open_the_api(world: World) -> None:
    admin = world.login("admin")
    me = world.http.get("/api/v1/auth/me", headers=admin.headers(device=False))
    assert me.status_code == 200
    assert me.json()["roles"] == ["admin"]
    assert me.json()["clinic_id"] == world.clinic_id


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(world: World) -> None:
    for username in ("admin", "nobody-here"):
        response = world.http.post(
            "/api/v1/auth/login",
            json={
                "username": username,
                "password": "Wrong-password-1",
                "clinic_id": world.clinic_id,
            },
            headers=protocol.version_headers(),
        )
        assert response.status_code == 401
        assert response.json() == {"detail": "Wrong user name or password."}


def test_no_tampered_or_expired_token_gets_in(world: World) -> None:
    admin = world.login("admin")
    headers = admin.headers()
    assert (
        world.http.get("/api/v1/sync/changes", headers=protocol.version_headers()).status_code
        == 401
    )
    tampered = admin.token[:-3] + ("AAA" if not admin.token.endswith("AAA") else "BBB")
    for token in (tampered, "not-a-token", admin.token.replace(".", "", 1)):
        response = world.http.get(
            "/api/v1/sync/changes", headers=headers | {"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, token
    secret = world.server.settings.token_secret.get_secret_value()
    claims = AccessClaims(admin.user_id, world.clinic_id, "no-such-session")
    expired = issue_access_token(secret, claims, timedelta(seconds=-5))
    response = world.http.get(
        "/api/v1/sync/changes", headers=headers | {"Authorization": f"Bearer {expired}"}
    )
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    forged = issue_access_token(
        "another-secret-of-enough-length-for-hs256", claims, timedelta(minutes=5)
    )
    response = world.http.get(
        "/api/v1/sync/changes", headers=headers | {"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(world: World) -> None:
    admin = world.login("admin")
    first = world.http.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": admin.refresh},
        headers=protocol.version_headers(),
    )
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != admin.refresh
    reuse = world.http.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": admin.refresh},
        headers=protocol.version_headers(),
    )
    assert reuse.status_code == 401
    # The theft signal revoked the session: even the newest tokens stop working.
    after = world.http.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": rotated["refresh_token"]},
        headers=protocol.version_headers(),
    )
    assert after.status_code == 401
    me = world.http.get(
        "/api/v1/auth/me",
        headers=protocol.version_headers() | {"Authorization": f"Bearer {rotated['access_token']}"},
    )
    assert me.status_code == 401


def test_logout_ends_access_too(world: World) -> None:
    admin = world.login("admin")
    out = world.http.post(
        "/api/v1/auth/logout",
        json={"refresh_token": admin.refresh},
        headers=protocol.version_headers(),
    )
    assert out.status_code == 204
    assert world.http.get("/api/v1/auth/me", headers=admin.headers()).status_code == 401


def test_repeated_failures_lock_the_account_and_the_desks_learn_it(world: World) -> None:
    world.add_user("rita", "receptionist")
    for _ in range(5):
        response = world.http.post(
            "/api/v1/auth/login",
            json={"username": "rita", "password": "Wrong-password-1", "clinic_id": world.clinic_id},
            headers=protocol.version_headers(),
        )
        assert response.status_code == 401
    locked = world.http.post(
        "/api/v1/auth/login",
        json={"username": "rita", "password": PASSWORD, "clinic_id": world.clinic_id},
        headers=protocol.version_headers(),
    )
    assert locked.status_code == 401
    assert "locked" in locked.json()["detail"]
    changes, _ = world.admin_on["A"].pull_all()
    rita = [
        c["row"]
        for c in changes
        if c["entity"] == "user_account" and c["row"]["username"] == "rita"
    ]
    assert rita[-1]["failed_attempts"] >= 5
    assert rita[-1]["locked_until"]


def test_sign_in_is_rate_limited_per_user_name_and_address(world: World) -> None:
    limit = world.server.settings.login_max_failures_per_window
    for _ in range(limit):
        world.http.post(
            "/api/v1/auth/login",
            json={
                "username": "ghost",
                "password": "Wrong-password-1",
                "clinic_id": world.clinic_id,
            },
            headers=protocol.version_headers(),
        )
    response = world.http.post(
        "/api/v1/auth/login",
        json={"username": "ghost", "password": "Wrong-password-1", "clinic_id": world.clinic_id},
        headers=protocol.version_headers(),
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


def test_disabled_user_is_refused_on_the_next_request(world: World) -> None:
    user_id = world.add_user("dora", "doctor")
    dora = world.login("dora", desk="A")
    assert world.http.get("/api/v1/auth/me", headers=dora.headers()).status_code == 200
    admin = world.admin_on["A"]
    result = admin.push_one(
        mutation("user_account", user_id, {"disabled": True}, op="update", base_version=1)
    )
    assert result["status"] in ("accepted", "merged"), result
    response = world.http.get("/api/v1/sync/changes", headers=dora.headers())
    assert response.status_code == 401
    assert "disabled" in response.json()["detail"]


def test_revoked_workstation_is_refused_on_the_next_request(world: World) -> None:
    device_id, _ = world.enrol("B")
    on_b = world.admin_on["B"]
    assert on_b.pull().status_code == 200
    admin = world.login("admin")
    revoked = world.http.post(
        f"/api/v1/devices/{device_id}/revoke", json={}, headers=admin.headers(device=False)
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is True
    response = on_b.pull()
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_enrolment_codes_are_single_use_and_admin_only(world: World) -> None:
    rid = world.add_user("rex", "receptionist")
    assert rid
    rex = world.login("rex")
    refused = world.http.post(
        "/api/v1/devices/enrolment-codes", json={}, headers=rex.headers(device=False)
    )
    assert refused.status_code == 403
    admin = world.login("admin")
    code = world.http.post(
        "/api/v1/devices/enrolment-codes", json={}, headers=admin.headers(device=False)
    ).json()["code"]
    body = {"code": code, "desk_code": "C", "name": "Room 3"}
    first = world.http.post("/api/v1/devices/enrol", json=body, headers=protocol.version_headers())
    assert first.status_code == 201
    again = world.http.post(
        "/api/v1/devices/enrol", json=body | {"desk_code": "D"}, headers=protocol.version_headers()
    )
    assert again.status_code == 401
    taken = world.http.post(
        "/api/v1/devices/enrolment-codes", json={}, headers=admin.headers(device=False)
    ).json()["code"]
    clash = world.http.post(
        "/api/v1/devices/enrol",
        json={"code": taken, "desk_code": "A", "name": "x"},
        headers=protocol.version_headers(),
    )
    assert clash.status_code == 409


@pytest.mark.parametrize("entity", ["prescription", "payment", "price_item", "clinic_settings"])
def test_a_receptionist_cannot_push_what_their_role_does_not_allow(
    world: World, entity: str
) -> None:
    world.add_user("rina", "receptionist")
    rina = world.login("rina", desk="A")
    row_id = str(uuid.uuid4())
    result = rina.push_one(mutation(entity, row_id, {"id": row_id}))
    assert result["status"] == "rejected"
    assert "role" in result["reason"] or "Missing" in result["reason"]


def test_role_is_checked_before_content(world: World) -> None:
    world.add_user("rina", "receptionist")
    rina = world.login("rina", desk="A")
    row_id = str(uuid.uuid4())
    fields = {
        "id": row_id,
        "code": "XRAY",
        "name": "X-ray",
        "amount_minor": 100,
        "currency": "USD",
    }
    result = rina.push_one(mutation("price_item", row_id, fields))
    assert result["status"] == "rejected"
    assert "admin role" in result["reason"]


def test_another_clinics_token_never_reads_or_writes_this_clinic(
    world: World, server: object
) -> None:
    admin = world.admin_on["A"]
    patient_id = str(uuid.uuid4())
    assert (
        admin.push_one(
            mutation(
                "patient", patient_id, patient_fields(world.clinic_id, patient_id, "P-A-000001")
            )
        )["status"]
        == "accepted"
    )

    from clinic_server import bootstrap

    other_id = bootstrap.create_clinic(world.server.db, "Other clinic")
    bootstrap.create_admin(world.server.db, other_id, "admin", "Other Admin", PASSWORD)
    other = World(server=world.server, http=world.http, clinic_id=other_id, admin_id="")
    other.enrol("A")
    intruder = other.admin_on["A"]
    changes, _ = intruder.pull_all()
    assert all(c["row"]["clinic_id"] == other_id for c in changes)
    assert patient_id not in {c["row"]["id"] for c in changes}
    page = world.http.get(
        "/api/v1/sync/snapshot", params={"entity": "patient"}, headers=intruder.headers()
    )
    assert page.status_code == 200
    assert page.json()["rows"] == []
    # Writing into the other clinic's row, or claiming its clinic id, is rejected.
    update = intruder.push_one(
        mutation("patient", patient_id, {"full_name": "Hijacked"}, op="update", base_version=1)
    )
    assert update["status"] == "rejected"
    claim = intruder.push_one(
        mutation("patient", str(uuid.uuid4()), patient_fields(world.clinic_id, "x", "P-A-9"))
    )
    assert claim["status"] == "rejected"
    # A token of one clinic with the other clinic's workstation credential is refused.
    mixed = intruder.headers() | {
        protocol.HEADER_DEVICE_ID: world.desks["A"][0],
        protocol.HEADER_DEVICE_SECRET: world.desks["A"][1],
    }
    assert world.http.get("/api/v1/sync/changes", headers=mixed).status_code == 403
    rows, _ = admin.pull_all()
    assert [r["row"]["full_name"] for r in rows if r["row"]["id"] == patient_id] == ["Amina Yusuf"]


def test_version_headers_old_is_426_missing_is_4xx(world: World) -> None:
    admin = world.admin_on["A"]
    old = admin.headers() | {protocol.HEADER_PROTOCOL: "0"}
    response = world.http.get("/api/v1/sync/changes", headers=old)
    assert response.status_code == 426
    assert "Update" in response.json()["detail"]
    headers = admin.headers()
    del headers[protocol.HEADER_SCHEMA]
    assert world.http.get("/api/v1/sync/changes", headers=headers).status_code == 422
    newer = admin.headers() | {protocol.HEADER_SCHEMA: str(protocol.SCHEMA_VERSION + 1)}
    assert world.http.get("/api/v1/sync/changes", headers=newer).status_code == 400


def test_health_readiness_and_metrics(world: World) -> None:
    assert world.http.get("/healthz").json() == {"status": "ok"}
    assert world.http.get("/readyz").status_code == 200
    world.admin_on["A"].pull()
    text = world.http.get("/metrics").text
    assert "clinic_http_requests_total" in text
    assert "clinic_sync_pulls_total" in text
    assert "clinic_sync_connected_desks" in text


def test_openapi_is_served(world: World) -> None:
    schema = world.http.get("/openapi.json").json()
    assert "/api/v1/sync/push" in schema["paths"]


def _unused(_: httpx.Client) -> None:  # keep the import meaningful for type checkers
    return None


def test_an_expired_sign_in_session_cannot_be_refreshed(world: World) -> None:
    from datetime import UTC, datetime

    from clinic_server.security import refresh_session_id
    from clinic_server.tables import AuthSession

    admin = world.login("admin")
    with world.server.db.write() as session:
        auth = session.get(AuthSession, refresh_session_id(admin.refresh))
        assert auth is not None
        auth.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    response = world.http.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": admin.refresh},
        headers=protocol.version_headers(),
    )
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
