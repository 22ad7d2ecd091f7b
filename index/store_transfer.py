"""Moving a bank from one store of this tool to another, store-private signatures included.

`bank export --format store` is the only way sub-window PDQs and local features leave a store:
a SQLite file (0600) holding the bank's provenance, its active entries and the feature sets of
its `orb` entries, to be read by `bank import-store` of another osec-triage store (a second
workstation of the same unit). It is as sensitive as the media the bank was built from and is
never a partner format: partner exports (`csv`, `pdq`, `vics`) leave these signatures out.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hashing.algorithms.local_features import LocalFeatures
from hashing.i18n import tr
from index.bank_types import ImportResult
from index.errors import BankError
from index.ingest.records import ParsedRecord, RejectedRecord
from index.media_bank import (
    ALGORITHM,
    MediaImport,
    MediaItem,
    MediaTally,
    has_features_table,
    write_media,
)

if TYPE_CHECKING:
    from index.banks import BankStore

FORMAT = "osec-triage-bank/1"
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE bank (name TEXT, source TEXT, version TEXT, known_good INTEGER, scheme TEXT);
CREATE TABLE entries (entry_id TEXT NOT NULL, algorithm TEXT NOT NULL, hash TEXT NOT NULL,
    quality INTEGER, category TEXT, vic_category INTEGER, caid_category TEXT, series TEXT,
    known_good INTEGER NOT NULL);
CREATE TABLE features (hash TEXT PRIMARY KEY, data BLOB NOT NULL);
"""
_COLUMNS = ("entry_id, algorithm, hash, quality, category, vic_category, caid_category, series,"
            " known_good")


def export_bank(store: BankStore, name: str, path: str) -> int:
    """Write bank `name` to a new file at `path`; returns the number of entries written."""
    row = store.con.execute(
        "SELECT id, name, source, version, known_good, scheme FROM banks WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        raise BankError(tr("no bank named {name!r} in {store}", name=name, store=str(store.dir)))
    if os.path.exists(path):
        raise BankError(tr("{path}: exists; a store export never overwrites", path=str(path)))
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        out = sqlite3.connect(path)
        try:
            out.executescript(_SCHEMA)
            out.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
            out.execute("INSERT INTO bank VALUES (?, ?, ?, ?, ?)", row[1:])
            entries = store.con.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE bank_id = ? AND retracted = 0"
                " ORDER BY id", (row[0],)).fetchall()
            out.executemany(f"INSERT INTO entries ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                            entries)
            if has_features_table(store.con):
                out.executemany("INSERT INTO features VALUES (?, ?)", store.con.execute(
                    "SELECT e.hash, f.features FROM entries e JOIN local_features f ON"
                    " f.entry = e.id WHERE e.bank_id = ? AND e.retracted = 0", (row[0],)))
            out.commit()
        finally:
            out.close()
    except sqlite3.Error as e:
        Path(path).unlink(missing_ok=True)
        raise BankError(tr("{path}: cannot write the store export: {reason}", path=str(path),
                           reason=str(e))) from e
    return len(entries)


def _read(path: str) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], dict[str, bytes]]:
    try:
        con = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise BankError(tr("{path}: cannot open: {reason}", path=str(path),
                           reason=str(e))) from None
    try:
        fmt = con.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if fmt is None or fmt[0] != FORMAT:
            raise BankError(tr("{path}: not an osec-triage store export ({format})",
                               path=str(path), format=FORMAT))
        bank = con.execute("SELECT name, source, version, known_good, scheme FROM bank"
                           ).fetchone()
        entries = con.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY rowid").fetchall()
        features = {h: bytes(d) for h, d in con.execute("SELECT hash, data FROM features")}
    except sqlite3.Error as e:
        raise BankError(tr("{path}: not an osec-triage store export: {reason}",
                           path=str(path), reason=str(e))) from None
    finally:
        con.close()
    return bank, entries, features


def import_bank(store: BankStore, path: str, bank: str | None = None) -> ImportResult:
    """Import a store export into bank `bank` (default: its own name), in one transaction.

    Each item's entries are grouped by entry id; a feature set whose bytes no longer hash to
    its entry is refused (reported), so a damaged file cannot plant features under a key."""
    meta, entries, features = _read(path)
    name = bank or meta[0]
    by_id: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for e in entries:
        by_id[e[0]].append(e)
    items: list[MediaItem] = []
    rejected: list[RejectedRecord] = []
    for line, (entry_id, rows) in enumerate(by_id.items(), start=1):
        feats = None
        hashes = []
        for r in rows:
            if r[1] == ALGORITHM:
                blob = features.get(r[2])
                try:
                    f = LocalFeatures.from_bytes(blob) if blob else None
                except ValueError:
                    f = None
                if f is None or f.fingerprint() != r[2]:
                    rejected.append(RejectedRecord(line, f"{entry_id}: local features missing"
                                                   " or damaged"))
                    continue
                feats = f
            hashes.append((r[1], r[2]))
        first = rows[0]
        quality = next((r[3] for r in rows if r[1] == "pdq" and r[3] is not None), None)
        record = ParsedRecord(line=line, hashes=tuple(hashes), entry_id=entry_id,
                              quality=quality, category=first[4], vic_category=first[5],
                              caid_category=first[6], series=first[7],
                              known_good=bool(first[8]))
        items.append(MediaItem(record, feats, entry_id))
    spec = MediaImport(name, str(Path(path).resolve()), source=meta[1], version=meta[2],
                       known_good=bool(meta[3]), format="store")
    return write_media(store, spec, items, MediaTally(list(rejected), Counter(items=len(items))))
