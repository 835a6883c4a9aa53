"""``python -m tools.stripe_standin --port P --webhook-url URL --webhook-secret S``.

Runs the stand-in in the foreground for a demo; point the clinic server at it with
``CLINIC_STRIPE_API_BASE=http://127.0.0.1:P`` (see docs/stripe.md).
"""

from __future__ import annotations

import argparse
import signal
import threading

from tools.stripe_standin.server import StripeStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stripe_standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", default=None, help="where to POST signed events")
    parser.add_argument("--webhook-secret", default="whsec_standin")
    args = parser.parse_args(argv)
    standin = StripeStandin(
        host=args.host,
        port=args.port,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    ).start()
    print(f"Stripe stand-in listening on {standin.base_url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
