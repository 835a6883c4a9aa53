"""Where the Checkout web view may go (no Qt here, so the rules are unit-testable).

DESIGN.md section 7: the main frame only ever shows Stripe's own pages (or the local stand-in
in tests and demos); 3-D Secure challenges come from the card issuer's site inside an iframe,
so sub-frames may load any ``https`` page; the success and cancel URLs on the clinic server
are recognised by prefix and never loaded; pop-ups go to the system browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

# Stripe serves Checkout and its scripts from these domains (and their sub-domains).
STRIPE_DOMAINS = ("stripe.com", "stripe.network")


class Verdict(Enum):
    """What the dialog does with a navigation or a request."""

    ALLOW = "allow"
    BLOCK = "block"
    SUCCESS = "success"  # Stripe sent the browser to our success URL: stop and confirm
    CANCEL = "cancel"  # the person chose to go back: stop, the bill stays open


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` in lower case (the unit the allow-list speaks)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}"


def is_stripe_host(url: str) -> bool:
    """True for ``https`` URLs on Stripe's own domains."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() != "https" or not host:
        return False
    return any(host == domain or host.endswith("." + domain) for domain in STRIPE_DOMAINS)


@dataclass(frozen=True)
class NavigationPolicy:
    """The allow-list for one checkout.

    ``extra_origins`` holds the stand-in's origin (``http://127.0.0.1:12111``) when the server
    says it is using one; it is empty in production.
    """

    success_prefix: str
    cancel_prefix: str
    extra_origins: frozenset[str] = frozenset()

    def _allowed_page(self, url: str) -> bool:
        return is_stripe_host(url) or origin_of(url) in self.extra_origins

    def navigation(self, url: str, *, main_frame: bool) -> Verdict:
        """Verdict for a navigation (link, form post, redirect) in the main frame or a frame."""
        if self.success_prefix and url.startswith(self.success_prefix):
            return Verdict.SUCCESS
        if self.cancel_prefix and url.startswith(self.cancel_prefix):
            return Verdict.CANCEL
        if self._allowed_page(url):
            return Verdict.ALLOW
        if not main_frame and urlsplit(url).scheme.lower() in ("https", "about", "data"):
            return Verdict.ALLOW  # 3-D Secure challenge pages of the card's bank
        return Verdict.BLOCK

    def request(self, url: str, *, main_frame: bool) -> Verdict:
        """Verdict for any network request the page makes (scripts, images, XHR, frames).

        Main-frame requests follow :meth:`navigation`; everything else may come from any
        ``https`` host (Stripe loads fonts, fraud signals and wallets from elsewhere), but
        never over plain ``http`` except from an explicitly allowed origin (the stand-in).
        """
        if main_frame:
            verdict = self.navigation(url, main_frame=True)
            # The success/cancel pages are never fetched: navigation stops before that.
            return Verdict.ALLOW if verdict is Verdict.ALLOW else Verdict.BLOCK
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("https", "wss", "data", "blob") or self._allowed_page(url):
            return Verdict.ALLOW
        return Verdict.BLOCK
