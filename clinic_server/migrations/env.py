"""Alembic environment: the shared synced tables plus the server-only ones."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from clinic_desktop.models import Base
from clinic_server.payments import tables as _stripe_tables  # noqa: F401  (on ServerBase)
from clinic_server.tables import ServerBase

target_metadata = [Base.metadata, ServerBase.metadata]
config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
