"""The case database (CASE_DIR/case.sqlite, WAL): per-file progress that makes a scan resumable.

Each walk item is one row keyed by its location (`triage.identity.location_key`: root, path
bytes, chain of container indices), never by its label; a row is reused by a later scan only
when size, mtime and the hashing options are the same, so a killed scan restarted with the same
arguments re-hashes nothing it had recorded. Only the scan's parent process writes here.
The label a row is shown with is kept beside it, so labels that collide (a directory `a.zip!`
next to `a.zip`) can be found and told apart when the manifest is written.
Every scan is a `run`; rows the current walk saw carry its run id, so files that vanished
from the evidence since an earlier scan drop out of the manifest without being deleted.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hashing.types import HashRecord, path_to_text
from triage.outputs import FILE_MODE

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(
    path_key BLOB PRIMARY KEY,    -- triage.identity.location_key of the row
    label TEXT NOT NULL,          -- the printable path it is shown with (not unique)
    size INTEGER,
    mtime REAL,
    opts TEXT NOT NULL,
    hashed INTEGER NOT NULL,      -- 1 when the row came from a hashing call
    record TEXT NOT NULL,         -- HashRecord.to_dict() as JSON, manifest fields filled
    seen_run INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_seen ON items(seen_run);
CREATE INDEX IF NOT EXISTS items_label ON items(label, seen_run);
-- local features of hashed images (triage.local_match), hex: as sensitive as the images,
-- kept here only so a resumed scan can link images it does not hash again; never an output
CREATE TABLE IF NOT EXISTS features(
    path_key BLOB PRIMARY KEY,    -- the row's location key
    data TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    ended TEXT,
    hash_calls INTEGER,
    fingerprint TEXT
);
"""


@dataclass(frozen=True, slots=True)
class StoredRow:
    path_key: bytes
    hashed: bool
    text: str  # the manifest line: HashRecord.to_dict() as JSON

    @property
    def record(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.text)
        return parsed


class CaseDB:
    """Progress store of one case; use as a context manager so the connection is closed."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process; only power loss may drop the last commits,
        # which a rerun simply hashes again.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def __enter__(self) -> CaseDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def begin_run(self, started: str) -> int:
        cur = self._db.execute("INSERT INTO runs(started) VALUES (?)", (started,))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_run(self, run: int, ended: str, hash_calls: int, fingerprint: str) -> None:
        self._db.execute(
            "UPDATE runs SET ended=?, hash_calls=?, fingerprint=? WHERE id=?",
            (ended, hash_calls, fingerprint, run),
        )

    def last_fingerprint(self, before_run: int) -> str | None:
        """Fingerprint of the latest finished run before `before_run` (None if there is none)."""
        row = self._db.execute(
            "SELECT fingerprint FROM runs WHERE id < ? AND ended IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (before_run,),
        ).fetchone()
        return None if row is None else row[0]

    def last_finished_run(self) -> int | None:
        """The latest run that finished (whose rows the case's outputs were written from)."""
        row = self._db.execute(
            "SELECT id FROM runs WHERE ended IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def reusable(self, key: bytes, size: int | None, mtime: float | None, opts: str) -> bool:
        """True when a hashed row exists at this location with the same size, mtime, options."""
        row = self._db.execute(
            "SELECT size, mtime, opts FROM items WHERE path_key=? AND hashed=1", (key,)
        ).fetchone()
        return row is not None and tuple(row) == (size, mtime, opts)

    def mark_seen(self, run: int, keys: Iterable[bytes]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany(
            "UPDATE items SET seen_run=? WHERE path_key=?", ((run, k) for k in keys)
        )
        self._db.execute("COMMIT")

    def put(self, run: int, opts: str, rows: Iterable[tuple[dict[str, Any], bytes, bool]]) -> None:
        """Upsert `(record dict, location key, hashed)` rows in one transaction."""
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT INTO items(path_key, label, size, mtime, opts, hashed, record, seen_run) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path_key) DO UPDATE SET "
            "label=excluded.label, size=excluded.size, mtime=excluded.mtime, "
            "opts=excluded.opts, hashed=excluded.hashed, record=excluded.record, "
            "seen_run=excluded.seen_run",
            (
                (key, path_to_text(rec["path"])[0], rec.get("size"), rec.get("mtime"), opts, int(hashed),
                 json.dumps(rec), run)
                for rec, key, hashed in rows
            ),
        )
        self._db.execute("COMMIT")

    def colliding_labels(self, run: int) -> set[str]:
        """Labels shown by more than one row of `run` (rare: usually the empty set)."""
        return {
            label
            for (label,) in self._db.execute(
                "SELECT label FROM items WHERE seen_run=? GROUP BY label HAVING count(*) > 1",
                (run,),
            )
        }

    def label_taken(self, run: int, label: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM items WHERE label=? AND seen_run=? LIMIT 1", (label, run)
        ).fetchone()
        return row is not None
    def put_features(self, rows: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Set (or, for None, clear) the local features of hashed rows (by location key), in
        one transaction.

        Stored as hex: every byte the tool writes under a case is searched for media
        signatures by its tests, and raw descriptor bytes can spell one by chance."""
        self._db.execute("BEGIN")
        for key, blob in rows:
            if blob is None:
                self._db.execute("DELETE FROM features WHERE path_key=?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO features(path_key, data) VALUES (?, ?)",
                                 (key, blob.hex()))
        self._db.execute("COMMIT")

    def features(self, run: int) -> Iterator[bytes | None]:
        """The local features of each row seen by `run`, in `rows(run)` order."""
        for (data,) in self._db.execute(
            "SELECT f.data FROM items i LEFT JOIN features f ON f.path_key = i.path_key"
            " WHERE i.seen_run=? ORDER BY i.path_key",
            (run,),
        ):
            yield bytes.fromhex(data) if data else None

    def rows(self, run: int) -> Iterator[StoredRow]:
        """Rows seen by `run`, in location order (the manifest order).

        Rows shown with the same label as another row of the run (different locations, one
        printed path) get ` (label collision N)` appended and `label_collision: true`, N
        counting in manifest order; the suffix is chosen so that it is no other row's label
        either, and the row's `location` says where it really is.
        """
        labels = _Labels(self, run)
        for key, hashed, record in self._db.execute(
            "SELECT path_key, hashed, record FROM items WHERE seen_run=? ORDER BY path_key",
            (run,),
        ):
            yield StoredRow(key, bool(hashed), labels.distinct_text(record))

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def count_hashed(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM items WHERE hashed=1").fetchone()[0])


class _Labels:
    """Gives the rows of one run that share a label distinct labels (see `CaseDB.rows`)."""

    def __init__(self, db: CaseDB, run: int) -> None:
        self.db, self.run = db, run
        self.colliding = db.colliding_labels(run)
        self._count: dict[str, int] = {}
        self._given: set[str] = set()

    def distinct(self, path: str) -> str:
        """A label for a row shown as `path` that no other row of the run shows."""
        while True:
            n = self._count[path] = self._count.get(path, 0) + 1
            label = f"{path} (label collision {n})"
            shown = path_to_text(label)[0]
            if shown not in self._given and not self.db.label_taken(self.run, shown):
                self._given.add(shown)
                return label

    def distinct_text(self, text: str) -> str:
        if not self.colliding:
            return text
        d = json.loads(text)
        if d["path"] not in self.colliding:
            return text
        raw = os.fsdecode(bytes.fromhex(d["path_bytes_hex"])) if d.get("path_bytes_hex") \
            else d["path"]
        shown = HashRecord(path=self.distinct(raw), status="skipped").to_dict()
        d.pop("path_bytes_hex", None)
        d.update({k: shown[k] for k in ("path", "path_bytes_hex") if k in shown},
                 label_collision=True)
        return json.dumps(d)
