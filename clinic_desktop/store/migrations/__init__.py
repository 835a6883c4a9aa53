"""Alembic scripts of the desk's local store (run programmatically by ``store.migrate``)."""
