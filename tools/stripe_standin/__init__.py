"""Local stand-in for Stripe's Checkout, refund and webhook behaviour (tests and demos)."""

from tools.stripe_standin.server import (
    Delivery,
    RecordedRequest,
    StripeError,
    StripeStandin,
    decode_form,
    sign_payload,
)

__all__ = [
    "Delivery",
    "RecordedRequest",
    "StripeError",
    "StripeStandin",
    "decode_form",
    "sign_payload",
]
