"""The desk's side of Stripe Checkout: calls to the clinic server (no Qt, no Stripe key).

The desk never talks to Stripe's API and never holds a Stripe key (DESIGN.md section 7): it
asks the clinic server for a Checkout Session, shows the session's page, and asks the server
to confirm. Every failure becomes a :class:`ClinicError` whose message a cashier can act on;
whatever happens, the bill stays payable by cash or card until the server has recorded a
payment.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from sqlalchemy import func, select

from clinic_desktop.models import OutboxEntry
from clinic_desktop.services.context import Desk
from clinic_desktop.services.errors import ClinicError
from clinic_desktop.sync import protocol
from clinic_desktop.sync.apply import PENDING
from clinic_desktop.sync.transport import Transport

API_PREFIX = "/api/v1/payments/stripe"
DEFAULT_TIMEOUT = 15.0

STILL_OPEN = "The bill is still open: you can take cash or card, or try online payment again."


class OnlinePaymentUnavailable(ClinicError):
    """The clinic server cannot be reached (offline, or it is down)."""


class OnlinePaymentRefused(ClinicError):
    """The server answered but would not do it (bill already paid, not synced yet, ...)."""


@dataclass(frozen=True)
class CheckoutStart:
    """A Checkout Session the server opened for a bill: what the dialog needs to show it."""

    session_id: str
    url: str
    expires_at: int
    bill_id: str
    attempt_id: str
    amount_minor: int
    currency: str
    success_url_prefix: str
    cancel_url_prefix: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckoutStart:
        return cls(
            session_id=str(data["session_id"]),
            url=str(data["url"]),
            expires_at=int(data["expires_at"]),
            bill_id=str(data["bill_id"]),
            attempt_id=str(data["attempt_id"]),
            amount_minor=int(data["amount_minor"]),
            currency=str(data["currency"]),
            success_url_prefix=str(data["success_url_prefix"]),
            cancel_url_prefix=str(data["cancel_url_prefix"]),
        )


@dataclass(frozen=True)
class Confirmation:
    """The server's verdict on a checkout. ``status`` is one of:

    ``paid`` (recorded, exactly once), ``pending`` (Stripe has not finished; the webhook will
    record it), ``cancelled``, ``expired``, ``failed``, ``review`` (money arrived for a bill that
    was settled meanwhile: refunded or flagged for an admin).
    """

    status: str
    bill_id: str
    bill_status: str
    payment_id: str | None
    message: str

    @property
    def paid(self) -> bool:
        return self.status == "paid"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Confirmation:
        return cls(
            status=str(data["status"]),
            bill_id=str(data.get("bill_id") or ""),
            bill_status=str(data.get("bill_status") or ""),
            payment_id=(str(data["payment_id"]) if data.get("payment_id") else None),
            message=str(data.get("message") or ""),
        )


@dataclass(frozen=True)
class RefundResult:
    status: str  # refunded | pending
    refund_payment_id: str | None
    amount_minor: int
    currency: str
    message: str


class OnlinePaymentsClient:
    """Thin HTTP client for the server's payment endpoints.

    ``auth_headers`` returns the headers of the signed-in session (``Authorization`` and the
    protocol headers), so this client shares the sync client's credentials instead of
    keeping its own.
    """

    def __init__(
        self,
        server_url: str,
        auth_headers: Callable[[], Mapping[str, str]],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        http: requests.Session | None = None,
        allow_insecure: bool = False,
        verify: bool | str = True,
    ) -> None:
        if server_url.strip().lower().startswith("http://") and not allow_insecure:
            raise ValueError(
                "The clinic server's address must be https:// (plain http only in tests)."
            )
        self._base = server_url.rstrip("/") + API_PREFIX
        self._verify = verify
        self._auth_headers = auth_headers
        self._timeout = timeout
        self._http = http or requests.Session()

    def _post(self, path: str, body: dict[str, Any], *, doing: str) -> dict[str, Any]:
        try:
            answer = self._http.post(
                self._base + path,
                json=body,
                headers=dict(self._auth_headers()),
                timeout=self._timeout,
                verify=self._verify,
            )
        except requests.RequestException:
            raise OnlinePaymentUnavailable(
                f"The clinic server cannot be reached, so {doing} did not happen. {STILL_OPEN}"
            ) from None
        try:
            data = answer.json()
        except ValueError:
            data = {}
        if answer.status_code >= 500:
            detail = data.get("detail") if isinstance(data, dict) else None
            if answer.status_code in (502, 503) and isinstance(detail, str) and detail:
                raise OnlinePaymentUnavailable(f"{detail.rstrip('.')}. {STILL_OPEN}")
            raise OnlinePaymentUnavailable(
                f"The clinic server had a problem ({answer.status_code}) and {doing} did not "
                f"happen. {STILL_OPEN}"
            )
        if answer.status_code >= 400:
            detail = data.get("detail") if isinstance(data, dict) else None
            if not isinstance(detail, str) or not detail:
                detail = f"The clinic server refused the request ({answer.status_code})."
            if answer.status_code in (401, 403):
                detail = f"{detail} Sign in again, or ask an admin for the billing role."
            raise OnlinePaymentRefused(detail)
        if not isinstance(data, dict):
            raise OnlinePaymentUnavailable(
                f"The clinic server gave an answer this desk does not understand. {STILL_OPEN}"
            )
        return data

    def start_checkout(self, bill_id: str, attempt_id: str | None = None) -> CheckoutStart:
        """Ask the server to open a Checkout Session for the bill's outstanding amount.

        ``attempt_id`` makes a retried request (lost answer) reuse the same session instead of
        opening a second one; a new attempt gets a new id.
        """
        body = {"bill_id": bill_id, "attempt_id": attempt_id or str(uuid.uuid4())}
        data = self._post("/checkout-sessions", body, doing="opening the payment page")
        try:
            return CheckoutStart.from_json(data)
        except (KeyError, TypeError, ValueError):
            raise OnlinePaymentUnavailable(
                f"The clinic server gave an incomplete answer. {STILL_OPEN}"
            ) from None

    def confirm(self, session_id: str, outcome: str) -> Confirmation:
        """Tell the server how the page ended (``success``, ``cancel``, ``closed``, ``expired``);
        the server asks Stripe itself and answers what really happened."""
        data = self._post(
            "/confirm",
            {"session_id": session_id, "outcome": outcome},
            doing="confirming the online payment",
        )
        try:
            return Confirmation.from_json(data)
        except (KeyError, TypeError, ValueError):
            raise OnlinePaymentUnavailable(
                "The clinic server gave an incomplete answer about the online payment."
            ) from None

    def refund(self, payment_id: str, amount_minor: int | None, reason: str) -> RefundResult:
        """Refund (part of) a Stripe payment through Stripe; the server records it.

        The request id is derived from what is asked, so pressing "Refund" again after a
        lost answer replays the same refund at Stripe instead of giving the money twice.
        """
        request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{payment_id}|{amount_minor}|{reason}"))
        body: dict[str, Any] = {
            "payment_id": payment_id,
            "reason": reason,
            "request_id": request_id,
        }
        if amount_minor is not None:
            body["amount_minor"] = amount_minor
        data = self._post("/refunds", body, doing="the refund")
        return RefundResult(
            status=str(data.get("status", "")),
            refund_payment_id=(
                str(data["refund_payment_id"]) if data.get("refund_payment_id") else None
            ),
            amount_minor=int(data.get("amount_minor") or 0),
            currency=str(data.get("currency") or ""),
            message=str(data.get("message") or ""),
        )


def client_for_transport(
    transport: Transport, *, timeout: float = DEFAULT_TIMEOUT, verify: bool | str = True
) -> OnlinePaymentsClient:
    """A client that signs its calls like the desk's sync transport: the signed-in person's
    current access token and this workstation's device credential (read at each call, so a
    refreshed token is used at once)."""

    def headers() -> dict[str, str]:
        out = dict(protocol.version_headers())
        tokens = transport.tokens
        if tokens is not None:
            out["Authorization"] = f"Bearer {tokens.access_token}"
        credential = transport.credential
        if credential is not None:
            out[protocol.HEADER_DEVICE_ID] = credential.device_id
            out[protocol.HEADER_DEVICE_SECRET] = credential.secret
        return out

    return OnlinePaymentsClient(
        transport.base_url,
        headers,
        timeout=timeout,
        allow_insecure=transport.base_url.startswith("http://"),
        verify=verify,
    )


def ensure_pushed(
    desk: Desk,
    bill_id: str,
    *,
    poke: Callable[[], None] | None = None,
    timeout: float = 10.0,
    interval: float = 0.1,
) -> None:
    """Wait until this desk has sent the bill's latest change to the server.

    The server charges from its own copy of the bill, so a bill issued a moment ago must
    have arrived there first (otherwise it still looks like a draft to the server). ``poke``
    asks the sync worker to push now. Raises :class:`OnlinePaymentRefused` after
    ``timeout`` seconds with a message the cashier can act on.
    """
    deadline = time.monotonic() + timeout
    while True:
        with desk.reading() as session:
            waiting = session.scalar(
                select(func.count())
                .select_from(OutboxEntry)
                .where(OutboxEntry.row_id == bill_id, OutboxEntry.state == PENDING)
            )
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise OnlinePaymentRefused(
                "This bill has not reached the clinic server yet (the desk is still sending "
                f"it). Try again in a moment. {STILL_OPEN}"
            )
        if poke is not None:
            poke()
        time.sleep(interval)
