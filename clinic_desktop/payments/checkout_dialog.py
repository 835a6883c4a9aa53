"""Stripe Checkout inside the billing window: the web-view dialog and the flow around it.

The one Qt module below ``views/`` (CONTRIBUTING.md allows ``payments/`` to use QtWebEngine).
The web view runs in an off-the-record profile (no cookies, cache or card data reach the
disk), its main frame may only show Stripe's pages (or the configured stand-in), and it stops
the moment Stripe redirects to the clinic server's success or cancel URL; those pages are
never loaded. The payment counts only once the server has confirmed it with Stripe.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

# QtWebEngine builds its view from Qt Quick items. Without the QtQuick bindings loaded,
# PySide6 6.12 crashes (segfault in shiboken's type heuristics) the first time an
# application-wide Python event filter, such as the idle lock's, sees one of those items.
import PySide6.QtQuick  # noqa: F401
from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWebEngineCore import (
    QWebEngineNewWindowRequest,
    QWebEnginePage,
    QWebEngineProfile,
    QWebEngineUrlRequestInfo,
    QWebEngineUrlRequestInterceptor,
)
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import QDialog, QLabel, QMessageBox, QVBoxLayout, QWidget

from clinic_desktop.payments.navigation import NavigationPolicy, Verdict, origin_of
from clinic_desktop.payments.online_payments import (
    STILL_OPEN,
    CheckoutStart,
    Confirmation,
    OnlinePaymentsClient,
    OnlinePaymentUnavailable,
    client_for_transport,
    ensure_pushed,
)
from clinic_desktop.services.errors import ClinicError
from clinic_desktop.services.money import format_amount
from clinic_desktop.sync.transport import Transport
from clinic_desktop.sync.worker import SyncWorker

logger = logging.getLogger(__name__)

# The stand-in's origin (``http://127.0.0.1:12111``) for demos and tests; unset in production,
# where only Stripe's own hosts may be shown.
STANDIN_ENV = "CLINIC_STRIPE_STANDIN_ORIGIN"


OFFLINE_REASON = (
    "Online payment needs the clinic server, which cannot be reached right now. "
    "Take cash or card; online payment comes back when the connection does."
)


def configured_extra_origins() -> frozenset[str]:
    """Origins besides Stripe's that the dialog may show, from the desk's environment."""
    raw = os.environ.get(STANDIN_ENV, "")
    return frozenset(origin_of(item.strip()) for item in raw.split(",") if item.strip())


class _Interceptor(QWebEngineUrlRequestInterceptor):
    """Second line of defence below the page: blocks any request the policy refuses.

    Qt 6 calls it on the UI thread, so it may report a success/cancel redirect it stopped.
    """

    reached = Signal(str)

    def __init__(self, policy: NavigationPolicy, parent: QObject | None) -> None:
        super().__init__(parent)
        self._policy = policy
        self.blocked: list[str] = []

    def interceptRequest(self, info: QWebEngineUrlRequestInfo) -> None:
        url = info.requestUrl().toString()
        main = info.resourceType() == QWebEngineUrlRequestInfo.ResourceType.ResourceTypeMainFrame
        if main:
            verdict = self._policy.navigation(url, main_frame=True)
            if verdict in (Verdict.SUCCESS, Verdict.CANCEL):
                info.block(True)
                self.reached.emit(verdict.value)
                return
        if self._policy.request(url, main_frame=main) is Verdict.BLOCK:
            self.blocked.append(origin_of(url))  # origins only: URLs may carry ids
            info.block(True)


class _CheckoutPage(QWebEnginePage):
    """Enforces the navigation policy and reports success/cancel before anything loads."""

    reached = Signal(str)

    def __init__(self, profile: QWebEngineProfile, policy: NavigationPolicy, parent: QObject):
        super().__init__(profile, parent)
        self._policy = policy
        self.refused: list[str] = []

    def acceptNavigationRequest(
        self, url: QUrl | str, type: QWebEnginePage.NavigationType, is_main_frame: bool
    ) -> bool:
        text = url.toString() if isinstance(url, QUrl) else str(url)
        verdict = self._policy.navigation(text, main_frame=is_main_frame)
        if verdict in (Verdict.SUCCESS, Verdict.CANCEL):
            self.reached.emit(verdict.value)
            return False
        if verdict is Verdict.BLOCK:
            self.refused.append(origin_of(text))
            return False
        return True


class CheckoutDialog(QDialog):
    """Shows one Checkout Session; ``outcome`` ends as one of ``success``, ``cancel``,
    ``closed`` (window closed), ``expired`` or ``blocked`` (the URL was not Stripe's)."""

    outcome_ready = Signal(str)

    def __init__(
        self,
        checkout: CheckoutStart,
        *,
        extra_origins: frozenset[str] | None = None,
        parent: QWidget | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent)
        self.checkout = checkout
        self.outcome: str | None = None
        self.setWindowTitle("Pay online (Stripe)")
        self.setAccessibleName("Stripe checkout")
        self.resize(520, 720)
        origins = configured_extra_origins() if extra_origins is None else extra_origins
        self.policy = NavigationPolicy(
            success_prefix=checkout.success_url_prefix,
            cancel_prefix=checkout.cancel_url_prefix,
            extra_origins=frozenset(origin_of(o) for o in origins),
        )
        # A profile without a storage name is off the record: nothing reaches the disk.
        # It is parented last (below), so the dialog deletes the page before the profile.
        self.profile = QWebEngineProfile()
        self.profile.setHttpCacheType(QWebEngineProfile.HttpCacheType.MemoryHttpCache)
        self.profile.setPersistentCookiesPolicy(
            QWebEngineProfile.PersistentCookiesPolicy.NoPersistentCookies
        )
        self.interceptor = _Interceptor(self.policy, None)
        self.profile.setUrlRequestInterceptor(self.interceptor)
        self.page = _CheckoutPage(self.profile, self.policy, self)
        self.page.newWindowRequested.connect(self._popup)
        # Queued: closing the dialog from inside Chromium's navigation callback crashes it.
        queued = Qt.ConnectionType.QueuedConnection
        self.page.reached.connect(self._finish, queued)
        self.interceptor.reached.connect(self._finish, queued)
        self.view = QWebEngineView(self)
        self.view.setPage(self.page)
        amount = format_amount(checkout.amount_minor, checkout.currency.upper())
        self.status = QLabel(f"Amount due: {amount}. The patient enters the card on Stripe.")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.view, 1)
        self.page.loadFinished.connect(self._loaded)
        self.page_loaded = False
        self.profile.setParent(self)
        self.interceptor.setParent(self)

        remaining_ms = int((checkout.expires_at - now()) * 1000)
        self._expiry = QTimer(self)
        self._expiry.setSingleShot(True)
        self._expiry.timeout.connect(lambda: self._finish("expired"))
        if remaining_ms <= 0:
            QTimer.singleShot(0, lambda: self._finish("expired"))
        else:
            self._expiry.start(min(remaining_ms, 2**31 - 1))

        if self.policy.navigation(checkout.url, main_frame=True) is not Verdict.ALLOW:
            QTimer.singleShot(0, lambda: self._finish("blocked"))
        else:
            self.page.load(QUrl(checkout.url))

    def _loaded(self, ok: bool) -> None:
        self.page_loaded = self.page_loaded or ok
        if not ok and self.outcome is None:
            self.status.setText(
                "The payment page did not load. Check the connection, or close this window "
                "and take another payment method."
            )

    def _popup(self, request: QWebEngineNewWindowRequest) -> None:
        """Pop-ups (terms, wallet help) open in the system browser, never in this profile."""
        url = request.requestedUrl()
        if url.scheme() == "https":
            QDesktopServices.openUrl(url)

    def _finish(self, outcome: str) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        self._expiry.stop()
        self.page.triggerAction(QWebEnginePage.WebAction.Stop)
        self.outcome_ready.emit(outcome)
        if outcome == "success":
            self.accept()
        else:
            super().reject()

    def reject(self) -> None:
        """Escape or the window's close button: the person gave up on this page."""
        self._finish("closed")


@dataclass(frozen=True)
class FlowOutcome:
    """How one "Pay online" ended, with the message for the cashier."""

    status: str  # paid | pending | cancelled | expired | failed | review | unavailable | refused
    message: str
    bill_id: str
    payment_id: str | None = None

    @property
    def paid(self) -> bool:
        return self.status == "paid"


class _Bridge(QObject):
    """Carries a worker thread's result back to the UI thread (queued signal)."""

    done = Signal(object, object)  # callback, future


class OnlinePaymentFlow(QObject):
    """One bill's online payment: ask the server, show Stripe, confirm with the server.

    Network calls run on a worker thread so the window never freezes. ``after_paid`` runs on
    the UI thread once the server recorded the payment (e.g. "pull changes now", so this desk
    shows the bill paid without waiting for the next long-poll).
    """

    finished = Signal(object)  # FlowOutcome
    dialog_opened = Signal(object)  # CheckoutDialog

    def __init__(
        self,
        client: OnlinePaymentsClient,
        *,
        parent_widget: QWidget | None = None,
        extra_origins: frozenset[str] | None = None,
        after_paid: Callable[[], None] | None = None,
        before_start: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(parent_widget)
        self._client = client
        self._before_start = before_start
        self._parent_widget = parent_widget
        self._extra_origins = extra_origins
        self._after_paid = after_paid
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-pay")
        self._bridge = _Bridge()
        self._bridge.done.connect(self._deliver)
        self.dialog: CheckoutDialog | None = None
        self.message_box: QMessageBox | None = None  # the last message shown (tests read it)
        self.busy = False
        self.bill_id = ""

    # --- worker plumbing
    def _in_background(self, work: Callable[[], Any], then: Callable[[Future[Any]], None]) -> None:
        future = self._pool.submit(work)
        future.add_done_callback(lambda f: self._bridge.done.emit(then, f))

    @staticmethod
    def _deliver(then: Callable[[Future[Any]], None], future: Future[Any]) -> None:
        then(future)

    def _end(self, outcome: FlowOutcome) -> None:
        self.busy = False
        self.finished.emit(outcome)

    # --- steps
    def start(self, bill_id: str) -> bool:
        """Begin paying ``bill_id`` online; False if a payment is already in progress."""
        if self.busy:
            return False
        self.busy = True
        self.bill_id = bill_id

        def begin() -> CheckoutStart:
            if self._before_start is not None:
                self._before_start(bill_id)  # e.g. wait until the bill has been pushed
            return self._client.start_checkout(bill_id)

        self._in_background(begin, self._opened)
        return True

    def _opened(self, future: Future[Any]) -> None:
        try:
            checkout: CheckoutStart = future.result()
        except ClinicError as error:
            status = "unavailable" if isinstance(error, OnlinePaymentUnavailable) else "refused"
            self._end(FlowOutcome(status, str(error), self.bill_id))
            return
        except Exception:  # a bug must not leave the cashier with a traceback or a stuck button
            logger.exception("online payment could not start")
            self._end(
                FlowOutcome("failed", f"Online payment could not start. {STILL_OPEN}", self.bill_id)
            )
            return
        dialog = CheckoutDialog(
            checkout, extra_origins=self._extra_origins, parent=self._parent_widget
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.outcome_ready.connect(lambda outcome: self._page_closed(checkout, outcome))
        self.dialog = dialog
        dialog.open()
        self.dialog_opened.emit(dialog)

    def _page_closed(self, checkout: CheckoutStart, outcome: str) -> None:
        self.dialog = None
        # Even after "cancel" the server is asked: the patient may have paid and then closed
        # the window, and an open session is expired so it cannot be paid later by mistake.
        reported = "cancel" if outcome == "blocked" else outcome
        self._in_background(
            lambda: self._client.confirm(checkout.session_id, reported),
            lambda future: self._confirmed(checkout, outcome, future),
        )

    def _confirmed(self, checkout: CheckoutStart, outcome: str, future: Future[Any]) -> None:
        bill = checkout.bill_id
        try:
            confirmation: Confirmation = future.result()
        except ClinicError:
            if outcome == "success":
                message = (
                    "The payment page has finished, but the clinic server cannot confirm the "
                    "payment right now. The bill stays open. The server records the payment "
                    "from Stripe's own notice when it can; if the patient pays another way "
                    "meanwhile, the online payment is refunded automatically."
                )
                self._end(FlowOutcome("unavailable", message, bill))
            else:
                self._end(FlowOutcome("cancelled", self._closed_message(outcome), bill))
            return
        except Exception:
            logger.exception("online payment confirmation failed")
            message = f"The online payment was not confirmed. {STILL_OPEN}"
            self._end(FlowOutcome("failed", message, bill))
            return
        if confirmation.paid:
            if self._after_paid is not None:
                try:
                    self._after_paid()
                except Exception:  # refreshing is a courtesy; the payment is already recorded
                    logger.warning("refresh after an online payment failed", exc_info=True)
            amount = format_amount(checkout.amount_minor, checkout.currency.upper())
            message = confirmation.message or f"Payment received online: {amount}."
            self._end(FlowOutcome("paid", message, bill, confirmation.payment_id))
            return
        if confirmation.status in ("cancelled", "expired") and not confirmation.message:
            message = self._closed_message(outcome)
        else:
            message = confirmation.message or self._closed_message(outcome)
        self._end(FlowOutcome(confirmation.status, message, bill, confirmation.payment_id))

    @staticmethod
    def _closed_message(outcome: str) -> str:
        if outcome == "expired":
            return f"The payment page expired before the patient paid. {STILL_OPEN}"
        if outcome == "blocked":
            return (
                "The payment page tried to show a site that is not Stripe, so it was stopped. "
                f"{STILL_OPEN}"
            )
        return f"Online payment was cancelled. {STILL_OPEN}"

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def show_outcome(parent: QWidget | None, outcome: FlowOutcome) -> QMessageBox:
    """The cashier's message for an outcome (non-blocking; plain text, never a traceback)."""
    box = QMessageBox(parent)
    box.setWindowTitle("Online payment")
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setIcon(QMessageBox.Icon.Information if outcome.paid else QMessageBox.Icon.Warning)
    box.setText(outcome.message)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def wait_in_background(work: Callable[[], Any]) -> Any:
    """Run ``work`` on a thread while a local event loop keeps the window painting; return
    its result or raise its exception (for short calls a dialog must wait for)."""
    bridge = _Bridge()
    loop = QEventLoop()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed back to the caller below
            box["error"] = exc
        finally:
            bridge.done.emit(None, None)

    bridge.done.connect(lambda *_: loop.quit(), Qt.ConnectionType.QueuedConnection)
    threading.Thread(target=run, name="online-pay-wait", daemon=True).start()
    loop.exec()
    if "error" in box:
        raise box["error"]
    return box.get("value")


class BillingWindowLike(Protocol):
    """What the wiring needs from the billing window (``views.billing.BillingWindow``)."""

    def set_online_payment_handler(self, handler: Callable[[Any, str], object]) -> None: ...

    def reload_bill(self) -> None: ...


class _RowsBridge(QObject):
    """Sync listeners run on the sync worker's thread; this hops to the UI thread."""

    changed = Signal(object)


def install_online_payments(
    window: BillingWindowLike,
    client: OnlinePaymentsClient,
    *,
    extra_origins: frozenset[str] | None = None,
    request_pull: Callable[[], None] | None = None,
    on_rows_changed: Callable[[Callable[[dict[str, list[str]]], None]], None] | None = None,
    on_status: Callable[[Callable[[Any], None]], None] | None = None,
    online: bool | None = None,
    before_start: Callable[[str], None] | None = None,
) -> OnlinePaymentFlow:
    """Wire "Pay online (Stripe)" in the billing window to the checkout flow.

    ``request_pull`` asks the sync client to pull now (the server's payment row is what
    turns the bill paid on this desk); ``on_rows_changed`` is the sync worker's
    ``events.on_rows_changed``, so the open bill reloads when its payment arrives;
    ``on_status`` is its ``events.on_status``: while the server is unreachable the button is
    off with the reason (``online`` gives the state at the start).
    """
    parent = window if isinstance(window, QWidget) else None
    flow = OnlinePaymentFlow(
        client,
        parent_widget=parent,
        extra_origins=extra_origins,
        after_paid=request_pull,
        before_start=before_start,
    )

    def handler(_window: object, bill_id: str) -> None:
        if not flow.start(bill_id):
            flow.message_box = show_outcome(
                parent,
                FlowOutcome("busy", "An online payment is already in progress.", bill_id),
            )

    def finished(outcome: FlowOutcome) -> None:
        window.reload_bill()
        flow.message_box = show_outcome(parent, outcome)

    flow.finished.connect(finished)
    window.set_online_payment_handler(handler)

    def refund_handler(_window: object, payment_id: str, amount_minor: int, reason: str) -> str:
        result = wait_in_background(lambda: client.refund(payment_id, amount_minor, reason))
        if request_pull is not None:
            request_pull()
        if result.status == "refunded":
            amount = format_amount(result.amount_minor, result.currency.upper())
            return f"Refunded {amount} to the patient's card through Stripe."
        return result.message or "Stripe accepted the refund; it is recorded when it completes."

    set_refund = getattr(window, "set_online_refund_handler", None)
    if set_refund is not None:
        set_refund(refund_handler)
    if on_rows_changed is not None:
        bridge = _RowsBridge(flow)

        def arrived(changes: object) -> None:
            if isinstance(changes, dict) and ({"payment", "bill"} & set(changes)):
                window.reload_bill()

        bridge.changed.connect(arrived)
        on_rows_changed(bridge.changed.emit)
    available = getattr(window, "set_online_payment_available", None)
    if available is not None:
        if online is not None:
            available(online, OFFLINE_REASON)
        if on_status is not None:
            status_bridge = _RowsBridge(flow)
            status_bridge.changed.connect(
                lambda status: available(bool(getattr(status, "online", False)), OFFLINE_REASON)
            )
            on_status(status_bridge.changed.emit)
    return flow


def attach_to_billing_window(
    window: BillingWindowLike,
    transport: Transport,
    worker: SyncWorker | None = None,
    *,
    extra_origins: frozenset[str] | None = None,
) -> OnlinePaymentFlow:
    """The one call the application makes when it opens the billing page on a desk that
    is connected to a server: online payment uses the sync transport's credentials, and the
    sync worker's status and pulled rows keep the button and the open bill current."""
    return install_online_payments(
        window,
        client_for_transport(transport),
        extra_origins=extra_origins,
        on_rows_changed=worker.events.on_rows_changed if worker is not None else None,
        on_status=worker.events.on_status if worker is not None else None,
        online=worker.status.online if worker is not None else None,
        before_start=(
            (lambda bill_id: ensure_pushed(worker.desk, bill_id, poke=worker.poke))
            if worker is not None
            else None
        ),
    )


def attach_if_connected(window: BillingWindowLike, app: object) -> OnlinePaymentFlow | None:
    """For the shell: wire online payment into a new billing page when the application's
    sync bridge (``app.sync``: ``connected``, ``transport``, ``worker``) has a server;
    a standalone desk keeps the button off with its "not set up" reason."""
    sync = getattr(app, "sync", None)
    if sync is None or not getattr(sync, "connected", False):
        return None
    return attach_to_billing_window(window, sync.transport, getattr(sync, "worker", None))
