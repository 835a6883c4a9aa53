"""Runs the local store's Alembic migrations from code (no alembic.ini at run time).

The scripts are found next to this module, so the same code works from a source tree, an
installed wheel and a PyInstaller bundle (which must ship ``store/migrations`` as data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave alone what raw DDL made (the FTS5 patient index, its shadow tables, indexes)."""
    return not (type_ in ("table", "index") and reflected and compare_to is None)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at our scripts, optionally bound to an open connection."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The revision the code expects the store to be at."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no store migrations found in " + str(SCRIPT_LOCATION))
    return head


def known_revisions() -> set[str]:
    """Every revision this version of the application knows how to upgrade from."""
    scripts = ScriptDirectory.from_config(alembic_config())
    return {script.revision for script in scripts.walk_revisions()}


def current_revision(connection: Connection) -> str | None:
    """The store's revision, or ``None`` for a store never migrated (a new file)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(connection: Connection) -> None:
    """Apply every pending revision inside the caller's transaction."""
    command.upgrade(alembic_config(connection), "head")
