"""Printable documents: token slip, prescription, receipt and day-end report.

Each document is a small dataclass filled by a window from service results, rendered to HTML
(every value escaped: a patient called ``<b>Bob</b>`` prints exactly that), then laid out by
``QTextDocument`` onto a PDF (``QPdfWriter``) or a printer (``QPrinter``). Qt's own layout
engine means no extra dependency and the same output on screen, paper and PDF.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from html import escape
from pathlib import Path

from PySide6.QtCore import QMarginsF, QSizeF
from PySide6.QtGui import QPagedPaintDevice, QPageLayout, QPageSize, QPdfWriter, QTextDocument


def _e(value: object) -> str:
    """Escape for HTML, keeping line breaks (addresses and advice span lines)."""
    return escape("" if value is None else str(value)).replace("\n", "<br>")


def _money(amount_minor: int, currency: str) -> str:
    from clinic_desktop.services.money import format_amount  # the currency's own decimals

    return format_amount(amount_minor, currency)


@dataclass(frozen=True)
class ClinicHeader:
    """What heads every document: the clinic's name, address and phone."""

    name: str
    address: str = ""
    phone: str = ""


@dataclass(frozen=True)
class TokenSlip:
    clinic: ClinicHeader
    token_label: str
    doctor_name: str
    patient_name: str
    patient_number: str
    issued_at: datetime
    waiting_ahead: int | None = None


@dataclass(frozen=True)
class PrescriptionLine:
    medicine: str
    strength: str = ""
    form: str = ""
    dose: str = ""
    frequency: str = ""
    duration: str = ""
    route: str = ""
    quantity: str = ""
    instructions: str = ""


@dataclass(frozen=True)
class PrescriptionDoc:
    clinic: ClinicHeader
    patient_name: str
    patient_number: str
    age_sex: str
    doctor_name: str
    issued_on: date
    items: Sequence[PrescriptionLine]
    allergies: str = ""
    complaint: str = ""
    diagnoses: Sequence[str] = ()
    advice: str = ""
    follow_up: date | None = None
    revision: int = 1
    signed_at: datetime | None = None


@dataclass(frozen=True)
class ReceiptLine:
    description: str
    quantity: int
    unit_minor: int
    amount_minor: int


@dataclass(frozen=True)
class ReceiptPayment:
    method: str
    amount_minor: int
    received_at: datetime
    reference: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ReceiptDoc:
    clinic: ClinicHeader
    invoice_number: str
    patient_name: str
    patient_number: str
    currency: str
    lines: Sequence[ReceiptLine]
    subtotal_minor: int
    discount_minor: int
    tax_minor: int
    total_minor: int
    payments: Sequence[ReceiptPayment] = ()
    cashier: str = ""
    issued_at: datetime | None = None
    title: str = "Receipt"
    doctor_name: str = ""
    cancels_invoice: str = ""
    paid: int | None = None  # net paid as the service computed it (refunds included)
    balance: int | None = None

    @property
    def paid_minor(self) -> int:
        return self.paid if self.paid is not None else sum(p.amount_minor for p in self.payments)

    @property
    def balance_minor(self) -> int:
        return self.balance if self.balance is not None else self.total_minor - self.paid_minor


@dataclass(frozen=True)
class ReportRow:
    label: str
    count: int
    received_minor: int
    refunded_minor: int

    @property
    def net_minor(self) -> int:
        return self.received_minor - self.refunded_minor


@dataclass(frozen=True)
class DayEndReport:
    clinic: ClinicHeader
    day: date
    currency: str
    by_method: Sequence[ReportRow]
    by_user: Sequence[ReportRow]
    received_minor: int
    refunded_minor: int
    net_minor: int
    bills_issued: int = 0
    prepared_by: str = ""
    notes: Sequence[str] = field(default_factory=tuple)


# ---------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: 'DejaVu Sans', 'Segoe UI', Arial, sans-serif; font-size: 10pt; color: #111; }
h1 { font-size: 15pt; margin: 0; color: #1d4e66; }
h2 { font-size: 12pt; margin: 10px 0 4px 0; color: #1d4e66; }
.small { font-size: 8.5pt; color: #444; }
.warn { color: #a01010; font-weight: bold; }
table.grid { border-collapse: collapse; width: 100%; }
table.grid th { background: #e6eef3; text-align: left; padding: 3px; }
table.grid td { padding: 3px; border-bottom: 1px solid #ccc; }
td.num, th.num { text-align: right; }
"""


def _head(clinic: ClinicHeader) -> str:
    contact = " · ".join(x for x in (clinic.address.replace("\n", ", "), clinic.phone) if x)
    return (
        f"<h1>{_e(clinic.name)}</h1>"
        + (f"<div class='small'>{_e(contact)}</div>" if contact else "")
        + "<hr>"
    )


def _page(body: str) -> str:
    return f"<html><head><style>{_CSS}</style></head><body>{body}</body></html>"


def token_slip_html(slip: TokenSlip) -> str:
    ahead = (
        f"<p class='small'>Patients ahead of you: {slip.waiting_ahead}</p>"
        if slip.waiting_ahead is not None
        else ""
    )
    body = (
        f"<div align='center'><b>{_e(slip.clinic.name)}</b><br>"
        "<span class='small'>Your token</span>"
        f"<p style='font-size:28pt; font-weight:bold; margin:4px'>{_e(slip.token_label)}</p>"
        f"<p>{_e(slip.doctor_name)}</p>"
        f"<p class='small'>{_e(slip.patient_name)} · {_e(slip.patient_number)}</p>"
        f"{ahead}"
        f"<p class='small'>{_e(slip.issued_at.strftime('%Y-%m-%d %H:%M'))}</p>"
        "<p class='small'>Please wait until your token is shown on the screen.</p></div>"
    )
    return _page(body)


def prescription_html(doc: PrescriptionDoc) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{i}</td>"
        f"<td><b>{_e(item.medicine)}</b> {_e(item.strength)} {_e(item.form)}"
        + (f"<br><span class='small'>{_e(item.instructions)}</span>" if item.instructions else "")
        + "</td>"
        f"<td>{_e(item.dose)}</td><td>{_e(item.frequency)}</td><td>{_e(item.duration)}</td>"
        f"<td>{_e(item.route)}</td><td>{_e(item.quantity)}</td>"
        "</tr>"
        for i, item in enumerate(doc.items, start=1)
    )
    allergy = (
        f"<p class='warn'>Allergies: {_e(doc.allergies)}</p>"
        if doc.allergies.strip()
        else "<p class='small'>No known allergies recorded.</p>"
    )
    parts = [
        _head(doc.clinic),
        "<table width='100%'><tr>"
        f"<td><b>{_e(doc.patient_name)}</b> ({_e(doc.patient_number)})<br>{_e(doc.age_sex)}</td>"
        f"<td align='right'>Date: {_e(doc.issued_on.isoformat())}<br>"
        f"Doctor: {_e(doc.doctor_name)}</td></tr></table>",
        allergy,
    ]
    if doc.complaint:
        parts.append(f"<p><b>Complaint:</b> {_e(doc.complaint)}</p>")
    if doc.diagnoses:
        parts.append(f"<p><b>Diagnosis:</b> {_e('; '.join(doc.diagnoses))}</p>")
    parts.append("<h2>℞ Prescription</h2>")
    parts.append(
        "<table class='grid'><tr><th>#</th><th>Medicine</th><th>Dose</th><th>Frequency</th>"
        f"<th>Duration</th><th>Route</th><th>Qty</th></tr>{rows}</table>"
    )
    if doc.advice:
        parts.append(f"<h2>Advice</h2><p>{_e(doc.advice)}</p>")
    if doc.follow_up:
        parts.append(f"<p><b>Follow-up:</b> {_e(doc.follow_up.isoformat())}</p>")
    signed = (
        f"Signed electronically by {_e(doc.doctor_name)} on "
        f"{_e(doc.signed_at.strftime('%Y-%m-%d %H:%M'))} UTC"
        if doc.signed_at
        else "DRAFT - not signed"
    )
    revision = f" · revision {doc.revision}" if doc.revision > 1 else ""
    parts.append(f"<br><p class='small'>{signed}{revision}</p>")
    return _page("".join(parts))


def receipt_html(doc: ReceiptDoc) -> str:
    c = doc.currency
    lines = "".join(
        f"<tr><td>{_e(line.description)}</td><td class='num'>{line.quantity}</td>"
        f"<td class='num'>{_e(_money(line.unit_minor, c))}</td>"
        f"<td class='num'>{_e(_money(line.amount_minor, c))}</td></tr>"
        for line in doc.lines
    )
    pays = "".join(
        f"<tr><td>{_e(p.received_at.strftime('%Y-%m-%d %H:%M'))}</td>"
        f"<td>{_e('Refund' if p.amount_minor < 0 else p.method.title())}"
        f"{' (' + _e(p.method) + ')' if p.amount_minor < 0 else ''}</td>"
        f"<td>{_e(p.reference or p.reason)}</td>"
        f"<td class='num'>{_e(_money(p.amount_minor, c))}</td></tr>"
        for p in doc.payments
    )
    totals = [("Subtotal", doc.subtotal_minor)]
    if doc.discount_minor:
        totals.append(("Discount", -doc.discount_minor))
    if doc.tax_minor:
        totals.append(("Tax", doc.tax_minor))
    totals.append(("Total", doc.total_minor))
    totals_html = "".join(
        f"<tr><td colspan='3' class='num'>{label}</td>"
        f"<td class='num'><b>{_e(_money(amount, c))}</b></td></tr>"
        for label, amount in totals
    )
    issued = doc.issued_at.strftime("%Y-%m-%d %H:%M") if doc.issued_at else ""
    body = (
        _head(doc.clinic) + "<table width='100%'><tr>"
        f"<td><b>Receipt</b> for invoice {_e(doc.invoice_number)}<br>"
        f"{_e(doc.patient_name)} ({_e(doc.patient_number)})</td>"
        f"<td align='right'>{_e(issued)}</td></tr></table>"
        "<h2>Items</h2><table class='grid'><tr><th>Description</th><th class='num'>Qty</th>"
        f"<th class='num'>Unit</th><th class='num'>Amount</th></tr>{lines}{totals_html}</table>"
        "<h2>Payments</h2><table class='grid'><tr><th>When</th><th>Method</th>"
        f"<th>Reference</th><th class='num'>Amount</th></tr>{pays}</table>"
        f"<p><b>Paid:</b> {_e(_money(doc.paid_minor, c))} &nbsp; "
        f"<b>Balance due:</b> {_e(_money(doc.balance_minor, c))}</p>"
        + (f"<p class='small'>Cashier: {_e(doc.cashier)}</p>" if doc.cashier else "")
        + "<p class='small'>Thank you.</p>"
    )
    return _page(body)


def _report_table(title: str, heading: str, rows: Iterable[ReportRow], currency: str) -> str:
    body = "".join(
        f"<tr><td>{_e(r.label)}</td><td class='num'>{r.count}</td>"
        f"<td class='num'>{_e(_money(r.received_minor, currency))}</td>"
        f"<td class='num'>{_e(_money(r.refunded_minor, currency))}</td>"
        f"<td class='num'>{_e(_money(r.net_minor, currency))}</td></tr>"
        for r in rows
    )
    if not body:
        body = "<tr><td colspan='5'>No payments.</td></tr>"
    return (
        f"<h2>{_e(title)}</h2><table class='grid'><tr><th>{_e(heading)}</th>"
        "<th class='num'>Payments</th><th class='num'>Received</th>"
        f"<th class='num'>Refunded</th><th class='num'>Net</th></tr>{body}</table>"
    )


def day_end_html(report: DayEndReport) -> str:
    notes = "".join(f"<p class='small'>{_e(n)}</p>" for n in report.notes)
    body = (
        _head(report.clinic)
        + f"<h2>Day-end collection report: {_e(report.day.isoformat())}</h2>"
        + _report_table("Collections by method", "Method", report.by_method, report.currency)
        + _report_table("Collections by user", "Cashier", report.by_user, report.currency)
        + f"<p><b>Received:</b> {_e(_money(report.received_minor, report.currency))} &nbsp; "
        f"<b>Refunded:</b> {_e(_money(report.refunded_minor, report.currency))} &nbsp; "
        f"<b>Net collected:</b> {_e(_money(report.net_minor, report.currency))}</p>"
        f"<p>Bills issued: {report.bills_issued}</p>"
        + notes
        + (
            f"<p class='small'>Prepared by {_e(report.prepared_by)}</p>"
            if report.prepared_by
            else ""
        )
    )
    return _page(body)


# ---------------------------------------------------------------------------- output

A4 = QPageSize(QPageSize.PageSizeId.A4)
A5 = QPageSize(QPageSize.PageSizeId.A5)
SLIP = QPageSize(QSizeF(80, 110), QPageSize.Unit.Millimeter, "Token slip")


def render(html: str, device: QPagedPaintDevice, page: QPageSize = A4) -> None:
    """Lay ``html`` out on ``device`` (a PDF writer or a printer)."""
    margins = QMarginsF(5, 5, 5, 5) if page.id() == SLIP.id() else QMarginsF(15, 15, 15, 15)
    device.setPageLayout(QPageLayout(page, QPageLayout.Orientation.Portrait, margins))
    document = QTextDocument()
    document.setHtml(html)
    document.print_(device)


def write_pdf(html: str, path: Path, page: QPageSize = A4, title: str = "Clinic Desk") -> Path:
    """Save ``html`` as a PDF file (the "Save as PDF" path; also what tests read back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = QPdfWriter(str(path))
    writer.setResolution(300)
    writer.setTitle(title)
    writer.setCreator("Clinic Desk")
    render(html, writer, page)
    del writer  # flushes and closes the file
    return path
