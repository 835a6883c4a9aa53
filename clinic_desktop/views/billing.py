"""Billing: finished visits waiting for a bill, the bill itself, payments, refunds, receipts,
and the day-end collection report.

Keys: F5 refresh, Ctrl+Return issue the bill, F9 take cash, F10 record a card payment,
Ctrl+P print the receipt, Ctrl+R refund the selected payment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDate, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from clinic_desktop.services.errors import ClinicError, ValidationError
from clinic_desktop.views import gateway
from clinic_desktop.views.common import (
    BackgroundPoll,
    Column,
    RowsModel,
    attempt,
    configure_table,
    make_action,
    plain_label,
    section_label,
)
from clinic_desktop.views.printing_ui import print_or_save
from clinic_desktop.views.shell import RolePage, ViewContext

if TYPE_CHECKING:
    from clinic_desktop.services.billing import (
        AwaitingVisit,
        BillLine,
        BillView,
        CollectionLine,
        PaymentView,
    )

log = logging.getLogger(__name__)

ONLINE_NOT_SET_UP = (
    "Online payment is not set up on this desk yet (it needs the clinic's server). "
    "Cash and card-terminal payments work as usual."
)
METHOD_NAMES = {"cash": "Cash", "card": "Card terminal", "stripe": "Online (Stripe)"}
STATUS_NAMES = {
    "draft": "Draft (not issued)",
    "issued": "Issued, unpaid",
    "partially_paid": "Partly paid",
    "paid": "Paid",
    "refunded": "Refunded",
    "void": "Cancelled",
}


def _table(model: Any, name: str, stretch: tuple[int, ...] = (0,)) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setAccessibleName(name)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.verticalHeader().setVisible(False)
    configure_table(view, stretch)
    view.setTabKeyNavigation(False)
    return view


class RefundDialog(QDialog):
    """Amount and a reason (required: refunds are reviewed)."""

    def __init__(self, parent: QWidget, payment: PaymentView, currency: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Refund")
        self.setObjectName("refundDialog")
        form = QFormLayout(self)
        form.addRow(
            plain_label(
                f"Refund on {METHOD_NAMES.get(payment.method, payment.method)} payment of "
                f"{gateway.money(payment.amount_minor, currency)}"
            )
        )
        self.amount = QLineEdit(gateway.money(payment.amount_minor, currency, with_code=False))
        self.amount.setAccessibleName("Refund amount")
        self.reason = QLineEdit()
        self.reason.setAccessibleName("Refund reason")
        self.reason.setPlaceholderText("Why the money is given back")
        self.error = plain_label("", "fieldError")
        self.error.setWordWrap(True)
        form.addRow(f"&Amount ({currency})", self.amount)
        form.addRow("&Reason", self.reason)
        form.addRow(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Refund")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class BillingWindow(RolePage):
    role = "billing"

    def __init__(self, ctx: ViewContext) -> None:
        super().__init__(ctx)
        self.setObjectName("billingWindow")
        self.bill: BillView | None = None
        self.last_receipt: Path | None = None
        self.last_change_minor: int | None = None
        self._online_handler: Callable[[BillingWindow, str], object] | None = None
        self._online_unavailable = ""  # why online payment is off right now (e.g. offline)
        # Refunds of Stripe payments go through the server (and Stripe), not the local service.
        self._online_refund_handler: Callable[[BillingWindow, str, int, str], str] | None = None
        self.online_flow: object = None  # the checkout flow, kept alive with the page

        # --- waiting list
        self.awaiting_model: RowsModel[AwaitingVisit] = RowsModel(
            [
                Column("Token", lambda v: v.token_label),
                Column("Patient", lambda v: v.patient_name),
                Column("Doctor", lambda v: v.doctor_name),
                Column("", lambda v: "draft" if v.draft_bill_id else ""),
            ],
            self,
        )
        self.awaiting = _table(self.awaiting_model, "Visits waiting for billing", (1, 2))
        self.awaiting.doubleClicked.connect(lambda _i: self.open_selected())
        self.awaiting.activated.connect(lambda _i: self.open_selected())
        self.open_button = QPushButton("Open bill  (Enter)")
        self.open_button.clicked.connect(self.open_selected)
        left = QWidget()
        l_layout = QVBoxLayout(left)
        l_layout.setContentsMargins(0, 0, 0, 0)
        l_layout.addWidget(section_label("Waiting for billing"))
        l_layout.addWidget(self.awaiting, 1)
        l_layout.addWidget(self.open_button)

        # --- bill
        self.bill_title = plain_label("No bill open. Choose a visit on the left.", "sectionTitle")
        self.bill_title.setWordWrap(True)
        self.lines_model: RowsModel[BillLine] = RowsModel(
            [
                Column("Description", lambda r: r.description),
                Column("Qty", lambda r: r.quantity, align_right=True),
                Column("Unit", lambda r: self._m(r.unit_price_minor), align_right=True),
                Column("Amount", lambda r: self._m(r.amount_minor), align_right=True),
            ],
            self,
        )
        self.lines = _table(self.lines_model, "Bill lines")
        self.price_box = QComboBox()
        self.price_box.setAccessibleName("Service from the price list")
        self.qty = QSpinBox()
        self.qty.setRange(1, 999)
        self.qty.setAccessibleName("Quantity")
        self.add_price_button = QPushButton("Add")
        self.add_price_button.clicked.connect(self.add_price_line)
        self.custom_desc = QLineEdit()
        self.custom_desc.setPlaceholderText("Other item: description")
        self.custom_desc.setAccessibleName("Other item description")
        self.custom_price = QLineEdit()
        self.custom_price.setPlaceholderText("price")
        self.custom_price.setAccessibleName("Other item price")
        self.custom_price.setMaximumWidth(110)
        self.add_custom_button = QPushButton("Add other")
        self.add_custom_button.clicked.connect(self.add_custom_line)
        self.remove_button = QPushButton("Remove line")
        self.remove_button.clicked.connect(self.remove_line)
        self.discount = QLineEdit()
        self.discount.setPlaceholderText("amount, or e.g. 10%")
        self.discount.setAccessibleName("Discount")
        self.discount_button = QPushButton("Apply discount")
        self.discount_button.clicked.connect(self.apply_discount)
        self.totals = plain_label("", "sectionTitle")
        self.totals.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.issue_button = QPushButton("Issue bill  (Ctrl+Enter)")
        self.issue_button.setProperty("primary", True)
        self.issue_button.clicked.connect(self.issue)

        edit_box = QGroupBox("Bill")
        e = QGridLayout(edit_box)
        e.addWidget(self.bill_title, 0, 0, 1, 6)
        e.addWidget(self.lines, 1, 0, 1, 6)
        e.addWidget(QLabel("Service"), 2, 0)
        e.addWidget(self.price_box, 2, 1, 1, 2)
        e.addWidget(self.qty, 2, 3)
        e.addWidget(self.add_price_button, 2, 4)
        e.addWidget(self.remove_button, 2, 5)
        e.addWidget(QLabel("Other"), 3, 0)
        e.addWidget(self.custom_desc, 3, 1, 1, 2)
        e.addWidget(self.custom_price, 3, 3)
        e.addWidget(self.add_custom_button, 3, 4)
        e.addWidget(QLabel("Discount"), 4, 0)
        discount_row = QHBoxLayout()
        discount_row.addWidget(self.discount, 1)
        discount_row.addWidget(self.discount_button)
        e.addLayout(discount_row, 4, 1, 1, 2)
        e.addWidget(self.totals, 4, 3, 1, 3)
        e.addWidget(self.issue_button, 5, 4, 1, 2)

        # --- payment
        self.tendered = QLineEdit()
        self.tendered.setPlaceholderText("cash received")
        self.tendered.setAccessibleName("Cash received")
        self.cash_amount = QLineEdit()
        self.cash_amount.setPlaceholderText("to apply (blank = balance)")
        self.cash_amount.setAccessibleName("Amount to apply")
        self.cash_button = QPushButton("Take cash  (F9)")
        self.cash_button.setProperty("primary", True)
        self.cash_button.clicked.connect(self.take_cash)
        self.card_amount = QLineEdit()
        self.card_amount.setPlaceholderText("amount (blank = balance)")
        self.card_amount.setAccessibleName("Card amount")
        self.card_ref = QLineEdit()
        self.card_ref.setPlaceholderText("terminal slip reference")
        self.card_ref.setAccessibleName("Card slip reference")
        self.card_button = QPushButton("Record card  (F10)")
        self.card_button.clicked.connect(self.take_card)
        self.online_button = QPushButton("Pay online (Stripe)")
        self.online_button.setObjectName("payOnlineButton")
        self.online_button.setEnabled(False)
        self.online_button.setToolTip(ONLINE_NOT_SET_UP)
        self.online_button.clicked.connect(self._pay_online)
        self.change_label = plain_label("", "sectionTitle")
        self.change_label.setAccessibleName("Change due")
        pay_box = QGroupBox("Payment")
        p = QGridLayout(pay_box)
        p.addWidget(QLabel("Cash"), 0, 0)
        p.addWidget(self.tendered, 0, 1)
        p.addWidget(self.cash_amount, 0, 2)
        p.addWidget(self.cash_button, 0, 3)
        p.addWidget(QLabel("Card"), 1, 0)
        p.addWidget(self.card_amount, 1, 1)
        p.addWidget(self.card_ref, 1, 2)
        p.addWidget(self.card_button, 1, 3)
        p.addWidget(self.online_button, 2, 3)
        p.addWidget(self.change_label, 2, 0, 1, 3)

        self.payments_model: RowsModel[PaymentView] = RowsModel(
            [
                Column("When", lambda x: x.received_at.astimezone().strftime("%H:%M")),
                Column(
                    "Method",
                    lambda x: (
                        ("Refund: " if x.amount_minor < 0 else "")
                        + METHOD_NAMES.get(x.method, x.method)
                    ),
                ),
                Column("Reference / reason", lambda x: x.reference or x.reason),
                Column("Amount", lambda x: self._m(x.amount_minor), align_right=True),
            ],
            self,
        )
        self.payments = _table(self.payments_model, "Payments", (2,))
        self.refund_button = QPushButton("Refund...  (Ctrl+R)")
        self.refund_button.clicked.connect(self.refund_selected)
        self.receipt_button = QPushButton("Print receipt  (Ctrl+P)")
        self.receipt_button.clicked.connect(self.print_receipt)
        self.message = plain_label("", "hint")
        self.message.setWordWrap(True)
        pay_list = QGroupBox("Payments on this bill")
        pl = QVBoxLayout(pay_list)
        pl.addWidget(self.payments)
        row = QHBoxLayout()
        row.addWidget(self.refund_button)
        row.addStretch(1)
        row.addWidget(self.receipt_button)
        pl.addLayout(row)

        bill_page = QWidget()
        b = QVBoxLayout(bill_page)
        b.setContentsMargins(0, 0, 0, 0)
        b.addWidget(edit_box, 3)
        b.addWidget(pay_box)
        b.addWidget(pay_list, 2)
        b.addWidget(self.message)

        # --- day-end report
        self.report_day = QDateEdit(QDate.currentDate())
        self.report_day.setCalendarPopup(True)
        self.report_day.setDisplayFormat("yyyy-MM-dd")
        self.report_day.setAccessibleName("Report day")
        self.report_button = QPushButton("Show")
        self.report_button.clicked.connect(self.show_report)
        self.print_report_button = QPushButton("Print report")
        self.print_report_button.clicked.connect(self.print_report)
        self.by_method_model: RowsModel[CollectionLine] = RowsModel(self._report_columns("Method"))
        self.by_user_model: RowsModel[CollectionLine] = RowsModel(self._report_columns("Cashier"))
        self.report_total = plain_label("", "sectionTitle")
        report_page = QWidget()
        r = QVBoxLayout(report_page)
        top = QHBoxLayout()
        top.addWidget(QLabel("Day"))
        top.addWidget(self.report_day)
        top.addWidget(self.report_button)
        top.addStretch(1)
        top.addWidget(self.print_report_button)
        r.addLayout(top)
        r.addWidget(section_label("By payment method"))
        r.addWidget(_table(self.by_method_model, "Collections by method"))
        r.addWidget(section_label("By cashier"))
        r.addWidget(_table(self.by_user_model, "Collections by cashier"))
        r.addWidget(self.report_total)
        self.report = None

        self.tabs = QTabWidget()
        self.tabs.addTab(bill_page, "Bill")
        self.tabs.addTab(report_page, "Day-end report")
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.tabs)
        splitter.setSizes([360, 880])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 6)
        layout.addWidget(splitter)

        self.refresh_action = make_action(self, "&Refresh list", self.refresh, "F5", "sync")
        self.issue_action = make_action(self, "&Issue bill", self.issue, "Ctrl+Return", "complete")
        self.cash_action = make_action(self, "Take &cash", self.take_cash, "F9", "cash")
        self.card_action = make_action(self, "Record c&ard payment", self.take_card, "F10", "card")
        self.receipt_action = make_action(
            self, "&Print receipt", self.print_receipt, "Ctrl+P", "print"
        )
        self.refund_action = make_action(
            self, "Re&fund payment", self.refund_selected, "Ctrl+R", "refund"
        )
        self.report_action = make_action(
            self, "&Day-end report", self.open_report, "Ctrl+D", "report"
        )
        for action in self.actions_for_menu():
            self.addAction(action)
        self.timer = QTimer(self)
        self.timer.setInterval(5000)
        self.awaiting_poll = BackgroundPoll(
            lambda: gateway.bills_awaiting(self.ctx.desk, self.ctx.actor),
            self._show_awaiting,
            self._poll_failed,
            self,
        )
        self.timer.timeout.connect(self.awaiting_poll.request)
        self.ctx.events.visit_completed.connect(lambda _v: self.refresh())
        self._show_bill(None)

    def _poll_failed(self, exc: BaseException) -> None:
        if isinstance(exc, ClinicError):
            self.message.setText(str(exc))
        else:
            log.warning("refresh failed: %s", type(exc).__name__)

    def actions_for_menu(self) -> list[QAction]:
        return [
            self.refresh_action,
            self.issue_action,
            self.cash_action,
            self.card_action,
            self.receipt_action,
            self.refund_action,
            self.report_action,
        ]

    def on_shown(self) -> None:
        self.timer.start()
        self.load_prices()
        self.refresh()

    # ------------------------------------------------------------------ Stripe hook
    def set_online_payment_handler(self, handler: Callable[[BillingWindow, str], object]) -> None:
        """Wire the "Pay online (Stripe)" button: ``handler(window, bill_id)`` runs the
        checkout; afterwards call :meth:`reload_bill`. Until then the button stays disabled."""
        self._online_handler = handler
        self.online_button.setToolTip("Take the payment online with Stripe Checkout")
        self._update_buttons()

    def set_online_payment_available(self, available: bool, reason: str = "") -> None:
        """Turn the online button off while it cannot work (e.g. the server is offline),
        with ``reason`` as its tooltip; cash and card stay available."""
        self._online_unavailable = "" if available else (reason or ONLINE_NOT_SET_UP)
        if self._online_handler is not None:
            self.online_button.setToolTip(
                self._online_unavailable or "Take the payment online with Stripe Checkout"
            )
        self._update_buttons()

    def set_online_refund_handler(
        self, handler: Callable[[BillingWindow, str, int, str], str]
    ) -> None:
        """``handler(window, payment_id, amount_minor, reason)`` refunds a Stripe payment
        through the server and returns the message to show; it raises ``ClinicError``."""
        self._online_refund_handler = handler

    def _pay_online(self) -> None:
        if self._online_handler is not None and self.bill is not None:
            self._online_handler(self, self.bill.id)

    def reload_bill(self) -> None:
        if self.bill is not None:
            self._show_bill(
                attempt(self, gateway.get_bill, self.ctx.desk, self.ctx.actor, self.bill.id)
            )

    # ------------------------------------------------------------------ helpers
    def _currency(self) -> str:
        if self.bill is not None:
            return self.bill.currency
        settings = gateway.clinic_settings(self.ctx.desk)
        return settings.currency if settings else "USD"

    def _m(self, minor: int) -> str:
        return gateway.money(minor, self._currency())

    def _report_columns(self, title: str) -> list[Column[CollectionLine]]:
        return [
            Column(title, lambda c: c.label),
            Column("Payments", lambda c: c.payments, align_right=True),
            Column("Received", lambda c: self._m(c.received_minor), align_right=True),
            Column("Refunded", lambda c: self._m(c.refunded_minor), align_right=True),
            Column("Net", lambda c: self._m(c.net_minor), align_right=True),
        ]

    def _amount(self, text: str, field: str, label: str) -> int:
        return gateway.parse_money(text, self._currency(), field=field, label=label)

    # ------------------------------------------------------------------ lists
    def refresh(self) -> None:
        try:  # runs on a timer: problems go in the message line, never a dialog per tick
            rows = gateway.bills_awaiting(self.ctx.desk, self.ctx.actor)
        except ClinicError as exc:
            self.message.setText(str(exc))
            return
        self._show_awaiting(rows)

    def _show_awaiting(self, rows: list[AwaitingVisit]) -> None:
        if rows != self.awaiting_model.rows():
            self.awaiting_model.set_rows(rows)
            if rows and not self.awaiting.currentIndex().isValid():
                self.awaiting.selectRow(0)

    def load_prices(self) -> None:
        try:
            items = gateway.price_items(self.ctx.desk)
        except ClinicError as exc:
            self.message.setText(str(exc))
            items = []
        self.price_box.clear()
        for item in items:
            self.price_box.addItem(
                f"{item.name}  ·  {gateway.money(item.amount_minor, item.currency)}", item.id
            )

    def open_selected(self) -> BillView | None:
        index = self.awaiting.currentIndex()
        visit = self.awaiting_model.row(index.row()) if index.isValid() else None
        if visit is None:
            self.message.setText("Choose a visit first.")
            return None
        bill = attempt(self, gateway.open_bill_for, self.ctx.desk, self.ctx.actor, visit)
        if bill is not None:
            self._show_bill(
                bill,
                f"{visit.patient_name} ({visit.patient_number}) · "
                f"token {visit.token_label} · {visit.doctor_name}",
            )
            self.tabs.setCurrentIndex(0)
        return bill

    def _show_bill(self, bill: BillView | None, title: str = "") -> None:
        self.bill = bill
        self.last_change_minor = None
        if bill is None:
            self.bill_title.setText("No bill open. Choose a visit on the left.")
            self.lines_model.set_rows([])
            self.payments_model.set_rows([])
            self.totals.clear()
        else:
            if title:
                self._title = title
            number = bill.invoice_number or "draft"
            self.bill_title.setText(
                f"{getattr(self, '_title', '')}\nInvoice {number} · "
                f"{STATUS_NAMES.get(bill.status, bill.status)}"
            )
            self.lines_model.set_rows(bill.lines)
            self.payments_model.set_rows(bill.payments)
            parts = [f"Subtotal {self._m(bill.subtotal_minor)}"]
            if bill.discount_minor:
                parts.append(f"Discount -{self._m(bill.discount_minor)}")
            if bill.tax_minor:
                parts.append(f"Tax {self._m(bill.tax_minor)}")
            parts.append(f"Total {self._m(bill.total_minor)}")
            if bill.status != "draft":
                parts.append(f"Paid {self._m(bill.paid_minor)}")
                parts.append(f"Due {self._m(bill.balance_minor)}")
            self.totals.setText("   ".join(parts))
        self._update_buttons()

    def _update_buttons(self) -> None:
        bill = self.bill
        draft = bill is not None and bill.status == "draft"
        payable = bill is not None and bill.status != "draft" and bill.balance_minor > 0
        for w in (
            self.price_box,
            self.qty,
            self.add_price_button,
            self.custom_desc,
            self.custom_price,
            self.add_custom_button,
            self.remove_button,
            self.discount,
            self.discount_button,
            self.issue_button,
        ):
            w.setEnabled(draft)
        self.issue_action.setEnabled(draft)
        for w in (
            self.tendered,
            self.cash_amount,
            self.cash_button,
            self.card_amount,
            self.card_ref,
            self.card_button,
        ):
            w.setEnabled(payable)
        self.cash_action.setEnabled(payable)
        self.card_action.setEnabled(payable)
        self.online_button.setEnabled(
            payable and self._online_handler is not None and not self._online_unavailable
        )
        issued = bill is not None and bill.status != "draft"
        self.receipt_button.setEnabled(issued)
        self.receipt_action.setEnabled(issued)
        self.refund_button.setEnabled(issued and bool(bill and bill.payments))

    def _apply(self, fn: Callable[..., BillView], *args: object) -> bool:
        try:
            bill = fn(self.ctx.desk, self.ctx.actor, *args)
        except ClinicError as exc:
            self.message.setText(str(exc))
            return False
        self.message.clear()
        self._show_bill(bill)
        return True

    # ------------------------------------------------------------------ editing
    def add_price_line(self) -> None:
        if self.bill is not None and self.price_box.currentData() is not None:
            self._apply(
                gateway.add_price_line, self.bill.id, self.price_box.currentData(), self.qty.value()
            )
            self.qty.setValue(1)

    def add_custom_line(self) -> None:
        if self.bill is None:
            return
        try:
            price = self._amount(self.custom_price.text(), "price", "The price")
        except ValidationError as exc:
            self.message.setText(str(exc))
            return
        if self._apply(gateway.add_custom_line, self.bill.id, self.custom_desc.text(), price):
            self.custom_desc.clear()
            self.custom_price.clear()

    def remove_line(self) -> None:
        index = self.lines.currentIndex()
        line = self.lines_model.row(index.row()) if index.isValid() else None
        if self.bill is not None and line is not None:
            self._apply(gateway.remove_bill_line, line.id)

    def apply_discount(self) -> None:
        if self.bill is None:
            return
        text = self.discount.text().strip()
        try:
            if text.endswith("%"):
                percent = gateway.parse_percent(text[:-1])
                self._apply(gateway.set_discount, self.bill.id, None, percent)
            else:
                amount = self._amount(text or "0", "discount", "The discount")
                self._apply(gateway.set_discount, self.bill.id, amount, None)
        except ValidationError as exc:
            self.message.setText(str(exc))

    def issue(self) -> None:
        if (
            self.bill is not None
            and self.bill.status == "draft"
            and self._apply(gateway.issue_bill, self.bill.id)
        ):
            self.ctx.events.bills_changed.emit()
            self.refresh()
            self.tendered.setFocus()

    # ------------------------------------------------------------------ payments
    def take_cash(self) -> None:
        if self.bill is None:
            return
        try:
            tendered = self._amount(self.tendered.text(), "tendered", "The cash received")
            text = self.cash_amount.text().strip()
            applied = self._amount(text, "amount", "The amount") if text else None
            result = gateway.pay_cash(
                self.ctx.desk, self.ctx.actor, self.bill.id, tendered, applied
            )
        except ClinicError as exc:
            self.message.setText(str(exc))
            return
        self._show_bill(result.bill)
        self.last_change_minor = result.change_minor
        self.change_label.setText(f"Change due: {self._m(result.change_minor)}")
        self.message.setText(
            f"Cash {self._m(result.payment.amount_minor)} taken. "
            + (
                "Bill paid."
                if result.bill.balance_minor == 0
                else f"Still due {self._m(result.bill.balance_minor)}."
            )
        )
        self.tendered.clear()
        self.cash_amount.clear()
        self.ctx.events.bills_changed.emit()

    def take_card(self) -> None:
        if self.bill is None:
            return
        try:
            text = self.card_amount.text().strip()
            amount = self._amount(text, "amount", "The amount") if text else self.bill.balance_minor
            result = gateway.pay_card(
                self.ctx.desk, self.ctx.actor, self.bill.id, amount, self.card_ref.text()
            )
        except ClinicError as exc:
            self.message.setText(str(exc))
            return
        self._show_bill(result.bill)
        self.change_label.clear()
        self.message.setText(f"Card payment {self._m(result.payment.amount_minor)} recorded.")
        self.card_amount.clear()
        self.card_ref.clear()
        self.ctx.events.bills_changed.emit()

    def refund_selected(self) -> None:
        if self.bill is None:
            return
        index = self.payments.currentIndex()
        payment = self.payments_model.row(index.row()) if index.isValid() else None
        if payment is None or payment.amount_minor <= 0:
            self.message.setText("Select the payment to refund in the payments list.")
            return
        dialog = RefundDialog(self, payment, self.bill.currency)
        while dialog.exec() == QDialog.DialogCode.Accepted:
            try:
                amount = self._amount(dialog.amount.text(), "amount", "The refund")
                if payment.method == "stripe" and self._online_refund_handler is not None:
                    done = self._online_refund_handler(
                        self, payment.id, amount, dialog.reason.text()
                    )
                    self.reload_bill()
                    self.message.setText(done)
                    self.ctx.events.bills_changed.emit()
                    return
                result = gateway.refund(
                    self.ctx.desk, self.ctx.actor, payment.id, amount, dialog.reason.text()
                )
            except ClinicError as exc:
                dialog.error.setText(str(exc))
                continue
            self._show_bill(result.bill)
            self.message.setText(f"Refunded {self._m(-result.payment.amount_minor)}.")
            self.ctx.events.bills_changed.emit()
            return

    # ------------------------------------------------------------------ documents
    def print_receipt(self) -> Path | None:
        if self.bill is None or self.bill.status == "draft":
            return None
        from clinic_desktop.printing.documents import A5, receipt_html

        doc = attempt(self, gateway.receipt_document, self.ctx.desk, self.ctx.actor, self.bill.id)
        if doc is None:
            return None
        pdf = print_or_save(
            self, receipt_html(doc), A5, f"receipt-{doc.invoice_number}", self.ctx.app.pdf_dir
        )
        self.last_receipt = pdf
        if pdf is not None:
            self.message.setText(f"Receipt saved to {pdf}.")
        return pdf

    def open_report(self) -> None:
        self.tabs.setCurrentIndex(1)
        self.show_report()

    def show_report(self) -> None:
        day: date = self.report_day.date().toPython()  # type: ignore[assignment]
        summary = attempt(self, gateway.day_end, self.ctx.desk, self.ctx.actor, day)
        if summary is None:
            return
        self.report = summary
        self.by_method_model.set_rows(summary.by_method)
        self.by_user_model.set_rows(summary.by_user)
        self.report_total.setText(
            f"Received {self._m(summary.received_minor)} · refunded "
            f"{self._m(summary.refunded_minor)} · net {self._m(summary.net_minor)} · "
            f"{summary.bills_issued} bill(s) issued"
        )

    def print_report(self) -> Path | None:
        if self.report is None:
            self.show_report()
        if self.report is None:
            return None
        from clinic_desktop.printing.documents import A4, day_end_html

        html = day_end_html(gateway.day_end_document(self.ctx.desk, self.report))
        return print_or_save(
            self, html, A4, f"day-end-{self.report.first_day.isoformat()}", self.ctx.app.pdf_dir
        )
