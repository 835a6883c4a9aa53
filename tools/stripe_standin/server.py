"""A local stand-in for the slice of Stripe's API that Clinic Desk uses.

Tests and demos point the official ``stripe`` library at it
(``stripe.StripeClient(key, base_addresses={"api": standin.base_url})``), so the code under
test is exactly the code that talks to Stripe in production. It speaks the same wire format:

- ``POST /v1/checkout/sessions`` (form-encoded, nested ``line_items[0][price_data][...]``,
  ``metadata[...]``, ``payment_intent_data[metadata][...]``), ``GET /v1/checkout/sessions/{id}``,
  ``POST /v1/checkout/sessions/{id}/expire``, ``GET /v1/payment_intents/{id}``,
  ``POST /v1/refunds``; ``Idempotency-Key`` replays the first answer and refuses a key reused
  with other parameters, as Stripe does; errors use Stripe's ``{"error": {...}}`` shape.
- ``GET /c/pay/{id}``: a checkout page with a pay button (``id="pay"``) and a cancel link
  (``id="cancel"``) that redirect to ``success_url`` (``{CHECKOUT_SESSION_ID}`` substituted)
  or ``cancel_url``.
- Webhooks: ``checkout.session.completed`` after a payment and ``checkout.session.expired``
  after expiry, POSTed with ``Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of "t.payload">``,
  the real scheme, so ``stripe.Webhook.construct_event`` verifies them.

Everything it received is kept in :attr:`StripeStandin.requests`, so a test can assert on
exactly what would have left the clinic.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

API_VERSION = "2025-03-31.basil"
MIN_EXPIRY_SECONDS = 30 * 60  # Stripe refuses expires_at less than 30 minutes ahead ...
MAX_EXPIRY_SECONDS = 24 * 60 * 60  # ... or more than 24 hours ahead.


class StripeError(Exception):
    """An API error answered in Stripe's JSON error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message, "param": param, "code": code}}


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0][c]=v``) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        if not parts:
            continue
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    """Dicts keyed ``"0"``, ``"1"``, ... become lists, as Stripe reads them."""
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def _int(params: dict[str, Any], name: str, where: str | None = None) -> int:
    value = params.get(name)
    label = where or name
    if value is None:
        raise StripeError(400, f"Missing required param: {label}.", param=label)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", param=label) from None


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` (Stripe's v1 scheme)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret.encode("utf-8"), f"{stamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={stamp},v1={digest}"


@dataclass
class RecordedRequest:
    """One API call as it arrived (the raw body too, to check nothing private leaked)."""

    method: str
    path: str
    params: dict[str, Any]
    raw_body: str
    idempotency_key: str | None
    status: int = 0


@dataclass
class Delivery:
    """One webhook delivery attempt and the server's answer (0 = connection failed)."""

    event_id: str
    event_type: str
    status: int


@dataclass
class StripeStandin:
    """The stand-in server. ``start()`` serves on a thread; ``stop()`` shuts it down.

    ``auto_deliver=False`` keeps webhook events queued until :meth:`deliver` is called, so a
    test can choose whether the desk's confirm or the webhook arrives first.
    """

    host: str = "127.0.0.1"
    port: int = 0
    webhook_url: str | None = None
    webhook_secret: str = "whsec_standin"  # a test secret, not a credential
    auto_deliver: bool = True
    webhook_retries: int = 3
    clock_offset: float = 0.0
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    pending_events: list[str] = field(default_factory=list)
    _idempotency: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = field(
        default_factory=dict
    )
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    # ----------------------------------------------------------------------------- running

    @property
    def base_url(self) -> str:
        """Where the ``stripe`` library's ``api`` base address should point."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> StripeStandin:
        """Bind (port 0 picks a free one) and serve on a daemon thread; sweep expiries."""
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._stopping.clear()
        serve = threading.Thread(target=self._server.serve_forever, daemon=True)
        sweep = threading.Thread(target=self._sweep, daemon=True)
        self._threads = [serve, sweep]
        serve.start()
        sweep.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    def _sweep(self) -> None:
        """Expire sessions whose time has passed, as Stripe does, even if nobody asks."""
        while not self._stopping.wait(0.5):
            with self._lock:
                ids = list(self.sessions)
            for session_id in ids:
                self._expire_if_due(session_id)

    # --------------------------------------------------------------------------- behaviour

    def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate like Stripe does for the fields we use, then open a session."""
        mode = params.get("mode")
        if mode != "payment":
            raise StripeError(400, "Only mode=payment is supported here.", param="mode")
        for name in ("success_url", "cancel_url"):
            url = str(params.get(name) or "")
            if not url.startswith(("https://", "http://")):
                raise StripeError(400, f"Not a valid URL: {name}", param=name)
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeError(400, "Missing required param: line_items.", param="line_items")
        total = 0
        currencies: set[str] = set()
        for index, item in enumerate(items):
            where = f"line_items[{index}]"
            price = item.get("price_data") if isinstance(item, dict) else None
            if not isinstance(price, dict):
                raise StripeError(400, f"{where}[price_data] is required here.", param=where)
            quantity = _int(item, "quantity", f"{where}[quantity]")
            unit = _int(price, "unit_amount", f"{where}[price_data][unit_amount]")
            if quantity < 1 or unit < 0:
                raise StripeError(400, "Amounts and quantities must be positive.", param=where)
            product = price.get("product_data")
            if not isinstance(product, dict) or not product.get("name"):
                raise StripeError(
                    400, "Missing product name.", param=f"{where}[price_data][product_data][name]"
                )
            currencies.add(str(price.get("currency", "")).lower())
            total += unit * quantity
        if len(currencies) != 1 or not re.fullmatch(r"[a-z]{3}", next(iter(currencies))):
            raise StripeError(400, "All line items need one valid currency.", param="line_items")
        created = self.now()
        expires_at = (
            _int(params, "expires_at") if "expires_at" in params else created + MAX_EXPIRY_SECONDS
        )
        if not MIN_EXPIRY_SECONDS <= expires_at - created <= MAX_EXPIRY_SECONDS:
            raise StripeError(
                400,
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
                "Checkout Session creation.",
                param="expires_at",
            )
        session_id = "cs_test_" + secrets.token_hex(16)
        intent_data = params.get("payment_intent_data") or {}
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": params["cancel_url"],
            "client_reference_id": params.get("client_reference_id"),
            "created": created,
            "currency": next(iter(currencies)),
            "customer": None,
            "expires_at": expires_at,
            "livemode": False,
            "metadata": dict(params.get("metadata") or {}),
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params["success_url"],
            "url": f"{self.base_url}/c/pay/{session_id}",
            "_line_items": items,
            "_intent_metadata": dict(intent_data.get("metadata") or {}),
        }
        with self._lock:
            self.sessions[session_id] = session
        return self.public(session)

    @staticmethod
    def public(obj: dict[str, Any]) -> dict[str, Any]:
        """The object as the API shows it (internal ``_`` keys removed)."""
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def get_session(self, session_id: str) -> dict[str, Any]:
        self._expire_if_due(session_id)
        with self._lock:
            session = self.sessions.get(session_id)
            if session is None:
                raise StripeError(
                    404,
                    f"No such checkout.session: '{session_id}'",
                    param="session",
                    code="resource_missing",
                )
            return session

    def pay(self, session_id: str) -> dict[str, Any]:
        """What the pay button does: the card is charged and the session completes."""
        session = self.get_session(session_id)
        with self._lock:
            if session["status"] != "open":
                raise StripeError(400, f"This Checkout Session is {session['status']}.")
            intent_id = "pi_" + secrets.token_hex(12)
            self.payment_intents[intent_id] = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": session["amount_total"],
                "amount_received": session["amount_total"],
                "currency": session["currency"],
                "livemode": False,
                "metadata": dict(session["_intent_metadata"]),
                "status": "succeeded",
                "latest_charge": "ch_" + secrets.token_hex(12),
                "_refunded": 0,
            }
            session.update(status="complete", payment_status="paid", payment_intent=intent_id)
        self.emit("checkout.session.completed", self.public(session))
        return session

    def expire(self, session_id: str) -> dict[str, Any]:
        """``POST /v1/checkout/sessions/{id}/expire``: only an open session can be expired."""
        session = self.get_session(session_id)
        with self._lock:
            if session["status"] != "open":
                raise StripeError(
                    400,
                    f"Only Checkout Sessions with a status in ['open'] can be expired. "
                    f"This Checkout Session has a status of '{session['status']}'.",
                )
            session["status"] = "expired"
        self.emit("checkout.session.expired", self.public(session))
        return session

    def _expire_if_due(self, session_id: str) -> None:
        with self._lock:
            session = self.sessions.get(session_id)
            due = session is not None and session["status"] == "open"
            due = due and session is not None and session["expires_at"] <= self.now()
            if not due or session is None:
                return
            session["status"] = "expired"
        self.emit("checkout.session.expired", self.public(session))

    def create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        intent_id = str(params.get("payment_intent") or "")
        with self._lock:
            intent = self.payment_intents.get(intent_id)
            if intent is None:
                raise StripeError(
                    404,
                    f"No such payment_intent: '{intent_id}'",
                    param="payment_intent",
                    code="resource_missing",
                )
            left = intent["amount_received"] - intent["_refunded"]
            amount = _int(params, "amount") if "amount" in params else left
            if amount <= 0 or amount > left:
                raise StripeError(
                    400,
                    f"Refund amount ({amount}) is greater than unrefunded amount ({left}).",
                    param="amount",
                    code="amount_too_large",
                )
            intent["_refunded"] += amount
            refund_id = "re_" + secrets.token_hex(12)
            refund = {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "currency": intent["currency"],
                "payment_intent": intent_id,
                "charge": intent["latest_charge"],
                "created": self.now(),
                "metadata": dict(params.get("metadata") or {}),
                "reason": params.get("reason"),
                "status": "succeeded",
            }
            self.refunds[refund_id] = refund
        self.emit("refund.created", refund)
        return refund

    # ----------------------------------------------------------------------------- webhooks

    def emit(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Make an event; deliver it now (background) or queue it for :meth:`deliver`."""
        event_id = "evt_" + secrets.token_hex(12)
        event: dict[str, Any] = {
            "id": event_id,
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        with self._lock:
            self.events[event_id] = event
            if not self.auto_deliver:
                self.pending_events.append(event_id)
                return event
        if self.webhook_url:
            threading.Thread(target=self._deliver_with_retries, args=(event,), daemon=True).start()
        return event

    def _deliver_with_retries(self, event: dict[str, Any]) -> None:
        delay = 0.5
        for _ in range(max(1, self.webhook_retries)):
            status = self.deliver(event["id"])
            if 200 <= status < 300 or self._stopping.is_set():
                return
            time.sleep(delay)
            delay *= 2

    def deliver(
        self,
        event_id: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        payload: str | None = None,
    ) -> int:
        """POST one event to the webhook URL, signed; returns the HTTP status (0 = no answer).

        ``timestamp``, ``secret`` and ``payload`` let a test forge stale, future, badly
        signed or altered deliveries.
        """
        with self._lock:
            event = self.events[event_id]
            if event_id in self.pending_events:
                self.pending_events.remove(event_id)
        if not self.webhook_url:
            raise RuntimeError("no webhook URL configured")
        body = payload if payload is not None else json.dumps(event, indent=2)
        signature = sign_payload(body, secret or self.webhook_secret, timestamp)
        try:
            answer = requests.post(
                self.webhook_url,
                data=body.encode("utf-8"),
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": signature,
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                },
                timeout=10,
            )
            status = answer.status_code
        except requests.RequestException:
            status = 0
        with self._lock:
            self.deliveries.append(Delivery(event_id, event["type"], status))
        return status

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events.values() if e["type"] == event_type]

    # ------------------------------------------------------------------------- idempotency

    def idempotent(
        self,
        api_key: str,
        key: str | None,
        fingerprint: str,
        run: Callable[[], tuple[int, dict[str, Any]]],
    ) -> tuple[int, dict[str, Any], bool]:
        """Run once per key; a replay gets the first answer, other parameters an error."""
        if not key:
            status, body = run()
            return status, body, False
        slot = (api_key, key)
        with self._lock:
            seen = self._idempotency.get(slot)
            if seen is not None:
                if seen[0] != fingerprint:
                    raise StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                        type_="idempotency_error",
                    )
                return seen[1], seen[2], True
            status, body = run()
            if status < 500:  # Stripe does not store answers to requests that hit a 5xx
                self._idempotency[slot] = (fingerprint, status, body)
            return status, body, False


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}"
        "button{font-size:1.2em;padding:.5em 2em}</style></head>"
        f"<body>{body}</body></html>"
    ).encode()


def _make_handler(standin: StripeStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "StripeStandin/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read :attr:`StripeStandin.requests` instead."""

        # --- plumbing
        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Request-Id", "req_" + secrets.token_hex(8))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: dict[str, Any], replayed: bool = False) -> None:
            headers = {"Idempotent-Replayed": "true"} if replayed else None
            self._send(status, json.dumps(obj).encode(), headers=headers)

        def _redirect(self, url: str) -> None:
            self._send(303, b"", "text/plain", {"Location": url})

        def _body(self) -> str:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length).decode("utf-8") if length else ""

        def _api_key(self) -> str:
            auth = self.headers.get("Authorization", "")
            key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
            if not key.startswith("sk_test_"):
                raise StripeError(
                    401, "Invalid API Key provided: the stand-in accepts sk_test_ keys only."
                )
            return key

        # --- API
        def _api(self, method: str) -> None:
            path = urlsplit(self.path).path
            raw = self._body() if method == "POST" else urlsplit(self.path).query
            params = decode_form(raw)
            record = RecordedRequest(method, path, params, raw, self.headers.get("Idempotency-Key"))
            with standin._lock:
                standin.requests.append(record)
            try:
                api_key = self._api_key()
                status, body, replayed = standin.idempotent(
                    api_key,
                    record.idempotency_key if method == "POST" else None,
                    f"{method} {path} {json.dumps(params, sort_keys=True)}",
                    lambda: self._route(method, path, params),
                )
            except StripeError as error:
                status, body, replayed = error.status, error.body, False
            record.status = status
            self._json(status, body, replayed)

        def _route(
            self, method: str, path: str, params: dict[str, Any]
        ) -> tuple[int, dict[str, Any]]:
            try:
                return 200, self._dispatch(method, path, params)
            except StripeError as error:
                return error.status, error.body

        def _dispatch(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
            if method == "POST" and path == "/v1/checkout/sessions":
                return standin.create_session(params)
            match = re.fullmatch(r"/v1/checkout/sessions/([\w]+)(/expire)?", path)
            if match and method == "GET" and not match.group(2):
                return standin.public(standin.get_session(match.group(1)))
            if match and method == "POST" and match.group(2):
                return standin.public(standin.expire(match.group(1)))
            match = re.fullmatch(r"/v1/payment_intents/([\w]+)", path)
            if match and method == "GET":
                with standin._lock:
                    intent = standin.payment_intents.get(match.group(1))
                if intent is None:
                    raise StripeError(404, "No such payment_intent", code="resource_missing")
                return standin.public(intent)
            if method == "POST" and path == "/v1/refunds":
                return standin.create_refund(params)
            match = re.fullmatch(r"/v1/refunds/([\w]+)", path)
            if match and method == "GET":
                with standin._lock:
                    refund = standin.refunds.get(match.group(1))
                if refund is None:
                    raise StripeError(404, "No such refund", code="resource_missing")
                return refund
            raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")

        # --- hosted checkout page
        def _checkout(self, method: str) -> bool:
            match = re.fullmatch(r"/c/pay/([\w]+)(/complete|/cancel)?", urlsplit(self.path).path)
            if not match:
                return False
            session_id, action = match.group(1), match.group(2)
            try:
                session = standin.get_session(session_id)
            except StripeError:
                self._send(404, _page("Not found", "<h1>Not found</h1>"), "text/html")
                return True
            if action == "/cancel":
                self._redirect(session["cancel_url"])
                return True
            if action == "/complete" and method == "POST":
                self._body()
                try:
                    standin.pay(session_id)
                except StripeError as error:
                    message = html.escape(str(error))
                    self._send(409, _page("Not paid", f"<p id='error'>{message}</p>"), "text/html")
                    return True
                self._redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))
                return True
            if session["status"] != "open":
                state = html.escape(session["status"])
                text = f"<h1>Checkout</h1><p id='state'>This session is {state}.</p>"
                self._send(410, _page("Checkout", text), "text/html")
                return True
            rows = "".join(
                f"<li>{html.escape(str(item['price_data']['product_data']['name']))}"
                f" &times; {html.escape(str(item['quantity']))}</li>"
                for item in session["_line_items"]
            )
            amount = f"{session['amount_total']} {html.escape(session['currency']).upper()}"
            body = (
                "<h1>Stripe stand-in checkout</h1>"
                f"<ul id='items'>{rows}</ul><p id='amount'>{amount} (minor units)</p>"
                f"<form method='post' action='/c/pay/{session_id}/complete'>"
                "<button id='pay' type='submit'>Pay</button></form>"
                f"<p><a id='cancel' href='/c/pay/{session_id}/cancel'>Cancel and go back</a></p>"
            )
            self._send(200, _page("Checkout", body), "text/html")
            return True

        def do_GET(self) -> None:
            if self.path.startswith("/v1/"):
                self._api("GET")
            elif not self._checkout("GET"):
                self._send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:
            if self.path.startswith("/v1/"):
                self._api("POST")
            elif not self._checkout("POST"):
                self._body()
                self._send(404, b'{"error": {"message": "not found"}}')

    return Handler
