"""The bank store's SQLite schema and connection settings, kept apart from the logic using them.

Tables: `banks` (provenance, enabled, known-good), `entries` (one row per bank x algorithm x
hash; retracted rows stay as history), `imports` (what was imported when, from which file),
`generations` (a counter per algorithm bumped by every change that alters what it matches),
`index_files` (checksum, row count, generation and bank versions of each perceptual index file)
and `index_maps` (index row -> entries, as blobs of pairs: identical hashes from several banks
share one row) and `false_positives` (analysts' confirmed false matches per bank entry, one per
case and item) and `attachments` (RDSv3 publications read in place as banks: `index.attached`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
BUSY_SECONDS = 600  # how long a connection waits for another's lock before failing
CACHE_KIB = 65536  # the store connection's page cache, KiB (see `connect`)
SORT_KIB = 4096  # the page cache while a bulk import builds indexes (see `small_sorts`)
# The page size of a new store (an existing one keeps its own). A bulk import writes each page
# to the WAL, reads it back to build the indexes and copies it into the database at the
# checkpoint, a system call per page each time: with 16 KiB pages instead of SQLite's 4 KiB,
# 10^6 CSV entries took 8-11 % less CPU (3.18-3.28 s against 3.55-3.60, alternating runs on
# the Xeon; 32 and 64 KiB gained no more)
PAGE_BYTES = 16384
# Version 2 stores keep their layout (an inline UNIQUE (bank_id, algorithm, hash) and the
# covering `entries_by_hash`): every query works on both; only a bulk import is faster on 3,
# whose one unique index can be dropped and rebuilt (`entry_indexes`).

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS banks (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source TEXT,
    list_name TEXT,
    version TEXT,
    imported_at TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    known_good INTEGER NOT NULL DEFAULT 0,
    scheme TEXT
);
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY,
    bank_id INTEGER NOT NULL REFERENCES banks(id),
    file TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    version TEXT,
    imported_at TEXT NOT NULL,
    added INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    unchanged INTEGER NOT NULL,
    rejected INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    bank_id INTEGER NOT NULL REFERENCES banks(id),
    entry_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    hash TEXT NOT NULL,
    quality INTEGER,
    category TEXT,
    vic_category INTEGER,
    caid_category TEXT,
    series TEXT,
    known_good INTEGER NOT NULL DEFAULT 0,
    retracted INTEGER NOT NULL DEFAULT 0,
    retracted_at TEXT,
    retract_reason TEXT,
    retracted_import INTEGER REFERENCES imports(id),  -- the replacing import that dropped it
    import_id INTEGER NOT NULL REFERENCES imports(id),
    line INTEGER NOT NULL
);
-- a bank holds each (algorithm, hash) once (also what digest lookups read). A named index,
-- not an inline UNIQUE: a bulk import drops it and builds it after. Hash first: sorting on a
-- column whose values differ (not the algorithm, shared by most rows) is the fast compare
CREATE UNIQUE INDEX IF NOT EXISTS entries_key ON entries (hash, algorithm, bank_id);
CREATE INDEX IF NOT EXISTS entries_by_id ON entries (bank_id, entry_id);
CREATE TABLE IF NOT EXISTS generations (
    algorithm TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS index_files (
    algorithm TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    bank_versions TEXT NOT NULL,
    built_at TEXT NOT NULL
);
-- (row, entry) pairs, little-endian int64, in row order, a part per `bank_index.build` chunk
CREATE TABLE IF NOT EXISTS index_maps (
    algorithm TEXT NOT NULL,
    part INTEGER NOT NULL,
    pairs BLOB NOT NULL,
    PRIMARY KEY (algorithm, part)
);
""" + """
CREATE TABLE IF NOT EXISTS false_positives (
    id INTEGER PRIMARY KEY,
    bank_id INTEGER NOT NULL REFERENCES banks(id),
    entry_id TEXT NOT NULL,
    case_name TEXT NOT NULL,
    item TEXT NOT NULL,
    who TEXT NOT NULL,
    at TEXT NOT NULL,
    note TEXT,
    UNIQUE (bank_id, entry_id, case_name, item)
);
CREATE INDEX IF NOT EXISTS false_positives_by_entry ON false_positives (bank_id, entry_id);
CREATE TABLE IF NOT EXISTS attachments (
    bank_id INTEGER PRIMARY KEY REFERENCES banks(id),
    path TEXT NOT NULL,
    format TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    columns TEXT NOT NULL
);
"""
# Added after the first stores were made: created on open when missing (see `connect`).
_LATER_TABLES = ("false_positives", "attachments", "index_maps")


def connect(path: str) -> sqlite3.Connection:
    """Open the store database in autocommit mode; callers open transactions explicitly.

    WAL lets a scan read while an import writes (except while a bulk import has the store to
    itself, `rollback_journal`: then reads wait for its commit); synchronous=FULL makes a
    committed import survive power loss, not only a process crash.
    """
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                          timeout=BUSY_SECONDS)
    # takes effect only while the file is empty: before the WAL switch writes its header
    con.execute(f"PRAGMA page_size={PAGE_BYTES}")
    try:
        con.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as e:
        if e.sqlite_errorcode != sqlite3.SQLITE_BUSY:
            raise
        # a bulk import holds the store under a rollback journal (`rollback_journal`): this
        # connection's reads wait for its commit, then follow the file back to WAL
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA foreign_keys=ON")
    # imports touch random pages of the entries' key: a page cache keeps a large import from
    # re-reading them. Also the bound of SQLite's in-memory sort runs (it spills the rest to
    # temp files), so 64 MB keeps an import's memory flat in the list's size
    con.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        # only a new store is written to on open, so opening never waits for an importer
        with transaction(con):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
    missing = [
        t for t in _LATER_TABLES
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (t,)).fetchone() is None
    ]
    if missing:  # a store made before these tables existed: add them once
        with transaction(con):
            for statement in SCHEMA.split(";"):
                if any(f" {t} " in statement for t in missing) and statement.strip():
                    con.execute(statement)
    _migrate(con)
    # the staging tables of an import: sorting 10^7 rows must not hold them all in memory
    con.execute("PRAGMA temp_store=FILE")
    return con


# (table, column, declaration, the schema version that added it)
_ADDED_COLUMNS = (("entries", "retracted_import", "INTEGER REFERENCES imports(id)", 2),)


def _migrate(con: sqlite3.Connection) -> None:
    """Add the columns later versions introduced to a store created by an earlier one.

    The layout of the entries' keys is not rebuilt: a version 2 store keeps its inline
    UNIQUE and `entries_by_hash`, which every query here also runs on (see SCHEMA_VERSION).
    """
    for table, column, decl, version in _ADDED_COLUMNS:
        names = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        if column not in names:
            with transaction(con):
                names = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
                if column not in names:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
                    con.execute(
                        "UPDATE meta SET value = ? WHERE key = 'schema_version'"
                        " AND CAST(value AS INTEGER) < ?",
                        (str(version), version),
                    )


def entry_indexes(con: sqlite3.Connection) -> list[tuple[str, str, bool]]:
    """(name, CREATE statement, unique) of each droppable index on `entries`, unique first.

    An inline UNIQUE (version 2 stores) is not listed: SQLite cannot drop it.
    """
    rows = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries'"
        " AND sql IS NOT NULL ORDER BY name"
    ).fetchall()
    found = [(name, sql, sql.upper().startswith("CREATE UNIQUE")) for name, sql in rows]
    return sorted(found, key=lambda r: not r[2])


def schema_version(con: sqlite3.Connection) -> int:
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


@contextmanager
def unchecked_references(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Foreign keys not enforced for the block (outside any transaction: SQLite ignores the
    pragma inside one). Only for rows whose references are to rows written or read by the
    block's own transaction (an import's bank and import rows). Checking them cost a random
    lookup per row and reference (0.16 s of CPU per 10^6 entries a first import inserts)."""
    con.execute("PRAGMA foreign_keys=OFF")
    try:
        yield con
    finally:
        con.execute("PRAGMA foreign_keys=ON")


@contextmanager
def small_sorts(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """The block's large sorts (CREATE INDEX, ORDER BY over a scan) in in-memory runs of
    SORT_KIB instead of CACHE_KIB: SQLite sizes a sort's runs by the page cache, and for input
    in random order (hashes) runs that fit the CPU's caches sort faster than 64 MB ones, merges
    included (the key index of 10^6 CSV entries: 0.75-1.16 s of CPU against 1.13-1.40; of 10^7
    VICS entries 9.3 against 14.0). Not for input that mostly ascends, nor for blocks that
    revisit random pages of a large table or index, which the smaller cache would re-read."""
    con.execute(f"PRAGMA cache_size=-{SORT_KIB}")
    try:
        yield con
    finally:
        con.execute(f"PRAGMA cache_size=-{CACHE_KIB}")


@contextmanager
def rollback_journal(con: sqlite3.Connection) -> Iterator[bool]:
    """For a bulk import with the store to itself: the block runs under a rollback journal
    instead of the WAL, and yields whether it does. Outside any transaction.

    Why: under WAL each page of a large insert is written to the WAL, read back from it by
    each index build (a WAL-index lookup per page) and copied into the database at the
    checkpoint; a rollback journal writes the new pages to the database once and journals
    only the existing pages the import changes (10^7 CSV entries: 32.7 -> 25.8 s of CPU, of
    which system time 7.0 -> 2.0). The price is that readers wait for the writer, so it is
    taken only while no other connection has the store open (SQLite leaves WAL only for the
    last connection; with a service or scan reading, the block runs under WAL and they go on).
    A connection opened meanwhile waits for the import's commit (`connect`). As safe against
    a crash as the WAL: a killed import leaves a hot journal the next open rolls back.
    """
    con.execute("PRAGMA busy_timeout=0")  # another connection open: do not wait for it
    try:
        (mode,) = con.execute("PRAGMA main.journal_mode=DELETE").fetchone()
    except sqlite3.OperationalError as e:
        if e.sqlite_errorcode != sqlite3.SQLITE_BUSY:
            raise
        mode = "wal"
    finally:
        con.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
    if mode != "delete":
        yield False
        return
    try:
        yield True
    finally:
        try:
            con.execute("PRAGMA main.journal_mode=WAL")
        except sqlite3.OperationalError as e:
            # a reader held on past the busy timeout: the next `connect` switches it back
            log.warning("the bank store stays under a rollback journal for now: %s", e)


@contextmanager
def transaction(con: sqlite3.Connection, write: bool = True) -> Iterator[sqlite3.Connection]:
    """One SQLite transaction: committed on success, rolled back on any exception (a failed
    COMMIT included, so the connection is never left inside a half-done transaction).

    Write transactions take the lock up front (BEGIN IMMEDIATE) so two importers queue
    instead of failing half-way; read transactions give a consistent snapshot under WAL.
    """
    con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        # COMMIT itself can fail (full disk, I/O error) and leave the transaction open; a
        # failed ROLLBACK is swallowed because the first error is the one worth reporting
        # and SQLite may already have rolled back on its own.
        if con.in_transaction:
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise
