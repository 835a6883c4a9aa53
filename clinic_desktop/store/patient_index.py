"""SQLite FTS5 index behind patient search (desk only; the server never searches this way).

Why it looks like this:

- A contentless FTS5 table (``content=''`` with ``contentless_delete=1``) for names and a
  suffix table for phones: the patient row stays the one copy of the data, and triggers on
  ``patient`` keep both in step with every write, whether it comes from a service or from
  the sync client applying pulled rows.
- ``patient_name_fts`` tokenizes names with ``unicode61`` (case folding, diacritics removed,
  letters, digits, marks and symbols as token characters, so Arabic, Devanagari, CJK and
  emoji names are searchable) and keeps prefix indexes for 1, 2 and 3 characters: a prefix
  query reads one precomputed doclist incrementally and can stop after the first 20 hits,
  instead of ranking every match.
- ``patient_phone_suffix`` holds every suffix (3 digits or longer) of each phone's digits in
  a B-tree: any fragment of a phone is the start of one of its suffixes, so a fragment
  search is a range scan that stops after the first 20 rows. (A trigram FTS5 index did the
  same job ten times slower at a million patients: every digit trigram is common, so each
  query read long doclists.) Phones ending in the fragment sort first. Patient numbers are
  found by exact look-up on their unique index, so they need nothing here.
- FTS5 rowids must be stable integers, but ``patient`` has a text UUID key and its implicit
  rowid may change on ``VACUUM``. ``patient_search_key`` gives every patient a permanent
  integer key (``INTEGER PRIMARY KEY`` survives ``VACUUM``), used by both structures.
- Only live patients (not deleted, not merged into another record) are indexed; the search
  query filters on the same columns again, so a stale entry can never surface.
- ``patient_name_terms`` (fts5vocab) lists indexed name words; the typo-tolerant fallback
  reads a narrow range of it (words sharing the first letters) and matches by edit distance.
- Plain indexes on phone and date of birth serve the duplicate check on register.

The statements are idempotent: re-running them recreates nothing and rebuilds the index from
the ``patient`` table (the ``delete-all`` command and the ``DELETE`` clear it first).
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
    """CREATE VIRTUAL TABLE IF NOT EXISTS patient_name_terms
        USING fts5vocab(patient_name_fts, 'row')""",
    # 1..32: the character positions a phone suffix can start at (phones have <= 21 chars).
    "CREATE TABLE IF NOT EXISTS patient_search_n (n INTEGER PRIMARY KEY)",
    """INSERT OR IGNORE INTO patient_search_n(n) VALUES
        (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11), (12), (13), (14), (15), (16),
        (17), (18), (19), (20), (21), (22), (23), (24), (25), (26), (27), (28), (29), (30),
        (31), (32)""",
    """CREATE TABLE IF NOT EXISTS patient_phone_suffix (
        suffix VARCHAR(32) NOT NULL,
        k INTEGER NOT NULL,
        PRIMARY KEY (suffix, k)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS ix_patient_search_phone ON patient(phone)",
    "CREATE INDEX IF NOT EXISTS ix_patient_search_dob ON patient(date_of_birth)",
    """CREATE TRIGGER IF NOT EXISTS patient_search_ai AFTER INSERT ON patient BEGIN
        INSERT OR IGNORE INTO patient_search_key(patient_id) VALUES (new.id);
        INSERT INTO patient_name_fts(rowid, full_name)
            SELECT k, new.full_name FROM patient_search_key
            WHERE patient_id = new.id AND new.deleted = 0 AND new.merged_into IS NULL;
        INSERT OR IGNORE INTO patient_phone_suffix(suffix, k)
            SELECT substr(replace(new.phone, '+', ''), n.n), key.k
            FROM patient_search_key key
            JOIN patient_search_n n ON n.n <= length(replace(new.phone, '+', '')) - 2
            WHERE key.patient_id = new.id AND new.deleted = 0 AND new.merged_into IS NULL;
    END""",
    """CREATE TRIGGER IF NOT EXISTS patient_search_au
        AFTER UPDATE OF full_name, phone, patient_number, deleted, merged_into ON patient
    BEGIN
        DELETE FROM patient_name_fts
            WHERE rowid = (SELECT k FROM patient_search_key WHERE patient_id = old.id);
        DELETE FROM patient_phone_suffix
            WHERE k = (SELECT k FROM patient_search_key WHERE patient_id = old.id)
            AND suffix IN (
                SELECT substr(replace(old.phone, '+', ''), n) FROM patient_search_n
                WHERE n <= length(replace(old.phone, '+', '')) - 2
            );
        INSERT OR IGNORE INTO patient_search_key(patient_id) VALUES (new.id);
        INSERT INTO patient_name_fts(rowid, full_name)
            SELECT k, new.full_name FROM patient_search_key
            WHERE patient_id = new.id AND new.deleted = 0 AND new.merged_into IS NULL;
        INSERT OR IGNORE INTO patient_phone_suffix(suffix, k)
            SELECT substr(replace(new.phone, '+', ''), n.n), key.k
            FROM patient_search_key key
            JOIN patient_search_n n ON n.n <= length(replace(new.phone, '+', '')) - 2
            WHERE key.patient_id = new.id AND new.deleted = 0 AND new.merged_into IS NULL;
    END""",
    """CREATE TRIGGER IF NOT EXISTS patient_search_ad AFTER DELETE ON patient BEGIN
        DELETE FROM patient_name_fts
            WHERE rowid = (SELECT k FROM patient_search_key WHERE patient_id = old.id);
        DELETE FROM patient_phone_suffix
            WHERE k = (SELECT k FROM patient_search_key WHERE patient_id = old.id)
            AND suffix IN (
                SELECT substr(replace(old.phone, '+', ''), n) FROM patient_search_n
                WHERE n <= length(replace(old.phone, '+', '')) - 2
            );
        DELETE FROM patient_search_key WHERE patient_id = old.id;
    END""",
    # Backfill / rebuild from the patient table (cheap no-ops on an empty store).
    "INSERT OR IGNORE INTO patient_search_key(patient_id) SELECT id FROM patient ORDER BY rowid",
    "INSERT INTO patient_name_fts(patient_name_fts) VALUES ('delete-all')",
    "DELETE FROM patient_phone_suffix",
    """INSERT INTO patient_name_fts(rowid, full_name)
        SELECT k.k, p.full_name FROM patient p JOIN patient_search_key k ON k.patient_id = p.id
        WHERE p.deleted = 0 AND p.merged_into IS NULL""",
    # Sorted, so the B-tree is written front to back instead of page splits all over.
    """INSERT OR IGNORE INTO patient_phone_suffix(suffix, k)
        SELECT substr(replace(p.phone, '+', ''), n.n), k.k
        FROM patient p
        JOIN patient_search_key k ON k.patient_id = p.id
        JOIN patient_search_n n ON n.n <= length(replace(p.phone, '+', '')) - 2
        WHERE p.deleted = 0 AND p.merged_into IS NULL
        ORDER BY 1, 2""",
]


def create_patient_index(connection: Connection) -> None:
    """Run :data:`PATIENT_INDEX_DDL` on an open connection (tests and the migration)."""
    for statement in PATIENT_INDEX_DDL:
        connection.execute(text(statement))


def optimize_patient_index(connection: Connection) -> None:
    """Merge the name index's segments into one (after a bulk load; cheapest prefix reads)."""
    connection.execute(text("INSERT INTO patient_name_fts(patient_name_fts) VALUES ('optimize')"))
