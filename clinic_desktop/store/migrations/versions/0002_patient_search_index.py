"""patient search index (FTS5 tables and triggers from store/patient_index.py)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Runs the statements of :data:`clinic_desktop.store.patient_index.PATIENT_INDEX_DDL`, which
the patient search service owns. They are idempotent and rebuild the index from ``patient``.
Before the first release this revision imports them live; once a release ships, a change to
the index must come as a new revision (freeze a copy of the statements there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from clinic_desktop.store.patient_index import PATIENT_INDEX_DDL

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CREATED = re.compile(
    r"CREATE\s+(VIRTUAL\s+TABLE|TABLE|TRIGGER|INDEX)\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE
)


def upgrade() -> None:
    bind = op.get_bind()
    for statement in PATIENT_INDEX_DDL:
        bind.execute(sa.text(statement))


def downgrade() -> None:
    bind = op.get_bind()
    made = [m.groups() for s in PATIENT_INDEX_DDL if (m := _CREATED.search(s))]
    # Reverse order of creation: triggers, indexes, the vocab table before its FTS table.
    for kind, name in reversed(made):
        word = kind.split()[-1].upper()
        bind.execute(sa.text(f"DROP {word} IF EXISTS {name}"))
