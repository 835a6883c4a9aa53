"""Stripe Checkout rules on the server (DESIGN.md section 7).

- The amount is the server's own outstanding balance of the bill, never the desk's figure.
- Stripe sees no patient data: one line item "Clinic services - invoice INV-B-000231" and
  ids in metadata (also on ``payment_intent_data.metadata``).
- The payment is recorded exactly once, whichever of the desk's confirm and the signed
  webhook comes first: one conditional ``UPDATE`` claims the checkout's ``payment_id`` and the
  payment row is written in that same transaction, through the change log, so it syncs to
  every desk like any other change.
- Before acting, the session is re-read from Stripe and its amount, currency, bill id and
  live mode are checked against the checkout the server opened.
- Money that arrives for a bill settled meanwhile (cash at the desk while the patient was
  paying online) is refunded through Stripe at once and both movements are recorded; if the
  refund fails the checkout is left in ``review`` for an admin. Never a silent double charge.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clinic_desktop.models import Bill, Payment, new_id
from clinic_desktop.models.billing import bill_status
from clinic_desktop.models.hlc import HybridLogicalClock
from clinic_server.db import Database
from clinic_server.payments.settings import StripeSettings
from clinic_server.payments.tables import StripeCheckout, StripeEvent
from clinic_server.sync.apply import server_write
from clinic_server.sync.changes import ChangeSet
from clinic_server.sync.notify import ChangeNotifier

logger = logging.getLogger(__name__)

RETURN_PATH = "/api/v1/payments/stripe/return"
PAYABLE_STATES = ("issued", "partially_paid")
SESSION_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
REFUND_EVENTS = ("refund.created", "refund.updated")


class PaymentProblem(Exception):
    """An expected refusal: ``status`` is the HTTP status, the message is for a person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Caller:
    """Who asks: the signed-in user of a clinic, at a desk (its code goes on the payment)."""

    user_id: str
    clinic_id: str
    desk_code: str = ""


def _stripe_down() -> PaymentProblem:
    return PaymentProblem(
        502,
        "Stripe cannot be reached from the clinic server right now. The bill is still open; "
        "take cash or card, or try again in a few minutes.",
    )


class StripePayments:
    """The server's Stripe integration; one per app, shared by requests (thread-safe)."""

    def __init__(
        self,
        db: Database,
        settings: StripeSettings,
        *,
        clock: HybridLogicalClock | None = None,
        notifier: ChangeNotifier | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        settings.check()
        # DESIGN.md section 7: no request metrics are sent back to Stripe.
        stripe.enable_telemetry = False
        self.db = db
        self.settings = settings
        self.clock = clock or HybridLogicalClock("server")
        self.notifier = notifier
        self.now = now
        self.client: stripe.StripeClient | None = None
        if settings.secret_key is not None:
            bases: dict[str, str] = {"api": settings.api_base} if settings.api_base else {}
            self.client = stripe.StripeClient(
                settings.secret_key.get_secret_value(),
                base_addresses=bases or None,  # type: ignore[arg-type]
                max_network_retries=2,
            )

    # ------------------------------------------------------------------------------ helpers

    def _stripe(self) -> stripe.StripeClient:
        if self.client is None or not self.settings.configured:
            raise PaymentProblem(
                503,
                "Online payment is not set up on the clinic server. Take cash or card; an "
                "admin can set the Stripe keys (see docs/stripe.md).",
            )
        return self.client

    def return_urls(self, attempt_id: str) -> tuple[str, str, str, str]:
        """success URL, cancel URL, and the prefixes the desk recognises them by."""
        base = self.settings.public_base() + RETURN_PATH
        success_prefix, cancel_prefix = f"{base}/success", f"{base}/cancel"
        return (
            success_prefix + "?session_id={CHECKOUT_SESSION_ID}",
            f"{cancel_prefix}?attempt={attempt_id}",
            success_prefix,
            cancel_prefix,
        )

    @staticmethod
    def _net_paid(session: Session, bill_id: str) -> tuple[int, bool]:
        total = session.scalar(
            select(func.coalesce(func.sum(Payment.amount_minor), 0)).where(
                Payment.bill_id == bill_id, Payment.deleted.is_(False)
            )
        )
        refunds = session.scalar(
            select(func.count()).where(
                Payment.bill_id == bill_id, Payment.deleted.is_(False), Payment.amount_minor < 0
            )
        )
        return int(total or 0), bool(refunds)

    def _add_payment(self, session: Session, payment: Payment, bill: Bill) -> None:
        """Insert a payment and move the bill's status, both through the change log.

        Uses the sync server's own ``server_write`` so these rows get versions, change-log
        entries and field stamps exactly like pushed ones, and reach every desk by pull.
        """
        changes = ChangeSet(payment.clinic_id)
        user = payment.received_by
        server_write(session, changes, payment, {}, self.clock, user)
        session.flush()
        net, any_refund = self._net_paid(session, bill.id)
        status = bill_status(bill, net, any_refund)
        if status != bill.status:
            server_write(session, changes, bill, {"status": status}, self.clock, user)
        changes.finish(session)
        if self.notifier is not None:
            self.notifier.notify_in_transaction(session, payment.clinic_id)

    def _wake_pulls(self, clinic_id: str) -> None:
        """After commit: wake this process's long-polling desks (others hear NOTIFY).

        A spurious wake-up only costs the woken pulls one empty read.
        """
        if self.notifier is not None:
            self.notifier.notify_local(clinic_id)

    def _record_refund(
        self,
        session: Session,
        original: Payment,
        refund_id: str,
        amount: int,
        *,
        reason: str,
        user_id: str,
        desk_code: str,
    ) -> Payment | None:
        """Write a Stripe refund as a negative payment, exactly once per refund id.

        The desk's refund request, the automatic refund and Stripe's ``refund.*`` webhooks
        may all report the same refund; a claim row keyed by the refund id (inserted in a
        savepoint of this transaction) lets only the first one write.
        """
        try:
            with session.begin_nested():
                session.add(
                    StripeEvent(
                        event_id=f"refund:{refund_id}"[:255],
                        clinic_id=original.clinic_id,
                        type="refund.recorded",
                        object_id=original.id,
                        received_at=self.now(),
                        outcome="recorded",
                    )
                )
        except IntegrityError:
            return None
        bill = session.get(Bill, original.bill_id, with_for_update=True)
        assert bill is not None
        negative = Payment(
            id=new_id(),
            clinic_id=original.clinic_id,
            bill_id=original.bill_id,
            method="stripe",
            amount_minor=-amount,
            currency=original.currency,
            received_at=self.now(),
            received_by=user_id,
            desk_code=desk_code,
            reference=refund_id[:120],
            refund_of=original.id,
            reason=reason,
        )
        self._add_payment(session, negative, bill)
        return negative

    def _checkout_for(self, session: Session, clinic_id: str, session_id: str) -> StripeCheckout:
        checkout = session.scalar(
            select(StripeCheckout).where(
                StripeCheckout.session_id == session_id, StripeCheckout.clinic_id == clinic_id
            )
        )
        if checkout is None:
            raise PaymentProblem(404, "This online payment is not known to the clinic server.")
        session.expunge(checkout)  # keep its loaded values after the read session ends
        return checkout

    # ------------------------------------------------------------------------------- create

    def create_checkout(self, caller: Caller, bill_id: str, attempt_id: str) -> dict[str, Any]:
        """Open (or, for a retried request, return) a Checkout Session for a bill."""
        client = self._stripe()
        try:
            attempt_id = str(uuid.UUID(attempt_id))
        except ValueError:
            raise PaymentProblem(422, "The payment attempt id is not valid.") from None
        with self.db.read() as session:
            existing = session.get(StripeCheckout, attempt_id)
            if existing is not None:
                if existing.clinic_id != caller.clinic_id or existing.bill_id != bill_id:
                    raise PaymentProblem(409, "This payment attempt belongs to another bill.")
                if existing.status == "open" and existing.session_id:
                    return self._start_answer(existing)
                raise PaymentProblem(409, "This payment attempt is finished; start a new one.")
            bill = session.get(Bill, bill_id)
            if bill is None or bill.clinic_id != caller.clinic_id or bill.deleted:
                raise PaymentProblem(
                    404,
                    "This bill has not reached the clinic server yet. Wait a moment for the "
                    "desk to sync, then try again.",
                )
            if bill.status not in PAYABLE_STATES or not bill.invoice_number:
                raise PaymentProblem(409, self._not_payable(bill.status))
            net, _ = self._net_paid(session, bill.id)
            due = bill.total_minor - net
            if due <= 0:
                raise PaymentProblem(409, "This bill is already paid in full.")
            currency, invoice = bill.currency.upper(), bill.invoice_number
            others = session.scalars(
                select(StripeCheckout).where(
                    StripeCheckout.bill_id == bill.id, StripeCheckout.status == "open"
                )
            ).all()
            open_sessions = [c.session_id for c in others if c.session_id]

        # One payable page per bill: an older page left open could still be paid later.
        for old in open_sessions:
            if self._close_old_session(caller, old):
                raise PaymentProblem(
                    409,
                    "A previous online payment for this bill has just been completed. "
                    "The bill is paid; nothing more is due.",
                )

        now = self.now()
        expires = now + timedelta(minutes=self.settings.checkout_minutes)
        key = f"clinic-checkout-{bill_id}-{attempt_id}"
        with self.db.write() as session:
            session.add(
                StripeCheckout(
                    id=attempt_id,
                    clinic_id=caller.clinic_id,
                    bill_id=bill_id,
                    idempotency_key=key,
                    amount_minor=due,
                    currency=currency,
                    status="creating",
                    created_by=caller.user_id,
                    desk_code=caller.desk_code,
                    created_at=now,
                    expires_at=expires,
                )
            )
        success_url, cancel_url, _, _ = self.return_urls(attempt_id)
        ids = {"bill_id": bill_id, "clinic_id": caller.clinic_id, "attempt_id": attempt_id}
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": due,
                        "product_data": {"name": f"Clinic services - invoice {invoice}"},
                    },
                }
            ],
            "client_reference_id": bill_id,
            "metadata": ids,
            "payment_intent_data": {"metadata": ids},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": int(expires.timestamp()),
        }
        try:
            created = client.v1.checkout.sessions.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": key},
            )
        except stripe.StripeError as error:
            with self.db.write() as session:
                row = session.get(StripeCheckout, attempt_id)
                if row is not None:
                    row.status, row.note = "failed", "Stripe refused to open the session"
            if isinstance(error, stripe.APIConnectionError):
                raise _stripe_down() from None
            logger.warning("stripe refused a checkout session: %s", type(error).__name__)
            raise PaymentProblem(502, "Stripe refused to open the payment page.") from None
        with self.db.write() as session:
            row = session.get(StripeCheckout, attempt_id)
            assert row is not None
            row.session_id, row.url = created.id, str(created.url)
            if row.status == "creating":  # a fast webhook may have moved it on already
                row.status = "open"
            answer = self._start_answer(row)
        return answer

    @staticmethod
    def _not_payable(status: str) -> str:
        return {
            "draft": "Issue the bill before taking an online payment.",
            "paid": "This bill is already paid in full.",
            "refunded": "This bill was refunded; it cannot be paid again.",
            "void": "This bill was cancelled; it cannot be paid.",
        }.get(status, "This bill cannot be paid online in its current state.")

    def _start_answer(self, row: StripeCheckout) -> dict[str, Any]:
        _, _, success_prefix, cancel_prefix = self.return_urls(row.id)
        return {
            "session_id": row.session_id,
            "url": row.url,
            "expires_at": int(row.expires_at.timestamp()),
            "bill_id": row.bill_id,
            "attempt_id": row.id,
            "amount_minor": row.amount_minor,
            "currency": row.currency,
            "success_url_prefix": success_prefix,
            "cancel_url_prefix": cancel_prefix,
        }

    def _close_old_session(self, caller: Caller, session_id: str) -> bool:
        """Expire an older open session of the bill; True if it turned out to be paid."""
        client = self._stripe()
        try:
            client.v1.checkout.sessions.expire(session_id)
        except stripe.APIConnectionError:
            raise _stripe_down() from None
        except stripe.StripeError:
            pass  # not open any more (paid or expired): look at what it is now
        try:
            current = client.v1.checkout.sessions.retrieve(session_id)
        except stripe.StripeError:
            raise _stripe_down() from None
        result = self._apply(caller.clinic_id, current, None)
        return result["status"] in ("paid", "review")

    # ------------------------------------------------------------------------------ confirm

    def confirm(self, caller: Caller, session_id: str, outcome: str) -> dict[str, Any]:
        """The desk's report after the page closed; Stripe's own state decides."""
        client = self._stripe()
        with self.db.read() as session:
            self._checkout_for(session, caller.clinic_id, session_id)
        try:
            current = client.v1.checkout.sessions.retrieve(session_id)
        except stripe.APIConnectionError:
            raise _stripe_down() from None
        except stripe.StripeError:
            raise PaymentProblem(502, "Stripe does not know this payment page.") from None
        if current.status == "open" and outcome in ("cancel", "closed", "expired"):
            try:
                current = client.v1.checkout.sessions.expire(session_id)
            except stripe.APIConnectionError:
                raise _stripe_down() from None
            except stripe.StripeError:  # completed in the meantime: re-read and record it
                current = client.v1.checkout.sessions.retrieve(session_id)
        given_up = outcome in ("cancel", "closed")
        return self._apply(caller.clinic_id, current, None, cancelled=given_up)

    # ------------------------------------------------------------------------------ webhook

    def handle_webhook(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """Verify (signature on the raw body, age, not from the future), dedupe, act."""
        self._stripe()
        secret = self.settings.webhook_secret
        assert secret is not None
        try:
            text = payload.decode("utf-8")
            event = stripe.Webhook.construct_event(
                text,
                signature,
                secret.get_secret_value(),
                tolerance=self.settings.webhook_tolerance_seconds,
            )
        except (stripe.SignatureVerificationError, ValueError):
            raise PaymentProblem(400, "Webhook signature is not valid.") from None
        stamp = _signature_time(signature or "")
        if (
            stamp is None
            or stamp > self.now().timestamp() + self.settings.webhook_future_skew_seconds
        ):
            raise PaymentProblem(400, "Webhook timestamp is in the future.")
        event_id, event_type = str(event.id), str(event.type)
        if bool(event.livemode) != self.settings.live:
            raise PaymentProblem(400, "Webhook live mode does not match this server's key.")
        with self.db.read() as session:
            if session.get(StripeEvent, event_id) is not None:
                return {"status": "duplicate"}
        if event_type in REFUND_EVENTS:
            return self._refund_event(event_id, event_type, str(event.data.object["id"]))
        if event_type not in SESSION_EVENTS:
            self._remember_event(event_id, event_type, "", "ignored")
            return {"status": "ignored"}
        obj: dict[str, Any] = event.data.object.to_dict()
        session_id = str(obj["id"])
        attempt_id = str((obj.get("metadata") or {}).get("attempt_id") or "")
        with self.db.write() as session:
            checkout = session.scalar(
                select(StripeCheckout).where(StripeCheckout.session_id == session_id)
            )
            if checkout is None and attempt_id:
                # Stripe can be faster than our own bookkeeping: the session was created but
                # its id not yet stored when the event arrived.
                checkout = session.get(StripeCheckout, attempt_id)
                if checkout is not None and checkout.session_id is None:
                    checkout.session_id = session_id
                    checkout.url = str(obj.get("url") or "")
                    checkout.status = "open"
                elif checkout is not None and checkout.session_id != session_id:
                    checkout = None
            clinic_id = checkout.clinic_id if checkout is not None else ""
            if checkout is not None:
                session.flush()
                session.expunge(checkout)
        if checkout is None:
            self._remember_event(event_id, event_type, session_id, "unknown session")
            return {"status": "ignored"}
        # The payload's figures must agree too: a mismatch means someone forged or altered it.
        self._check(checkout, obj, where="event")
        try:
            current = self._stripe().v1.checkout.sessions.retrieve(session_id)
        except stripe.StripeError:
            raise PaymentProblem(503, "Stripe cannot be reached; deliver again later.") from None
        failed = event_type == "checkout.session.async_payment_failed"
        result = self._apply(clinic_id, current, (event_id, event_type), failed=failed)
        return {"status": result["status"]}

    def _refund_event(self, event_id: str, event_type: str, refund_id: str) -> dict[str, Any]:
        """A refund made outside the clinic (Stripe's dashboard) is recorded when it succeeds.

        Refunds the clinic itself makes carry ``metadata.clinic_source`` and are recorded by
        the code that made them, with the cashier's reason; if Stripe only settled one later
        (``refund.updated``), this records it. The refund-id claim keeps it to one row.
        """
        try:
            current = self._stripe().v1.refunds.retrieve(refund_id)
        except stripe.StripeError:
            raise PaymentProblem(503, "Stripe cannot be reached; deliver again later.") from None
        data: dict[str, Any] = current.to_dict()
        source = str((data.get("metadata") or {}).get("clinic_source") or "")
        if source and event_type == "refund.created":
            # Made by the clinic: the code that made it records it (with the cashier's
            # reason). Only a later refund.updated (a pending refund that settled) is ours.
            self._remember_event(event_id, event_type, refund_id, "made by the clinic")
            return {"status": "ignored"}
        if data.get("status") != "succeeded":
            return {"status": "pending"}  # refund.updated follows when it settles
        intent = str(data.get("payment_intent") or "")
        clinic_id = ""
        try:
            with self.db.write() as session:
                claim = StripeEvent(
                    event_id=event_id,
                    type=event_type,
                    object_id=refund_id,
                    received_at=self.now(),
                    outcome="refund",
                )
                session.add(claim)
                session.flush()
                original = session.scalar(
                    select(Payment).where(
                        Payment.method == "stripe",
                        Payment.reference == intent[:120],
                        Payment.amount_minor > 0,
                        Payment.refund_of.is_(None),
                    )
                )
                if original is None:
                    claim.outcome = "unknown payment"
                    return {"status": "ignored"}
                claim.clinic_id = clinic_id = original.clinic_id
                if str(data.get("currency") or "").upper() != original.currency:
                    raise PaymentProblem(400, "The refund's currency does not match the payment.")
                self._record_refund(
                    session,
                    original,
                    refund_id,
                    int(data.get("amount") or 0),
                    reason=(
                        "Refund completed by Stripe after it was requested here."
                        if source
                        else "Refunded in Stripe's dashboard."
                    ),
                    user_id=original.received_by,
                    desk_code="",
                )
        except IntegrityError:
            return {"status": "duplicate"}
        self._wake_pulls(clinic_id)
        return {"status": "refunded"}

    def _remember_event(self, event_id: str, event_type: str, object_id: str, outcome: str) -> None:
        try:
            with self.db.write() as session:
                session.add(
                    StripeEvent(
                        event_id=event_id,
                        type=event_type,
                        object_id=object_id,
                        received_at=self.now(),
                        outcome=outcome,
                    )
                )
        except IntegrityError:
            pass  # a concurrent delivery of the same event got there first

    # ------------------------------------------------------------------------- the core rule

    def _check(self, checkout: StripeCheckout, obj: Any, *, where: str) -> None:
        """Amount, currency, bill id and live mode must be exactly what the server opened."""
        data: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
        metadata = data.get("metadata") or {}
        problems = []
        if data.get("amount_total") != checkout.amount_minor:
            problems.append("amount")
        if str(data.get("currency") or "").upper() != checkout.currency:
            problems.append("currency")
        if metadata.get("bill_id") != checkout.bill_id:
            problems.append("bill id")
        if data.get("client_reference_id") != checkout.bill_id:
            problems.append("reference")
        if bool(data.get("livemode")) != self.settings.live:
            problems.append("live mode")
        if problems:
            logger.warning(
                "stripe %s for checkout %s does not match: %s", where, checkout.id, problems
            )
            with self.db.write() as session:
                row = session.get(StripeCheckout, checkout.id)
                if row is not None and row.payment_id is None:
                    row.status = "review"
                    row.note = f"Stripe {where} did not match the bill: {', '.join(problems)}"
            raise PaymentProblem(
                400 if where == "event" else 409,
                "The payment reported by Stripe does not match the bill "
                f"({', '.join(problems)}); nothing was recorded and an admin must review it.",
            )

    def _apply(
        self,
        clinic_id: str,
        current: Any,
        event: tuple[str, str] | None,
        *,
        failed: bool = False,
        cancelled: bool = False,
    ) -> dict[str, Any]:
        """Act on the session as Stripe has it now; record the payment at most once."""
        with self.db.read() as session:
            checkout = self._checkout_for(session, clinic_id, str(current.id))
        paid = current.status == "complete" and current.payment_status in (
            "paid",
            "no_payment_required",
        )
        if paid:
            self._check(checkout, current, where="session")
        refund_due = 0
        try:
            with self.db.write() as session:
                if event is not None:
                    session.add(
                        StripeEvent(
                            event_id=event[0],
                            clinic_id=clinic_id,
                            type=event[1],
                            object_id=str(current.id),
                            received_at=self.now(),
                            outcome="paid" if paid else str(current.status),
                        )
                    )
                    session.flush()
                row = session.get(StripeCheckout, checkout.id, with_for_update=True)
                assert row is not None
                if paid:
                    refund_due = self._record_paid(session, row, str(current.payment_intent))
                elif row.payment_id is None:
                    if current.status == "expired":
                        given_up = cancelled or row.status == "cancelled"
                        row.status = "cancelled" if given_up else "expired"
                    elif failed:
                        row.status = "failed"
        except IntegrityError:
            return self._answer(checkout.id, duplicate=True)
        if paid:
            self._wake_pulls(clinic_id)
        if refund_due:
            self._refund_excess(checkout.id, refund_due)
        elif paid:
            self._retry_pending_refund(checkout.id)
        return self._answer(checkout.id)

    def _record_paid(self, session: Session, row: StripeCheckout, intent: str) -> int:
        """Write the payment if nobody has; returns the amount to refund (0 normally)."""
        bill = session.get(Bill, row.bill_id, with_for_update=True)
        assert bill is not None
        payment = Payment(
            id=new_id(),
            clinic_id=row.clinic_id,
            bill_id=row.bill_id,
            method="stripe",
            amount_minor=row.amount_minor,
            currency=row.currency,
            received_at=self.now(),
            received_by=row.created_by,
            desk_code=row.desk_code,
            reference=intent[:120],
            reason="",
        )
        claimed = session.execute(  # type: ignore[attr-defined]
            update(StripeCheckout)
            .where(StripeCheckout.id == row.id, StripeCheckout.payment_id.is_(None))
            .values(payment_id=payment.id, payment_intent=intent, status="paid")
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return 0  # confirm and webhook raced: the other one recorded it
        net_before, _ = self._net_paid(session, bill.id)
        due_before = bill.total_minor - net_before if bill.status in PAYABLE_STATES else 0
        excess = min(row.amount_minor, max(0, row.amount_minor - max(0, due_before)))
        self._add_payment(session, payment, bill)
        if excess:
            session.execute(
                update(StripeCheckout)
                .where(StripeCheckout.id == row.id)
                .values(
                    status="review",
                    note="The bill was already settled another way; refunding the excess.",
                )
                .execution_options(synchronize_session=False)
            )
            logger.warning("checkout %s paid a settled bill; refunding %s", row.id, excess)
        return excess

    def _retry_pending_refund(self, checkout_id: str) -> None:
        """A refund that failed earlier is tried again on the next confirm or webhook."""
        with self.db.read() as session:
            row = session.get(StripeCheckout, checkout_id)
            pending = row is not None and row.status == "review" and row.payment_id is not None
            pending = pending and row is not None and row.refund_payment_id is None
            if not pending or row is None:
                return
            bill = session.get(Bill, row.bill_id)
            net, _ = self._net_paid(session, row.bill_id)
            excess = min(row.amount_minor, net - bill.total_minor) if bill else 0
        if excess > 0:
            self._refund_excess(checkout_id, excess)

    def _refund_excess(self, checkout_id: str, amount: int) -> None:
        with self.db.read() as session:
            row = session.get(StripeCheckout, checkout_id)
            assert row is not None
            assert row.payment_id is not None
            intent, payment_id = row.payment_intent or "", row.payment_id
        try:
            refund = self._stripe().v1.refunds.create(
                {
                    "payment_intent": intent,
                    "amount": amount,
                    "reason": "duplicate",
                    "metadata": {
                        "checkout_id": checkout_id,
                        "payment_id": payment_id,
                        "clinic_source": "auto",
                    },
                },
                {"idempotency_key": f"clinic-auto-refund-{checkout_id}"},
            )
        except stripe.StripeError as error:
            logger.warning("automatic refund for checkout %s failed: %s", checkout_id, error)
            with self.db.write() as session:
                row = session.get(StripeCheckout, checkout_id)
                if row is not None:
                    row.note = (
                        "The bill was already settled another way and the automatic refund "
                        "failed: refund this payment in Stripe's dashboard."
                    )
            return
        if refund.status != "succeeded":
            with self.db.write() as session:
                row = session.get(StripeCheckout, checkout_id)
                if row is not None:
                    row.note = f"Refund {refund.id} is {refund.status} at Stripe; check later."
            return
        with self.db.write() as session:
            row = session.get(StripeCheckout, checkout_id, with_for_update=True)
            assert row is not None
            original = session.get(Payment, payment_id)
            assert original is not None
            negative = self._record_refund(
                session,
                original,
                str(refund.id),
                int(refund.amount),
                reason="Automatic refund: the bill had already been paid another way.",
                user_id=row.created_by,
                desk_code=row.desk_code,
            )
            if negative is not None:
                row.refund_payment_id = negative.id
            row.note = "The bill was already settled another way; the online payment was refunded."
            clinic_id = row.clinic_id
        self._wake_pulls(clinic_id)

    def _answer(self, checkout_id: str, *, duplicate: bool = False) -> dict[str, Any]:
        """What the desk is told: status, the bill's status now, and a readable message."""
        with self.db.read() as session:
            row = session.get(StripeCheckout, checkout_id)
            assert row is not None
            bill = session.get(Bill, row.bill_id)
            bill_status = bill.status if bill is not None else ""
            status = {
                "paid": "paid",
                "review": "review",
                "expired": "expired",
                "cancelled": "cancelled",
                "failed": "failed",
            }.get(row.status, "pending")
            message = {
                "paid": "Payment received online and recorded.",
                "review": row.note or "This online payment needs an admin's review.",
                "expired": "The payment page expired before the patient paid. The bill is "
                "still open.",
                "cancelled": "Online payment was cancelled. The bill is still open.",
                "failed": "The card payment failed. The bill is still open.",
            }.get(
                status,
                "Stripe has not confirmed the payment yet. The bill turns paid on every desk "
                "as soon as it does; do not take another payment for it meanwhile.",
            )
            return {
                "status": status,
                "bill_id": row.bill_id,
                "bill_status": bill_status,
                "payment_id": row.payment_id,
                "message": message,
                "duplicate": duplicate,
            }

    def needing_review(self, clinic_id: str) -> list[dict[str, Any]]:
        """Checkouts an admin must look at (mismatched reports, refunds that failed), newest
        first, with the invoice number to find the bill; ids and amounts only."""
        with self.db.read() as session:
            rows = session.execute(
                select(StripeCheckout, Bill.invoice_number)
                .join(Bill, Bill.id == StripeCheckout.bill_id, isouter=True)
                .where(StripeCheckout.clinic_id == clinic_id, StripeCheckout.status == "review")
                .order_by(StripeCheckout.created_at.desc())
                .limit(200)
            ).all()
            return [
                {
                    "attempt_id": row.id,
                    "bill_id": row.bill_id,
                    "invoice_number": invoice or "",
                    "session_id": row.session_id or "",
                    "amount_minor": row.amount_minor,
                    "currency": row.currency,
                    "payment_id": row.payment_id,
                    "refund_payment_id": row.refund_payment_id,
                    "note": row.note,
                    "created_at": row.created_at.isoformat(),
                }
                for row, invoice in rows
            ]

    # ------------------------------------------------------------------------------ refunds

    def refund(
        self,
        caller: Caller,
        payment_id: str,
        amount_minor: int | None,
        reason: str,
        request_id: str,
    ) -> dict[str, Any]:
        """Refund (part of) a Stripe payment through Stripe; record it once Stripe confirms."""
        client = self._stripe()
        reason = (reason or "").strip()
        if not reason:
            raise PaymentProblem(422, "Give a reason for the refund.")
        with self.db.read() as session:
            payment = session.get(Payment, payment_id)
            if payment is None or payment.clinic_id != caller.clinic_id or payment.deleted:
                raise PaymentProblem(404, "This payment is not on the clinic server.")
            if payment.method != "stripe" or payment.refund_of or payment.amount_minor <= 0:
                raise PaymentProblem(409, "Only an online (Stripe) payment can be refunded here.")
            refunded = -int(
                session.scalar(
                    select(func.coalesce(func.sum(Payment.amount_minor), 0)).where(
                        Payment.refund_of == payment.id, Payment.deleted.is_(False)
                    )
                )
                or 0
            )
            left = payment.amount_minor - refunded
            amount = left if amount_minor is None else amount_minor
            if amount <= 0 or amount > left:
                raise PaymentProblem(422, f"The refund must be between 1 and {left} minor units.")
            intent, currency, bill_id = payment.reference, payment.currency, payment.bill_id
        try:
            refund = client.v1.refunds.create(
                {
                    "payment_intent": intent,
                    "amount": amount,
                    "reason": "requested_by_customer",
                    "metadata": {
                        "payment_id": payment_id,
                        "bill_id": bill_id,
                        "clinic_source": "desk",
                    },
                },
                {"idempotency_key": f"clinic-refund-{payment_id}-{request_id}"},
            )
        except stripe.APIConnectionError:
            raise _stripe_down() from None
        except stripe.StripeError as error:
            message = getattr(error, "user_message", None) or "Stripe refused the refund."
            raise PaymentProblem(409, str(message)) from None
        if refund.status != "succeeded":
            return {
                "status": "pending",
                "refund_payment_id": None,
                "amount_minor": amount,
                "currency": currency,
                "message": "Stripe accepted the refund but has not completed it yet.",
            }
        with self.db.write() as session:
            original = session.get(Payment, payment_id)
            assert original is not None
            recorded = self._record_refund(
                session,
                original,
                str(refund.id),
                amount,
                reason=reason,
                user_id=caller.user_id,
                desk_code=caller.desk_code,
            )
            if recorded is None:  # Stripe's webhook about this refund got here first
                recorded = session.scalar(
                    select(Payment).where(
                        Payment.reference == str(refund.id)[:120], Payment.refund_of == payment_id
                    )
                )
            refund_payment_id = recorded.id if recorded is not None else None
        self._wake_pulls(caller.clinic_id)
        return {
            "status": "refunded",
            "refund_payment_id": refund_payment_id,
            "amount_minor": amount,
            "currency": currency,
            "message": "The refund was sent to the patient's card.",
        }


def _signature_time(header: str) -> int | None:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None
