"""The whole application, as a cashier uses it: sign in on an enrolled billing desk, bill a
finished visit, press "Pay online (Stripe)", pay on the page; the bill turns paid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from clinic_desktop.models import Payment
from clinic_desktop.payments.checkout_dialog import CheckoutDialog
from clinic_desktop.store.open import desk_for, open_store
from tests.gui.conftest import sign_in
from tests.payments.desks import PASSWORD, StripeClinic, finished_visit, start_clinic

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


def checkout_dialog() -> CheckoutDialog | None:
    found = [w for w in QApplication.allWidgets() if isinstance(w, CheckoutDialog)]
    return found[0] if found and found[0].isVisible() else None


def messages() -> list[str]:
    return [w.text() for w in QApplication.allWidgets() if isinstance(w, QMessageBox)]


def test_a_cashier_pays_a_bill_online_in_the_application(
    qtbot: QtBot, stripe_clinic: StripeClinic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    from clinic_desktop.views.application import ClinicApp

    monkeypatch.setenv("CLINIC_STRIPE_STANDIN_ORIGIN", stripe_clinic.standin.base_url)
    desk = stripe_clinic.add_desk("B", "Billing")
    finished_visit(desk)
    desk.sign_in("casey")  # the cashier has signed in on this desk before
    data_dir = desk.store.data_dir
    desk.close()
    stripe_clinic.desks.remove(desk)

    qapp = QApplication.instance()
    assert isinstance(qapp, QApplication)
    controller = ClinicApp(data_dir, qapp)
    controller.allow_insecure_server = True  # the test server speaks http on 127.0.0.1
    controller.pdf_dir = tmp_path / "pdf"
    controller.start(open_in_background=False)
    qtbot.addWidget(controller.sign_in)
    try:
        qtbot.waitUntil(lambda: controller.sign_in.sign_in_button.isEnabled(), timeout=20000)
        sign_in(qtbot, controller, "casey", PASSWORD)
        qtbot.waitUntil(lambda: controller.shell is not None, timeout=20000)
        shell = controller.shell
        page = shell.switch_role("billing")
        qtbot.waitUntil(lambda: page.awaiting_model.rowCount() == 1, timeout=10000)
        page.awaiting.selectRow(0)
        page.open_selected()
        page.issue()
        assert page.bill is not None
        assert page.bill.status == "issued"
        bill_id = page.bill.id
        worker = controller.sync.worker
        qtbot.waitUntil(lambda: worker.status.online, timeout=20000)
        # Straight after issuing, as a cashier would: the flow waits for the push itself.
        assert page.online_button.isEnabled()

        qtbot.mouseClick(page.online_button, _left())
        qtbot.waitUntil(lambda: checkout_dialog() is not None or bool(messages()), timeout=30000)
        assert messages() == []
        dialog = checkout_dialog()
        qtbot.waitUntil(lambda: dialog.page_loaded, timeout=30000)
        dialog.page.runJavaScript("document.getElementById('pay').click();")

        # The payment row comes back from the server through the app's own sync worker.
        qtbot.waitUntil(lambda: page.bill.status == "paid", timeout=30000)
        qtbot.waitUntil(lambda: bool(messages()), timeout=10000)
        assert any("Payment received online" in text for text in messages())
        assert not page.online_button.isEnabled()  # nothing more is due
    finally:
        if controller.shell is not None:
            controller.shell.idle.stop()
            controller.shell.close()
        controller.sync.stop()
        if controller.store is not None:
            controller.store.close()

    store = open_store(data_dir)
    try:
        opened = desk_for(store)
        assert opened is not None
        with opened.reading() as session:
            rows = list(session.scalars(select(Payment).where(Payment.bill_id == bill_id)))
            assert [(p.method, p.amount_minor) for p in rows] == [("stripe", 4500)]
    finally:
        store.close()


def _left():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton
