"""HTTP endpoints for Stripe Checkout (mounted under ``/api/v1`` by the app factory).

- ``POST /payments/stripe/checkout-sessions``: open a session for a bill (billing role).
- ``POST /payments/stripe/confirm``: the desk's report after the page closed.
- ``POST /payments/stripe/webhook``: Stripe's signed events (no user: the signature is
  the authentication, checked on the raw body).
- ``POST /payments/stripe/refunds``: refund a Stripe payment through Stripe.
- ``GET /payments/stripe/return/{success,cancel}``: the pages Stripe redirects to; the desk
  stops before loading them, a browser gets a plain "you can close this window".
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from clinic_server.deps import Device, Principal, check_versions, current_device, require_roles
from clinic_server.payments.service import Caller, PaymentProblem, StripePayments
from clinic_server.payments.settings import StripeSettings, StripeSettingsError
from clinic_server.state import ServerState, get_state

router = APIRouter(prefix="/payments/stripe", tags=["payments"])
log = logging.getLogger("clinic_server.payments")

_build_lock = threading.Lock()
_CASHIER = require_roles("billing", "admin")
_ADMIN = require_roles("admin")


def get_payments(
    request: Request, state: Annotated[ServerState, Depends(get_state)]
) -> StripePayments:
    """The app's Stripe integration, built once from ``CLINIC_STRIPE_*`` settings."""
    payments: StripePayments | None = getattr(request.app.state, "stripe_payments", None)
    if payments is None:
        with _build_lock:
            payments = getattr(request.app.state, "stripe_payments", None)
            if payments is None:
                try:
                    payments = StripePayments(
                        state.db, StripeSettings(), clock=state.clock, notifier=state.notifier
                    )
                except StripeSettingsError as exc:
                    log.error("stripe settings refused: %s", exc)
                    raise HTTPException(
                        503, "Online payment is not set up correctly on the clinic server."
                    ) from None
                request.app.state.stripe_payments = payments
    return payments


def _fail(problem: PaymentProblem) -> HTTPException:
    return HTTPException(problem.status, str(problem))


class CheckoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bill_id: str = Field(min_length=1, max_length=36)
    attempt_id: str = Field(default_factory=lambda: str(uuid.uuid4()), max_length=36)


class CheckoutOut(BaseModel):
    session_id: str
    url: str
    expires_at: int
    bill_id: str
    attempt_id: str
    amount_minor: int
    currency: str
    success_url_prefix: str
    cancel_url_prefix: str


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1, max_length=255)
    outcome: str = Field(default="success", pattern="^(success|cancel|closed|expired)$")


class ConfirmOut(BaseModel):
    status: str
    bill_id: str
    bill_status: str
    payment_id: str | None
    message: str
    duplicate: bool = False


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_id: str = Field(min_length=1, max_length=36)
    amount_minor: int | None = Field(default=None, gt=0)
    reason: str = Field(min_length=1, max_length=500)
    request_id: str = Field(default_factory=lambda: str(uuid.uuid4()), max_length=36)


class RefundOut(BaseModel):
    status: str
    refund_payment_id: str | None
    amount_minor: int
    currency: str
    message: str


def _caller(principal: Principal, device: Device) -> Caller:
    return Caller(
        user_id=principal.user_id, clinic_id=principal.clinic_id, desk_code=device.desk_code
    )


@router.post(
    "/checkout-sessions",
    response_model=CheckoutOut,
    status_code=201,
    dependencies=[Depends(check_versions)],
)
def create_checkout_session(
    body: CheckoutIn,
    principal: Annotated[Principal, _CASHIER],
    device: Annotated[Device, Depends(current_device)],
    payments: Annotated[StripePayments, Depends(get_payments)],
) -> dict[str, Any]:
    """Open a Checkout Session for the bill's outstanding amount (the server's figure)."""
    try:
        return payments.create_checkout(_caller(principal, device), body.bill_id, body.attempt_id)
    except PaymentProblem as problem:
        raise _fail(problem) from None


@router.post("/confirm", response_model=ConfirmOut, dependencies=[Depends(check_versions)])
def confirm_checkout(
    body: ConfirmIn,
    principal: Annotated[Principal, _CASHIER],
    device: Annotated[Device, Depends(current_device)],
    payments: Annotated[StripePayments, Depends(get_payments)],
) -> dict[str, Any]:
    """Ask Stripe how the session ended; records the payment if this is the first to know."""
    try:
        return payments.confirm(_caller(principal, device), body.session_id, body.outcome)
    except PaymentProblem as problem:
        raise _fail(problem) from None


@router.post("/refunds", response_model=RefundOut, dependencies=[Depends(check_versions)])
def refund_payment(
    body: RefundIn,
    principal: Annotated[Principal, _CASHIER],
    device: Annotated[Device, Depends(current_device)],
    payments: Annotated[StripePayments, Depends(get_payments)],
) -> dict[str, Any]:
    try:
        return payments.refund(
            _caller(principal, device),
            body.payment_id,
            body.amount_minor,
            body.reason,
            body.request_id,
        )
    except PaymentProblem as problem:
        raise _fail(problem) from None


class ReviewItem(BaseModel):
    attempt_id: str
    bill_id: str
    invoice_number: str
    session_id: str
    amount_minor: int
    currency: str
    payment_id: str | None
    refund_payment_id: str | None
    note: str
    created_at: str


@router.get("/review", response_model=list[ReviewItem], dependencies=[Depends(check_versions)])
def checkouts_needing_review(
    principal: Annotated[Principal, _ADMIN],
    payments: Annotated[StripePayments, Depends(get_payments)],
) -> list[dict[str, Any]]:
    """Online payments an admin must review: money that arrived for a settled bill (and
    whether its refund went through), or Stripe reports that did not match the bill."""
    return payments.needing_review(principal.clinic_id)


@router.post("/webhook", include_in_schema=True)
async def stripe_webhook(
    request: Request, payments: Annotated[StripePayments, Depends(get_payments)]
) -> JSONResponse:
    """Stripe's events. The body is verified exactly as received (no JSON parsing first)."""
    payload = await request.body()
    signature = request.headers.get("Stripe-Signature")
    try:
        result = await run_in_threadpool(payments.handle_webhook, payload, signature)
    except PaymentProblem as problem:
        return JSONResponse({"detail": str(problem)}, status_code=problem.status)
    return JSONResponse(result)


_CLOSE_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Clinic Desk</title></head>"
    "<body><p>{text}</p></body></html>"
)


@router.get("/return/success", response_class=HTMLResponse, include_in_schema=False)
def return_success() -> str:
    return _CLOSE_PAGE.format(text="Payment finished. You can close this window.")


@router.get("/return/cancel", response_class=HTMLResponse, include_in_schema=False)
def return_cancel() -> str:
    return _CLOSE_PAGE.format(text="Payment cancelled. You can close this window.")
