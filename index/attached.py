"""NIST NSRL RDSv3 databases attached to the store as known-good banks: read in place, read-only.

Why: an RDSv3 publication holds 10^8+ digests; importing it copies every one into the store
(about 240 bytes an entry with its indexes). Attached, the publication stays where it is, is
opened read-only (`mode=ro`, never written, no file appears beside it) and an exact digest
lookup is one indexed SELECT on its `FILE` view, in the case NIST writes (upper-case hex).
A digest column the publication holds no index on gets a sidecar in the store instead
(`attached/<bank>.sqlite`: that column's distinct digests, sorted once in SQLite's external
sorter, so memory stays flat), and no lookup ever scans the publication.

The attachment records the file's size and mtime: a publication that changed, moved or vanished
since it was attached is refused when a matcher opens (a known-good bank that silently stopped
answering would change what a scan sets aside). Attach it again to take a new publication.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from index.errors import BankError, HashListFormatError
from index.ingest.rdsv3 import COLUMNS, open_readonly


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attached publication as recorded in the store."""

    bank: str
    path: str
    size: int
    mtime_ns: int
    rows: int
    columns: dict[str, str]  # algorithm -> "in place: <case>" or "sidecar"


def sidecar_path(store_dir: str, bank: str) -> str:
    return os.path.join(store_dir, "attached", f"{bank}.sqlite")


def _indexed(con: sqlite3.Connection, column: str) -> bool:
    """Whether SQLite answers `column = ?` on the FILE view through an index (no scan)."""
    plan = [str(row[-1]) for row in
            con.execute(f"EXPLAIN QUERY PLAN SELECT 1 FROM FILE WHERE {column} = ?", ("",))]
    return (any(d.startswith("SEARCH") and ("INDEX" in d or "PRIMARY KEY" in d) for d in plan)
            and not any(d.startswith("SCAN") for d in plan))


def _case(con: sqlite3.Connection, column: str) -> str:
    row = con.execute(f"SELECT {column} FROM FILE WHERE {column} IS NOT NULL LIMIT 1").fetchone()
    return "lower" if row and isinstance(row[0], str) and row[0] != row[0].upper() else "upper"


def inspect(path: str, store_dir: str, bank: str) -> tuple[int, dict[str, str]]:
    """(FILE rows, algorithm -> how it is looked up) of a publication; builds the sidecar of
    the digest columns it holds no index on. Raises HashListFormatError for a non-RDSv3 file."""
    con = open_readonly(path)
    try:
        (rows,) = con.execute("SELECT COUNT(*) FROM FILE").fetchone()
        how = {c: f"in place: {_case(con, c)}" if _indexed(con, c) else "sidecar"
               for c in COLUMNS}
    except sqlite3.Error as e:
        raise HashListFormatError(path, None, f"cannot read the RDSv3 database: {e}") from None
    finally:
        con.close()
    unindexed = [c for c, h in how.items() if h == "sidecar"]
    side = sidecar_path(store_dir, bank)
    if os.path.exists(side):
        os.unlink(side)
    if unindexed:
        os.makedirs(os.path.dirname(side), mode=0o700, exist_ok=True)
        _build_sidecar(path, side, unindexed)
    return int(rows), how


def _build_sidecar(path: str, side: str, columns: list[str]) -> None:
    """One WITHOUT ROWID table per column: its distinct digests, upper-case, sorted."""
    tmp = side + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")  # a half-built sidecar is discarded, not repaired
        con.execute("PRAGMA temp_store=FILE")
        con.execute("ATTACH DATABASE ? AS rds", (f"{Path(path).resolve().as_uri()}?mode=ro",))
        for column in columns:
            con.execute(f"CREATE TABLE {column} (h TEXT PRIMARY KEY) WITHOUT ROWID")
            con.execute(f"INSERT OR IGNORE INTO {column} SELECT UPPER({column}) FROM rds.FILE"
                        f" WHERE {column} IS NOT NULL ORDER BY 1")
        con.execute("DETACH DATABASE rds")
    finally:
        con.close()
    os.replace(tmp, side)


def record(con: sqlite3.Connection, bank_id: int, path: str, rows: int,
           columns: dict[str, str]) -> None:
    """Record the attachment inside the caller's write transaction."""
    st = os.stat(path)
    con.execute(
        "INSERT INTO attachments (bank_id, path, format, size, mtime_ns, rows, columns)"
        " VALUES (?, ?, 'rdsv3', ?, ?, ?, ?)",
        (bank_id, str(Path(path).resolve()), st.st_size, st.st_mtime_ns, rows,
         json.dumps(columns, sort_keys=True)),
    )


def attachments(con: sqlite3.Connection, enabled_only: bool = True) -> list[Attachment]:
    rows = con.execute(
        "SELECT b.name, a.path, a.size, a.mtime_ns, a.rows, a.columns FROM attachments a"
        " JOIN banks b ON b.id = a.bank_id" + (" WHERE b.enabled = 1" if enabled_only else "")
        + " ORDER BY b.name"
    ).fetchall()
    return [Attachment(n, p, s, m, r, json.loads(c)) for n, p, s, m, r, c in rows]


class AttachedBank:
    """Exact digest lookups against one attached publication (thread-safe, one lock)."""

    def __init__(self, attachment: Attachment, store_dir: str) -> None:
        self.name = attachment.bank
        self.attachment = attachment
        try:
            st = os.stat(attachment.path)
        except OSError as e:
            raise BankError(f"attached bank {self.name}: {attachment.path}: {e.strerror};"
                            " attach it again or disable the bank") from None
        if (st.st_size, st.st_mtime_ns) != (attachment.size, attachment.mtime_ns):
            raise BankError(f"attached bank {self.name}: {attachment.path} changed since it was"
                            " attached; attach it again (bank attach) or disable the bank")
        self._lock = threading.Lock()
        self._rds = open_readonly(attachment.path, check_same_thread=False)
        side = sidecar_path(store_dir, self.name)
        self._side = (sqlite3.connect(f"{Path(side).as_uri()}?mode=ro", uri=True,
                                      check_same_thread=False)
                      if "sidecar" in attachment.columns.values() else None)
        self._sql: dict[str, tuple[sqlite3.Connection, str, bool]] = {}
        for algo, how in attachment.columns.items():
            if how == "sidecar":
                assert self._side is not None
                self._sql[algo] = (self._side, f"SELECT 1 FROM {algo} WHERE h = ?", True)
            else:
                self._sql[algo] = (self._rds, f"SELECT 1 FROM FILE WHERE {algo} = ? LIMIT 1",
                                   how.endswith("upper"))

    def holds(self, algorithm: str, value: str) -> bool:
        """Whether the publication lists `value` (lower-case hex, already checked)."""
        found = self._sql.get(algorithm)
        if found is None:
            return False
        con, sql, upper = found
        with self._lock:
            return con.execute(sql, (value.upper() if upper else value,)).fetchone() is not None

    def close(self) -> None:
        self._rds.close()
        if self._side is not None:
            self._side.close()
