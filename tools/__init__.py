"""Developer tools that are not part of the installed application (e.g. the Stripe stand-in)."""
