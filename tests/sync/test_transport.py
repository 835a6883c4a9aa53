"""The HTTP transport: TLS rules, typed errors for every kind of refusal, token refresh."""

from __future__ import annotations

import pytest

from clinic_desktop.sync import protocol
from clinic_desktop.sync.errors import (
    AuthRequired,
    InsecureServerUrl,
    NotEnrolled,
    Offline,
    SyncError,
    UpgradeRequired,
)
from clinic_desktop.sync.transport import Tokens, Transport
from tests.sync.conftest import PASSWORD, DeskHandle, SharedClinic, free_port


def test_plain_http_is_refused_unless_explicitly_allowed_and_on_loopback() -> None:
    with pytest.raises(InsecureServerUrl):
        Transport("http://clinic.example:8700")
    with pytest.raises(InsecureServerUrl):  # the demo flag never opens a clear-text network link
        Transport("http://clinic.example:8700", allow_insecure=True)
    with pytest.raises(InsecureServerUrl):
        Transport("http://192.168.1.20:8700", allow_insecure=True)
    for local in ("http://127.0.0.1:8700/", "http://localhost:8700", "http://[::1]:8700"):
        assert Transport(local, allow_insecure=True).base_url == local.rstrip("/")
    assert Transport("https://clinic.example/").base_url == "https://clinic.example"
    with pytest.raises(SyncError):
        Transport("clinic.example")


def test_an_unreachable_server_is_offline_not_a_crash() -> None:
    transport = Transport(f"http://127.0.0.1:{free_port()}", allow_insecure=True)
    with pytest.raises(Offline):
        transport.login("anyone", "whatever-123")


def test_sync_calls_need_an_enrolled_workstation(shared: SharedClinic) -> None:
    transport = Transport(shared.server.url, allow_insecure=True)
    with pytest.raises(NotEnrolled):
        transport.changes(0, limit=10, wait=0)


def test_an_expired_access_token_is_refreshed_once(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    front = shared.new_desk("Front", shared.staff.receptionist)
    desks.append(front)
    seen: list[Tokens | None] = []
    transport = Transport(
        shared.server.url,
        allow_insecure=True,
        credential=front.transport.credential,
        on_tokens=seen.append,
    )
    good = transport.login(shared.staff.receptionist, PASSWORD)
    transport.set_tokens(Tokens("not-a-valid-token", good.refresh_token, good.user))

    start = transport.snapshot_start()

    assert isinstance(start["cursor"], int)
    assert len(seen) == 1
    assert seen[0] is not None
    assert seen[0].access_token != "not-a-valid-token"
    assert seen[0].refresh_token != good.refresh_token  # rotated


def test_a_revoked_workstation_and_an_old_protocol_are_refused_with_typed_errors(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    front = shared.new_desk("Front", shared.staff.receptionist)
    desks.append(front)
    front.transport._http.headers[protocol.HEADER_PROTOCOL] = "0"
    with pytest.raises(UpgradeRequired):
        front.transport.snapshot_start()
    front.transport._http.headers[protocol.HEADER_PROTOCOL] = str(protocol.PROTOCOL_VERSION)

    credential = front.transport.credential
    assert credential is not None
    shared.server.api(
        "POST", f"/devices/{credential.device_id}/revoke", shared.server.admin_token()
    )
    with pytest.raises(AuthRequired):
        front.transport.snapshot_start()
