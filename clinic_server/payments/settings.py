"""Stripe settings (environment prefix ``CLINIC_STRIPE_``), read only on the server.

The secret key and webhook secret never leave this process: desks get a session URL, never
a key. ``api_base`` points the official library at the local stand-in for tests and demos;
unset, the library talks to ``https://api.stripe.com``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class StripeSettingsError(Exception):
    """The Stripe settings cannot be used (the message names the setting)."""


class StripeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLINIC_STRIPE_", extra="ignore")

    secret_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    # http://127.0.0.1:12111 for the stand-in; None means Stripe itself.
    api_base: str | None = None
    # The clinic server's public https address; success and cancel URLs live under it.
    public_url: str | None = None
    # Stripe allows 30 minutes to 24 hours; DESIGN.md section 7 wants "within the hour".
    checkout_minutes: int = Field(default=35, ge=31, le=60)
    # Webhooks older than this are refused as replays; newer than now + skew as forged.
    webhook_tolerance_seconds: int = Field(default=300, ge=30, le=3600)
    webhook_future_skew_seconds: int = Field(default=30, ge=0, le=300)

    @property
    def configured(self) -> bool:
        return bool(self.secret_key and self.webhook_secret and self.public_url)

    @property
    def live(self) -> bool:
        """Whether the key is a live-mode key (sessions must then say ``livemode``)."""
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        return key.startswith(("sk_live_", "rk_live_"))

    def public_base(self) -> str:
        return (self.public_url or "").rstrip("/")

    def check(self) -> None:
        """Refuse settings that would leak data or point money at the wrong place."""
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme != "https" or not parts.hostname:
                raise StripeSettingsError(
                    "CLINIC_STRIPE_PUBLIC_URL must be the server's https:// address."
                )
        if self.api_base is not None:
            parts = urlsplit(self.api_base)
            local = parts.hostname in ("127.0.0.1", "localhost", "::1")
            if parts.scheme != "https" and not (parts.scheme == "http" and local):
                raise StripeSettingsError(
                    "CLINIC_STRIPE_API_BASE must be https, or http on this machine (stand-in)."
                )
            if self.live:
                raise StripeSettingsError(
                    "A live Stripe key cannot be used with CLINIC_STRIPE_API_BASE."
                )
