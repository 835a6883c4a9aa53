"""Server-only records of Stripe checkouts and processed webhook events (never synced).

The payment itself is an ordinary synced ``payment`` row; these tables make recording it
exactly-once (``payment_id`` is claimed by one conditional UPDATE) and keep what an admin
needs to review a checkout that went wrong.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinic_desktop.models.types import UTCDateTime
from clinic_server.tables import ServerBase

CHECKOUT_STATES = ("creating", "open", "paid", "cancelled", "expired", "failed", "review")


class StripeCheckout(ServerBase):
    """One attempt to pay a bill online; ``id`` is the desk's attempt id."""

    __tablename__ = "srv_stripe_checkout"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(String(36), index=True)
    bill_id: Mapped[str] = mapped_column(String(36), index=True)
    session_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    url: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str] = mapped_column(String(255))
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12), default="creating")
    created_by: Mapped[str] = mapped_column(String(36))
    desk_code: Mapped[str] = mapped_column(String(3), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    payment_intent: Mapped[str | None] = mapped_column(String(255), nullable=True)
    refund_payment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")  # why it needs review (no patient data)


class StripeEvent(ServerBase):
    """A webhook event already acted on; a redelivery is answered without acting again."""

    __tablename__ = "srv_stripe_event"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(String(36), default="")
    type: Mapped[str] = mapped_column(String(80))
    object_id: Mapped[str] = mapped_column(String(255), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(40), default="")
