"""What a `bank import-media` run has hashed so far, kept as it settles, so a killed import
resumes without hashing again what it finished.

Hashing a unit's holdings takes hours (13 images/s: 10^5 images in about two hours on the
benchmark's machine) and the bank is written in one transaction at the end, so without this a
kill at 99 % lost everything. One SQLite file per (store, bank, folder) under the store's
`staging/` folder (owner-only, like the store: it holds the images' local features) keeps
each walk item's outcome — the hash record, its sub-window PDQs and local features — keyed
by its location and reused, as a scan reuses its case rows, while the file's size, mtime and
the hashing options are unchanged. The import reads it back in path order, one item at a
time, and removes it once the bank is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from hashing.types import HashRecord
from triage.identity import location_key
from triage.runner import Settled

STAGING_VERSION = 1  # bump with SCHEMA: a staging file of another layout is started afresh
SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    path_key BLOB PRIMARY KEY,
    size INTEGER,
    mtime REAL,
    opts TEXT NOT NULL,
    final INTEGER NOT NULL,
    seen INTEGER NOT NULL,  -- settled by the current run (a file gone since is not imported)
    record TEXT NOT NULL,  -- HashRecord.to_dict() as JSON
    archive_error INTEGER NOT NULL,
    windows TEXT,  -- the sub-window PDQs as JSON [[hex, quality], ...]
    features BLOB  -- local features (LocalFeatures.to_bytes)
);
"""


@dataclass(frozen=True, slots=True)
class Staged:
    """One settled walk item read back: its line (position in location order), path,
    record and whether it is a container that could not be opened."""

    line: int
    path: str
    record: HashRecord
    archive_error: bool


def staging_path(store_dir: str, bank: str, folder: str) -> str:
    name = hashlib.sha256(f"{bank}\0{folder}".encode("utf-8", "surrogateescape")).hexdigest()
    return os.path.join(store_dir, "staging", f"media-{name[:32]}.sqlite")


def _connect(path: str) -> sqlite3.Connection:
    """The staging database, its file created 0600 before SQLite opens it (it holds the
    holding's hashes and local features)."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    return sqlite3.connect(path, isolation_level=None)


class MediaStaging:
    """The outcomes of one import's walk items; `algorithms` read back from the records."""

    def __init__(self, path: str, opts: str, algorithms: tuple[str, ...]) -> None:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self.path, self.opts, self.algorithms = path, opts, algorithms
        self._db = _connect(path)
        try:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
        except sqlite3.DatabaseError:  # a damaged staging file (ours): start afresh
            self.remove()
            self._db = _connect(path)
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version != STAGING_VERSION:  # another layout (an older tool's): start afresh
            self._db.executescript("DROP TABLE IF EXISTS outcomes")
        # a lost last chunk after a power cut is hashed again: NORMAL is enough
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA user_version = {STAGING_VERSION}")
        self._db.execute("UPDATE outcomes SET seen = 0")  # a new run: nothing settled yet

    def __enter__(self) -> MediaStaging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def reusable(self, key: bytes, size: int | None, mtime: float | None) -> bool:
        row = self._db.execute(
            "SELECT size, mtime, opts FROM outcomes WHERE path_key = ? AND final = 1", (key,)
        ).fetchone()
        return row is not None and tuple(row) == (size, mtime, self.opts)

    def put(self, chunk: list[Settled]) -> None:
        """Record one chunk of outcomes in one transaction: a reused outcome is marked seen,
        the others written."""
        self._db.execute("BEGIN")
        try:
            for s in chunk:
                key = location_key(s.location)
                rec = s.record
                if rec is None:
                    self._db.execute("UPDATE outcomes SET seen = 1 WHERE path_key = ?", (key,))
                    continue
                windows = json.dumps(rec.pdq_windows) if rec.pdq_windows is not None else None
                self._db.execute(
                    "INSERT OR REPLACE INTO outcomes (path_key, size, mtime, opts, final, seen,"
                    " record, archive_error, windows, features)"
                    " VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                    (key, rec.size, rec.mtime, self.opts, int(s.final),
                     json.dumps(rec.to_dict()), int(s.archive_error), windows,
                     rec.local_features),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def outcomes(self) -> Iterator[Staged]:
        """The current run's outcomes one at a time in location order (a scan's manifest
        order), numbered from 1 in that order: the same numbers whatever order the items
        settled in, so a resumed import reports the lines an uninterrupted one would."""
        for line, (text, archive_error, windows, features) in enumerate(self._db.execute(
            "SELECT record, archive_error, windows, features FROM outcomes"
            " WHERE seen = 1 ORDER BY path_key"
        ), start=1):
            d: dict[str, Any] = json.loads(text)
            rec = HashRecord.from_dict(d, self.algorithms)
            rec = _with_signatures(rec, windows, features)
            yield Staged(int(line), rec.path, rec, bool(archive_error))

    def remove(self) -> None:
        """Delete the staging file (the bank is written): the next import starts afresh."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(self.path + suffix)
            except FileNotFoundError:
                pass


def _with_signatures(rec: HashRecord, windows: str | None, features: bytes | None
                     ) -> HashRecord:
    pdq_windows = tuple((str(h), int(q)) for h, q in json.loads(windows)) if windows else None
    return replace(rec, pdq_windows=pdq_windows,
                   local_features=bytes(features) if features is not None else None)
