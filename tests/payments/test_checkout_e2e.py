"""End to end: the billing window, the real QtWebEngine dialog, the stand-in's Checkout page,
``clinic-server`` in its own process, and a second desk that learns of the payment by sync.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from clinic_desktop.models import Bill, Payment
from clinic_desktop.payments.checkout_dialog import (
    CheckoutDialog,
    FlowOutcome,
    OnlinePaymentFlow,
    attach_if_connected,
    install_online_payments,
)
from clinic_desktop.payments.online_payments import OnlinePaymentsClient
from clinic_desktop.services import billing
from clinic_desktop.sync.worker import SyncWorker
from tests.payments.desks import (
    DeskHandle,
    StripeClinic,
    issued_bill_for_a_finished_visit,
    start_clinic,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def stripe_clinic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeClinic]:
    from clinic_desktop.services import passwords

    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)  # sign-ins in tests need not be slow
    clinic = start_clinic(tmp_path)
    try:
        yield clinic
    finally:
        clinic.close()


def billing_window(
    qtbot: QtBot,
    handle: DeskHandle,
    bill_id: str,
    client: OnlinePaymentsClient | None = None,
    worker: SyncWorker | None = None,
):
    """The real billing window on the desk, with the bill open and online payment wired:
    through the app's hook (sync transport + worker) unless a bare client is given."""
    from clinic_desktop.views.billing import BillingWindow
    from clinic_desktop.views.shell import DeskEvents, ViewContext

    ctx = ViewContext(
        app=SimpleNamespace(desk=handle.desk, store=handle.store),  # type: ignore[arg-type]
        actor=handle.actors["casey"],
        events=DeskEvents(),
    )
    window = BillingWindow(ctx)
    qtbot.addWidget(window)
    if client is None:  # what the shell does for a desk whose sync bridge has a server
        sync = SimpleNamespace(connected=True, transport=handle.transport, worker=worker)
        flow = attach_if_connected(window, SimpleNamespace(sync=sync))
    else:
        # extra_origins from CLINIC_STRIPE_STANDIN_ORIGIN, as a demo desk would set it
        flow = install_online_payments(window, client, request_pull=handle.sync)
    window._show_bill(billing.get_bill(handle.desk, ctx.actor, bill_id))
    window.show()
    return window, flow


def open_the_page(qtbot: QtBot, window, flow: OnlinePaymentFlow) -> CheckoutDialog:
    """Press the window's button and wait until Stripe's page has loaded in the dialog."""
    with qtbot.waitSignal(flow.dialog_opened, timeout=30000) as opened:
        qtbot.mouseClick(window.online_button, _left())
    dialog: CheckoutDialog = opened.args[0]
    qtbot.waitUntil(lambda: dialog.page_loaded, timeout=30000)
    return dialog


def _left():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


def fill_refund_dialog(window, amount: str, reason: str) -> None:
    """What the cashier types into the refund dialog (it is modal, so this runs from a timer)."""
    from PySide6.QtWidgets import QDialog

    dialog = window.findChild(QDialog, "refundDialog")
    dialog.amount.setText(amount)
    dialog.reason.setText(reason)
    dialog.accept()


def stripe_payments(handle: DeskHandle, bill_id: str) -> list[Payment]:
    """The bill's payment rows in this desk's own store (detached, fully loaded)."""
    with handle.desk.reading() as session:
        rows = list(session.scalars(select(Payment).where(Payment.bill_id == bill_id)))
        session.expunge_all()
        return rows


def bill_status(handle: DeskHandle, bill_id: str) -> str:
    with handle.desk.reading() as session:
        bill = session.get(Bill, bill_id)
        assert bill is not None
        return bill.status


def test_pay_online_in_the_billing_window_turns_the_bill_paid_on_every_desk(
    qtbot: QtBot,
    stripe_clinic: StripeClinic,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
):
    monkeypatch.setenv("CLINIC_STRIPE_STANDIN_ORIGIN", stripe_clinic.standin.base_url)
    billing_desk = stripe_clinic.add_desk("B", "Billing")
    bill_id = issued_bill_for_a_finished_visit(billing_desk)
    reception = stripe_clinic.add_desk("R", "Reception")
    worker = SyncWorker(billing_desk.desk, billing_desk.transport, long_poll=2.0, min_backoff=0.1)
    worker.start()
    request.addfinalizer(worker.stop)
    qtbot.waitUntil(lambda: worker.status.online, timeout=10000)
    window, flow = billing_window(qtbot, billing_desk, bill_id, worker=worker)
    qtbot.waitUntil(window.online_button.isEnabled, timeout=5000)

    dialog = open_the_page(qtbot, window, flow)
    # The stand-in's page really runs in the web view, in an off-the-record profile.
    assert dialog.profile.isOffTheRecord()
    assert (
        dialog.page.url().toString() == next(iter(stripe_clinic.standin.sessions.values()))["url"]
    )
    with qtbot.waitSignal(flow.finished, timeout=60000) as finished:
        dialog.page.runJavaScript("document.getElementById('pay').click();")
    outcome: FlowOutcome = finished.args[0]

    assert outcome.status == "paid", outcome.message
    assert dialog.outcome == "success"
    assert flow.dialog is None  # closed (and deleted)
    assert "received" in outcome.message
    [session] = stripe_clinic.standin.sessions.values()
    assert session["status"] == "complete"
    # The billing desk shows the bill paid: the server's payment row arrived by the sync
    # worker's long poll, and the open bill reloaded itself.
    qtbot.waitUntil(lambda: window.bill is not None and window.bill.status == "paid", timeout=10000)
    [payment] = stripe_payments(billing_desk, bill_id)
    assert (payment.method, payment.amount_minor) == ("stripe", 4500)
    assert payment.id == outcome.payment_id
    # Another desk gets the same single row after its next sync.
    reception.sync()
    assert [p.id for p in stripe_payments(reception, bill_id)] == [payment.id]
    assert bill_status(reception, bill_id) == "paid"
    # The webhook arrived as well and changed nothing: still exactly one payment.
    qtbot.waitUntil(lambda: len(stripe_clinic.standin.deliveries) >= 1, timeout=10000)
    assert stripe_clinic.standin.deliveries[0].status == 200
    assert len(stripe_payments(billing_desk, bill_id)) == 1

    # A partial refund from the same window goes through the server to Stripe.
    window.payments.selectRow(0)
    QTimer.singleShot(0, lambda: fill_refund_dialog(window, "10.00", "Charged twice for ECG"))
    window.refund_selected()

    assert window.message.text() == "Refunded USD 10.00 to the patient's card through Stripe."
    [stripe_refund] = stripe_clinic.standin.refunds.values()
    assert stripe_refund["amount"] == 1000
    assert "ECG" not in json.dumps(stripe_refund)
    qtbot.waitUntil(lambda: len(stripe_payments(billing_desk, bill_id)) == 2, timeout=10000)
    qtbot.waitUntil(lambda: window.bill.status == "partially_paid", timeout=10000)
    worker.stop()
    reception.sync()
    amounts = sorted(p.amount_minor for p in stripe_payments(reception, bill_id))
    assert amounts == [-1000, 4500]


def test_server_unreachable_when_the_page_returns_leaves_the_bill_payable(
    qtbot: QtBot, stripe_clinic: StripeClinic, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CLINIC_STRIPE_STANDIN_ORIGIN", stripe_clinic.standin.base_url)
    billing_desk = stripe_clinic.add_desk("B", "Billing")
    bill_id = issued_bill_for_a_finished_visit(billing_desk)
    client = OnlinePaymentsClient(
        stripe_clinic.server.url, billing_desk.auth_headers, timeout=3, allow_insecure=True
    )
    window, flow = billing_window(qtbot, billing_desk, bill_id, client)
    dialog = open_the_page(qtbot, window, flow)

    stripe_clinic.server.stop()  # the clinic server goes down while the patient types
    with qtbot.waitSignal(flow.finished, timeout=60000) as finished:
        dialog.page.runJavaScript("document.getElementById('pay').click();")
    outcome: FlowOutcome = finished.args[0]

    assert outcome.status == "unavailable"
    assert "cannot confirm" in outcome.message
    assert "stays open" in outcome.message
    assert "Traceback" not in outcome.message
    assert flow.message_box is not None
    assert flow.message_box.text() == outcome.message
    assert stripe_payments(billing_desk, bill_id) == []
    window.reload_bill()
    assert window.bill.status == "issued"
    assert window.online_button.isEnabled()  # payable again (cash and card too)
    assert window.cash_button.isEnabled()


def test_cancel_on_the_page_closes_the_dialog_and_the_bill_stays_open(
    qtbot: QtBot, stripe_clinic: StripeClinic, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CLINIC_STRIPE_STANDIN_ORIGIN", stripe_clinic.standin.base_url)
    billing_desk = stripe_clinic.add_desk("B", "Billing")
    bill_id = issued_bill_for_a_finished_visit(billing_desk)
    client = OnlinePaymentsClient(
        stripe_clinic.server.url, billing_desk.auth_headers, allow_insecure=True
    )
    window, flow = billing_window(qtbot, billing_desk, bill_id, client)
    dialog = open_the_page(qtbot, window, flow)

    with qtbot.waitSignal(flow.finished, timeout=60000) as finished:
        dialog.page.runJavaScript("document.getElementById('cancel').click();")
    outcome: FlowOutcome = finished.args[0]

    assert dialog.outcome == "cancel"
    assert outcome.status == "cancelled"
    assert "still open" in outcome.message
    [session] = stripe_clinic.standin.sessions.values()
    assert session["status"] == "expired"  # the link can no longer be paid by mistake
    assert stripe_payments(billing_desk, bill_id) == []
    assert window.online_button.isEnabled()
