"""Regenerate the local store's initial revision (0001) from the current models.

There is no release yet, so the schema still lives in one initial revision: after changing
a model, run ``.venv/bin/python scripts/regen_store_migration.py`` and commit the new
``0001_initial_schema.py``. Hand-written revisions after it (0002 patient search index, ...)
are kept. ``tests/unit/test_store.py`` fails while the revisions are behind the models. Once
a release ships, stop using this and add a new revision instead (see
``clinic_desktop/store/migrations/README.md``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

from clinic_desktop.store.migrate import SCRIPT_LOCATION

INITIAL = "0001"


def main() -> int:
    versions = SCRIPT_LOCATION / "versions"
    with tempfile.TemporaryDirectory() as tmp:
        # Autogenerate in a copy holding no revisions, so it compares the models with an empty
        # database and the later revisions (which need 0001) never get in the way.
        scripts = Path(tmp) / "migrations"
        shutil.copytree(SCRIPT_LOCATION, scripts, ignore=shutil.ignore_patterns("versions"))
        (scripts / "versions").mkdir()
        config = Config()
        config.set_main_option("script_location", str(scripts))
        config.set_main_option("path_separator", "os")
        config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
        command.revision(config, message="initial schema", autogenerate=True, rev_id=INITIAL)
        made = sorted((scripts / "versions").glob(f"{INITIAL}_*.py"))
        if len(made) != 1:
            print("autogenerate made", [p.name for p in made], file=sys.stderr)
            return 1
        for old in versions.glob(f"{INITIAL}_*.py"):
            old.unlink()
        target = versions / made[0].name
        lines = made[0].read_text(encoding="utf-8").splitlines()
        # the template leaves "Revises: " with a trailing blank
        target.write_text("\n".join(line.rstrip() for line in lines) + "\n", encoding="utf-8")
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        subprocess.run([str(ruff), "format", "-q", str(target)], check=False)  # noqa: S603
        subprocess.run([str(ruff), "check", "--fix", "-q", str(target)], check=False)  # noqa: S603
    print("wrote", target.relative_to(SCRIPT_LOCATION.parent.parent.parent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
