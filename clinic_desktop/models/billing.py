"""Price list, bills and payments. Money is always integer minor units plus a currency."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clinic_desktop.models.base import Base, SyncMixin
from clinic_desktop.models.types import UTCDateTime

BILL_STATUSES = ("draft", "issued", "partially_paid", "paid", "refunded", "void")
PAYMENT_METHODS = ("cash", "card", "stripe")


class PriceItem(SyncMixin, Base):
    """A billable service. ``kind == "consultation"`` with a doctor is that doctor's fee."""

    __tablename__ = "price_item"

    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="service")
    doctor_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("user_account.id"), nullable=True
    )
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(default=True)


class Bill(SyncMixin, Base):
    __tablename__ = "bill"
    __table_args__ = (UniqueConstraint("clinic_id", "invoice_number"),)
    __sync_policy__ = "guarded"  # items frozen once issued

    visit_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("visit.id"), nullable=True, index=True
    )
    patient_id: Mapped[str] = mapped_column(String(36), ForeignKey("patient.id"), index=True)
    desk_code: Mapped[str] = mapped_column(String(3))
    invoice_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(Integer, default=0)
    discount_minor: Mapped[int] = mapped_column(Integer, default=0)
    tax_minor: Mapped[int] = mapped_column(Integer, default=0)
    total_minor: Mapped[int] = mapped_column(Integer, default=0)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A credit note cancels an issued invoice; it has its own number and points at the original.
    credit_note_for: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("bill.id"), nullable=True
    )
    void_reason: Mapped[str] = mapped_column(Text, default="")


class BillItem(SyncMixin, Base):
    __tablename__ = "bill_item"
    __sync_policy__ = "guarded"

    bill_id: Mapped[str] = mapped_column(String(36), ForeignKey("bill.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    price_item_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("price_item.id"), nullable=True
    )
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_minor: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(Integer)


class Payment(SyncMixin, Base):
    """Append-only. A refund is a negative payment pointing at the payment it refunds."""

    __tablename__ = "payment"
    __sync_policy__ = "append_only"

    bill_id: Mapped[str] = mapped_column(String(36), ForeignKey("bill.id"), index=True)
    method: Mapped[str] = mapped_column(String(10))
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    received_by: Mapped[str] = mapped_column(String(36), ForeignKey("user_account.id"))
    desk_code: Mapped[str] = mapped_column(String(3), default="")
    reference: Mapped[str] = mapped_column(String(120), default="")  # terminal slip, Stripe id
    refund_of: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("payment.id"), nullable=True
    )
    reason: Mapped[str] = mapped_column(Text, default="")


def bill_status(bill: Bill, net_paid_minor: int, any_refund: bool) -> str:
    """The status an issued bill's payments imply; drafts, void bills and credit notes keep
    theirs. One rule for desks and the server, so both derive the same status."""
    if bill.status in ("draft", "void") or bill.credit_note_for:
        return bill.status
    if net_paid_minor >= bill.total_minor:
        return "paid"
    if net_paid_minor > 0:
        return "partially_paid"
    return "refunded" if any_refund else "issued"
