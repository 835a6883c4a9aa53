"""Stripe Checkout on the server: the only place that holds the Stripe secret key.

``api.router`` is mounted by the app factory; ``service`` holds the rules (amount from the
server's bill, exactly-once recording, webhook checks); ``tables`` the server-only records.
"""
