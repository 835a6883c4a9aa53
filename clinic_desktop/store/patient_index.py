"""SQLite FTS5 index behind patient search (desk only; the server never searches this way).

Why it looks like this:

- Two contentless FTS5 tables (``content=''`` with ``contentless_delete=1``): the patient row
  stays the one copy of the data, and triggers on ``patient`` keep the index in step with
  every write, whether it comes from a service or from the sync client applying pulled rows.
- ``patient_name_fts`` tokenizes names with ``unicode61`` (case folding, diacritics removed,
  letters, digits, marks and symbols as token characters, so Arabic, Devanagari, CJK and
  emoji names are searchable) and keeps prefix indexes for 1, 2 and 3 characters: a prefix
  query reads one precomputed doclist incrementally and can stop after the first 20 hits,
  instead of ranking every match.
- ``patient_code_fts`` indexes the phone (stored normalized: digits, optional leading ``+``)
  and the patient number with the ``trigram`` tokenizer, so any fragment of 3 or more
  characters matches (the last digits of a phone, ``000123`` of ``P-B-000123``).
- FTS5 rowids must be stable integers, but ``patient`` has a text UUID key and its implicit
  rowid may change on ``VACUUM``. ``patient_search_key`` gives every patient a permanent
  integer key (``INTEGER PRIMARY KEY`` survives ``VACUUM``), and both FTS tables use it.
- Only live patients (not deleted, not merged into another record) are indexed; the search
  query filters on the same columns again, so a stale entry can never surface.
- ``patient_name_terms`` (fts5vocab) lists indexed name words; the typo-tolerant fallback
  reads a narrow range of it (words sharing the first letters) and matches by edit distance.
- Plain indexes on phone and date of birth serve the duplicate check on register.

The statements are idempotent: re-running them recreates nothing and rebuilds the index from
the ``patient`` table (the two ``delete-all`` commands clear it first).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# Name tokenizer categories: letters, numbers, private use, combining marks (Devanagari vowel
# signs, Arabic harakat) and symbols (emoji) make words; everything else separates them.


# Every statement is a literal (no string building): what runs is exactly what is read here.
PATIENT_INDEX_DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS patient_search_key (
        k INTEGER PRIMARY KEY,
        patient_id VARCHAR(36) NOT NULL UNIQUE
    )""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS patient_name_fts USING fts5(
        full_name,
        content='', contentless_delete=1,
        tokenize="unicode61 remove_diacritics 2 categories 'L* N* Co M* S*'",
        prefix='1 2 3'
    )""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS patient_code_fts USING fts5(
        phone, patient_number,
        content='', contentless_delete=1,
        tokenize='trigram'
    )""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS patient_name_terms
        USING fts5vocab(patient_name_fts, 'row')""",
    "CREATE INDEX IF NOT EXISTS ix_patient_search_phone ON patient(phone)",
    "CREATE INDEX IF NOT EXISTS ix_patient_search_dob ON patient(date_of_birth)",
    """CREATE TRIGGER IF NOT EXISTS patient_search_ai AFTER INSERT ON patient BEGIN
        INSERT OR IGNORE INTO patient_search_key(patient_id) VALUES (new.id);
        INSERT INTO patient_name_fts(rowid, full_name)
            SELECT k, new.full_name FROM patient_search_key
            WHERE patient_id = new.id AND new.deleted = 0 AND new.merged_into IS NULL;
        INSERT INTO patient_code_fts(rowid, phone, patient_number)
            SELECT k, new.phone, new.patient_number FROM patient_search_key
            WHERE patient_id = new.id AND new.deleted = 0 AND new.merged_into IS NULL;
    END""",
    """CREATE TRIGGER IF NOT EXISTS patient_search_au
        AFTER UPDATE OF full_name, phone, patient_number, deleted, merged_into ON patient
    BEGIN
        DELETE FROM patient_name_fts
            WHERE rowid = (SELECT k FROM patient_search_key WHERE patient_id = old.id);
        DELETE FROM patient_code_fts
            WHERE rowid = (SELECT k FROM patient_search_key WHERE patient_id = old.id);
        INSERT OR IGNORE INTO patient_search_key(patient_id) VALUES (new.id);
        INSERT INTO patient_name_fts(rowid, full_name)
            SELECT k, new.full_name FROM patient_search_key
            WHERE patient_id = new.id AND new.deleted = 0 AND new.merged_into IS NULL;
        INSERT INTO patient_code_fts(rowid, phone, patient_number)
            SELECT k, new.phone, new.patient_number FROM patient_search_key
            WHERE patient_id = new.id AND new.deleted = 0 AND new.merged_into IS NULL;
    END""",
    """CREATE TRIGGER IF NOT EXISTS patient_search_ad AFTER DELETE ON patient BEGIN
        DELETE FROM patient_name_fts
            WHERE rowid = (SELECT k FROM patient_search_key WHERE patient_id = old.id);
        DELETE FROM patient_code_fts
            WHERE rowid = (SELECT k FROM patient_search_key WHERE patient_id = old.id);
        DELETE FROM patient_search_key WHERE patient_id = old.id;
    END""",
    # Backfill / rebuild from the patient table (cheap no-ops on an empty store).
    "INSERT OR IGNORE INTO patient_search_key(patient_id) SELECT id FROM patient ORDER BY rowid",
    "INSERT INTO patient_name_fts(patient_name_fts) VALUES ('delete-all')",
    "INSERT INTO patient_code_fts(patient_code_fts) VALUES ('delete-all')",
    """INSERT INTO patient_name_fts(rowid, full_name)
        SELECT k.k, p.full_name FROM patient p JOIN patient_search_key k ON k.patient_id = p.id
        WHERE p.deleted = 0 AND p.merged_into IS NULL""",
    """INSERT INTO patient_code_fts(rowid, phone, patient_number)
        SELECT k.k, p.phone, p.patient_number
        FROM patient p JOIN patient_search_key k ON k.patient_id = p.id
        WHERE p.deleted = 0 AND p.merged_into IS NULL""",
]


def create_patient_index(connection: Connection) -> None:
    """Run :data:`PATIENT_INDEX_DDL` on an open connection (tests and the migration)."""
    for statement in PATIENT_INDEX_DDL:
        connection.execute(text(statement))


def optimize_patient_index(connection: Connection) -> None:
    """Merge the FTS segments into one (after a bulk load; makes prefix reads cheapest)."""
    connection.execute(text("INSERT INTO patient_name_fts(patient_name_fts) VALUES ('optimize')"))
    connection.execute(text("INSERT INTO patient_code_fts(patient_code_fts) VALUES ('optimize')"))
