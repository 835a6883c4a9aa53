"""Alembic environment for the desk's local store.

Run programmatically by :mod:`clinic_desktop.store.migrate`, which hands over an open
connection in ``config.attributes["connection"]``. Without one (autogenerate from
``scripts/regen_store_migration.py``) it compares against an empty in-memory SQLite database.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.types import TypeDecorator

from clinic_desktop.models import Base, LocalBase
from clinic_desktop.store.migrate import include_object

target_metadata = [Base.metadata, LocalBase.metadata]


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Write our column types as their plain SQL types, so old revisions never import models."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=include_object,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        _run(conn)


run_migrations()
