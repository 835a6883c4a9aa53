"""Regenerate the local store's initial revision (0001) from the current models.

There is no release yet, so the schema still lives in one initial revision: after changing
a model, run ``.venv/bin/python scripts/regen_store_migration.py`` and commit the new
``0001_initial_schema.py``. Hand-written revisions after it (0002 patient search index, ...)
are kept. Once a release ships, stop using this and add a new revision instead (see
``clinic_desktop/store/migrations/README.md``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic import command

from clinic_desktop.store.migrate import SCRIPT_LOCATION, alembic_config

INITIAL = "0001"


def main() -> int:
    versions = SCRIPT_LOCATION / "versions"
    for old in versions.glob(f"{INITIAL}_*.py"):
        old.unlink()
    config = alembic_config()
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    command.revision(
        config, message="initial schema", autogenerate=True, rev_id=INITIAL, head="base"
    )
    made = sorted(versions.glob(f"{INITIAL}_*.py"))
    for path in made:  # the template leaves "Revises: " with a trailing blank
        lines = path.read_text(encoding="utf-8").splitlines()
        path.write_text("\n".join(line.rstrip() for line in lines) + "\n", encoding="utf-8")
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        subprocess.run([str(ruff), "format", "-q", *map(str, made)], check=False)  # noqa: S603
        subprocess.run(  # noqa: S603
            [str(ruff), "check", "--fix", "-q", *map(str, made)], check=False
        )
    print("wrote", *[p.name for p in made])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
