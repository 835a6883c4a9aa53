"""The pieces on their own: the web view's allow-list, the Checkout dialog against the
stand-in (no clinic server), the stand-in's Stripe compatibility, and the offline button.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import requests
import stripe
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from clinic_desktop.payments import checkout_dialog
from clinic_desktop.payments.checkout_dialog import OFFLINE_REASON, CheckoutDialog
from clinic_desktop.payments.navigation import NavigationPolicy, Verdict
from clinic_desktop.payments.online_payments import CheckoutStart
from tools.stripe_standin import StripeStandin, decode_form

SUCCESS = "https://clinic.example.org/api/v1/payments/stripe/return/success"
CANCEL = "https://clinic.example.org/api/v1/payments/stripe/return/cancel"


@pytest.fixture
def standin() -> Iterator[StripeStandin]:
    server = StripeStandin(auto_deliver=False, webhook_secret="whsec_unit").start()
    yield server
    server.stop()


def stripe_client(standin: StripeStandin) -> stripe.StripeClient:
    stripe.enable_telemetry = False
    return stripe.StripeClient(
        "sk_test_unit", base_addresses={"api": standin.base_url}, max_network_retries=0
    )


def session_params(**extra: object) -> dict:
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 2500,
                    "product_data": {"name": "Clinic services - invoice INV-B-000007"},
                },
            }
        ],
        "success_url": SUCCESS + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": CANCEL + "?attempt=a",
        "client_reference_id": "bill-7",
        "metadata": {"bill_id": "bill-7"},
        "payment_intent_data": {"metadata": {"bill_id": "bill-7"}},
        "expires_at": int(time.time()) + 40 * 60,
        **extra,
    }


# --- the allow-list -----------------------------------------------------------------------


POLICY = NavigationPolicy(SUCCESS, CANCEL, frozenset({"http://127.0.0.1:12111"}))


@pytest.mark.parametrize(
    ("url", "main", "verdict"),
    [
        ("https://checkout.stripe.com/c/pay/cs_test_1", True, Verdict.ALLOW),
        ("https://js.stripe.com/v3/", True, Verdict.ALLOW),
        ("https://m.stripe.network/inner.html", True, Verdict.ALLOW),
        ("http://checkout.stripe.com/c/pay/cs_test_1", True, Verdict.BLOCK),  # no plain http
        ("https://stripe.com.evil.example/c/pay", True, Verdict.BLOCK),
        ("https://evilstripe.com/", True, Verdict.BLOCK),
        ("https://example.org/", True, Verdict.BLOCK),
        ("http://127.0.0.1:12111/c/pay/cs_test_1", True, Verdict.ALLOW),  # configured stand-in
        ("http://127.0.0.1:9999/c/pay/cs_test_1", True, Verdict.BLOCK),  # another local port
        (SUCCESS + "?session_id=cs_test_1", True, Verdict.SUCCESS),
        (CANCEL + "?attempt=a", True, Verdict.CANCEL),
        ("https://acs.issuer-bank.example/3ds/challenge", False, Verdict.ALLOW),  # 3-D Secure
        ("http://acs.issuer-bank.example/3ds/challenge", False, Verdict.BLOCK),
    ],
)
def test_main_frame_only_goes_to_stripe_and_frames_may_show_3ds(url: str, main: bool, verdict):
    assert POLICY.navigation(url, main_frame=main) is verdict


def test_subresources_need_https_unless_from_the_stand_in():
    assert POLICY.request("https://q.stripe.com/track", main_frame=False) is Verdict.ALLOW
    assert POLICY.request("http://tracker.example/pixel.gif", main_frame=False) is Verdict.BLOCK
    assert POLICY.request("http://127.0.0.1:12111/x.js", main_frame=False) is Verdict.ALLOW
    # The success page itself is never fetched.
    assert POLICY.request(SUCCESS, main_frame=True) is Verdict.BLOCK


def test_without_a_configured_stand_in_only_stripe_is_allowed():
    production = NavigationPolicy(SUCCESS, CANCEL)
    assert production.navigation("http://127.0.0.1:12111/c/pay/x", main_frame=True) is (
        Verdict.BLOCK
    )


# --- the stand-in speaks Stripe ---------------------------------------------------------


def test_standin_webhook_signatures_verify_with_the_official_library(standin: StripeStandin):
    received: list[tuple[bytes, str]] = []

    class Catcher:
        def __call__(self, body: bytes, header: str) -> None:
            received.append((body, header))

    catcher = Catcher()
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            catcher(body, self.headers["Stripe-Signature"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        standin.webhook_url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
        created = stripe_client(standin).v1.checkout.sessions.create(session_params())
        standin.pay(created.id)
        [event_id] = standin.pending_events
        assert standin.deliver(event_id) == 200
    finally:
        hook.shutdown()
    [(body, header)] = received
    event = stripe.Webhook.construct_event(body.decode(), header, "whsec_unit")
    assert event.type == "checkout.session.completed"
    assert event.data.object.id == created.id
    assert event.data.object.payment_status == "paid"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), header, "whsec_other")


def test_standin_idempotency_replays_and_refuses_other_parameters(standin: StripeStandin):
    client = stripe_client(standin)
    first = client.v1.checkout.sessions.create(session_params(), {"idempotency_key": "k-1"})
    again = client.v1.checkout.sessions.create(session_params(), {"idempotency_key": "k-1"})
    assert again.id == first.id
    assert len(standin.sessions) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            session_params(client_reference_id="other"), {"idempotency_key": "k-1"}
        )


def test_standin_enforces_stripes_expiry_window_and_api_keys(standin: StripeStandin):
    client = stripe_client(standin)
    with pytest.raises(stripe.InvalidRequestError, match="30 minutes"):
        client.v1.checkout.sessions.create(session_params(expires_at=int(time.time()) + 60))
    bad = stripe.StripeClient("sk_live_x", base_addresses={"api": standin.base_url})
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.checkout.sessions.retrieve("cs_test_missing")


def test_standin_decodes_stripes_nested_form_encoding():
    decoded = decode_form(
        "line_items[0][price_data][unit_amount]=5&line_items[1][quantity]=2&metadata[bill_id]=b"
    )
    assert decoded == {
        "line_items": [{"price_data": {"unit_amount": "5"}}, {"quantity": "2"}],
        "metadata": {"bill_id": "b"},
    }


def test_standin_checkout_page_has_pay_and_cancel(standin: StripeStandin):
    created = stripe_client(standin).v1.checkout.sessions.create(session_params())
    page = requests.get(created.url, timeout=10)
    assert 'id="pay"' in page.text or "id='pay'" in page.text
    assert "id='cancel'" in page.text
    cancel = requests.get(created.url + "/cancel", allow_redirects=False, timeout=10)
    assert cancel.status_code == 303
    assert cancel.headers["Location"] == CANCEL + "?attempt=a"
    paid = requests.post(created.url + "/complete", allow_redirects=False, timeout=10)
    assert paid.headers["Location"] == f"{SUCCESS}?session_id={created.id}"


# --- the dialog against the stand-in ----------------------------------------------------------


def open_dialog(qtbot: QtBot, standin: StripeStandin, **overrides: object) -> CheckoutDialog:
    created = stripe_client(standin).v1.checkout.sessions.create(session_params())
    fields = {
        "session_id": created.id,
        "url": created.url,
        "expires_at": created.expires_at,
        "bill_id": "bill-7",
        "attempt_id": "a",
        "amount_minor": 2500,
        "currency": "USD",
        "success_url_prefix": SUCCESS,
        "cancel_url_prefix": CANCEL,
        **overrides,
    }
    dialog = CheckoutDialog(
        CheckoutStart(**fields),  # type: ignore[arg-type]
        extra_origins=frozenset({standin.base_url}),
    )
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # as the flow opens it
    qtbot.addWidget(dialog)
    dialog.open()
    return dialog


def test_the_page_cannot_navigate_away_from_stripe(qtbot: QtBot, standin: StripeStandin):
    dialog = open_dialog(qtbot, standin)
    qtbot.waitUntil(lambda: dialog.page_loaded, timeout=30000)

    dialog.page.runJavaScript("window.location.href = 'https://example.org/phish';")
    qtbot.waitUntil(lambda: "https://example.org" in dialog.page.refused, timeout=10000)

    assert dialog.outcome is None
    assert dialog.page.url().toString().startswith(standin.base_url)
    with qtbot.waitSignal(dialog.outcome_ready, timeout=10000) as done:
        dialog.page.runJavaScript("document.getElementById('cancel').click();")
    assert done.args == ["cancel"]


def test_a_checkout_url_that_is_not_stripes_is_never_loaded(qtbot: QtBot, standin: StripeStandin):
    created_url = "https://stripe-checkout.example.net/c/pay/cs_test_1"
    dialog = open_dialog(qtbot, standin, url=created_url)
    qtbot.waitUntil(lambda: dialog.outcome == "blocked", timeout=5000)
    assert not dialog.page_loaded


def test_pop_ups_open_in_the_system_browser(
    qtbot: QtBot, standin: StripeStandin, monkeypatch: pytest.MonkeyPatch
):
    opened: list[str] = []
    monkeypatch.setattr(
        checkout_dialog.QDesktopServices, "openUrl", lambda url: opened.append(url.toString())
    )
    dialog = open_dialog(qtbot, standin)
    qtbot.waitUntil(lambda: dialog.page_loaded, timeout=30000)

    dialog.page.runJavaScript("window.open('https://stripe.com/legal/end-users', '_blank');")
    qtbot.waitUntil(lambda: bool(opened), timeout=10000)

    assert opened == ["https://stripe.com/legal/end-users"]
    assert dialog.outcome is None


def test_the_dialog_gives_up_when_the_session_expires(qtbot: QtBot, standin: StripeStandin):
    dialog = open_dialog(qtbot, standin, expires_at=int(time.time()) + 1)
    qtbot.waitUntil(lambda: dialog.outcome == "expired", timeout=5000)


# --- offline: the button is off, with the reason ------------------------------------------------


def test_offline_turns_the_online_button_off_with_the_reason(qtbot: QtBot, bare_desk):
    from clinic_desktop.services.context import Actor
    from clinic_desktop.views.billing import BillingWindow
    from clinic_desktop.views.shell import DeskEvents, ViewContext

    actor = Actor("u", "casey", "Casey Cashier", frozenset({"billing"}))
    app = SimpleNamespace(desk=bare_desk, store=None)
    ctx = ViewContext(app=app, actor=actor, events=DeskEvents())  # type: ignore[arg-type]
    window = BillingWindow(ctx)
    qtbot.addWidget(window)
    listeners: list = []
    checkout_dialog.install_online_payments(
        window,
        client=None,  # type: ignore[arg-type]  # never called: the button stays off
        on_status=listeners.append,
        online=False,
    )
    payable = SimpleNamespace(status="issued", balance_minor=2500, payments=[])
    window.bill = payable  # type: ignore[assignment]
    window._update_buttons()

    assert not window.online_button.isEnabled()
    assert window.online_button.toolTip() == OFFLINE_REASON
    assert window.cash_button.isEnabled()

    listeners[0](SimpleNamespace(online=True))  # the sync worker reports the link is back
    qtbot.waitUntil(window.online_button.isEnabled, timeout=2000)
    listeners[0](SimpleNamespace(online=False))
    qtbot.waitUntil(lambda: not window.online_button.isEnabled(), timeout=2000)


def test_a_standalone_desk_keeps_the_online_button_off(qtbot: QtBot, bare_desk):
    from clinic_desktop.services.context import Actor
    from clinic_desktop.views.billing import ONLINE_NOT_SET_UP, BillingWindow
    from clinic_desktop.views.shell import DeskEvents, ViewContext

    actor = Actor("u", "casey", "Casey Cashier", frozenset({"billing"}))
    app = SimpleNamespace(desk=bare_desk, store=None, sync=SimpleNamespace(connected=False))
    window = BillingWindow(ViewContext(app=app, actor=actor, events=DeskEvents()))  # type: ignore[arg-type]
    qtbot.addWidget(window)

    assert checkout_dialog.attach_if_connected(window, app) is None
    window.bill = SimpleNamespace(status="issued", balance_minor=2500, payments=[])  # type: ignore[assignment]
    window._update_buttons()
    assert not window.online_button.isEnabled()
    assert window.online_button.toolTip() == ONLINE_NOT_SET_UP


def test_pay_online_waits_until_the_bill_has_reached_the_server(bare_desk):
    from clinic_desktop.models import OutboxEntry
    from clinic_desktop.payments.online_payments import OnlinePaymentRefused, ensure_pushed

    with bare_desk.transaction(None) as session:
        session.add(
            OutboxEntry(
                entity="bill", row_id="bill-9", op="update", fields={}, base_version=1, hlc="x"
            )
        )
    pokes: list[int] = []

    with pytest.raises(OnlinePaymentRefused, match="not reached the clinic server yet"):
        ensure_pushed(bare_desk, "bill-9", poke=lambda: pokes.append(1), timeout=0.3)
    assert pokes  # it asked the sync worker to push now

    with bare_desk.transaction(None) as session:
        session.query(OutboxEntry).update({"state": "done"})
    ensure_pushed(bare_desk, "bill-9", timeout=0.3)  # returns: nothing left to send
