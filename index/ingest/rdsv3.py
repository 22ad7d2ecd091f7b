"""NIST NSRL RDSv3 (the SQLite publication): known-good digests read in place, read-only.

The database is opened read-only (`mode=ro`, never written, no journal) and its `FILE` view
streamed in batches of rows: each row's SHA-256, SHA-1 and MD5 (upper-case in the RDS) become
known-good entries, each hash its own entry id, so a hash repeated for every package it ships in
is a repeat, never a conflict. `line` in reports is the row number in `FILE`. The CSV form
(`index.ingest.nsrl`) stays for RDSv2 text files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from hashing.i18n import tr
from index.errors import HashListFormatError
from index.ingest.records import (
    Batch,
    GroupKey,
    ParseOptions,
    Record,
    RejectedRecord,
    group_rows,
    hashes_record,
)
from index.multirow import FlatRows

MAGIC = b"SQLite format 3\x00"
COLUMNS = ("sha256", "sha1", "md5")
_HEX = b"0123456789abcdefABCDEF"
_ROWS = 50_000


def open_readonly(path: str, check_same_thread: bool = True) -> sqlite3.Connection:
    """The publication opened read-only, its FILE view checked (HashListFormatError if not)."""
    try:
        con = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True,
                              check_same_thread=check_same_thread)
        found = {r[1].lower() for r in con.execute("PRAGMA table_info(FILE)")}
    except sqlite3.Error as e:
        raise HashListFormatError(path, None, tr("not an RDSv3 database: {reason}",
                                                 reason=str(e))) from None
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        con.close()
        raise HashListFormatError(
            path, None, tr("not an RDSv3 database: no FILE view with {columns}",
                           columns=", ".join(missing))
        )
    return con


def _rows(path: str) -> Iterator[list[tuple[str | None, ...]]]:
    con = open_readonly(path)
    try:
        cur = con.execute("SELECT sha256, sha1, md5 FROM FILE")
        while chunk := cur.fetchmany(_ROWS):
            yield chunk
    except sqlite3.Error as e:
        raise HashListFormatError(path, None, tr("cannot read the RDSv3 database: {reason}",
                                                 reason=str(e))) from None
    finally:
        con.close()


def _record(line: int, row: tuple[object, ...], options: ParseOptions) -> Record:
    return hashes_record(line, zip(COLUMNS, row, strict=True), options.category, True)


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    """The reference reader: one record per FILE row."""
    line = 0
    for chunk in _rows(path):
        for row in chunk:
            line += 1
            yield _record(line, row, options)


def batches(path: str, options: ParseOptions) -> Iterator[Batch]:
    """The import's path: whole chunks of well-formed rows staged per column in bulk."""
    labels = (0, None, options.category, None, None, None, 1)
    line = 0
    for chunk in _rows(path):
        start = line + 1
        line += len(chunk)
        batch = _fast(chunk, start, labels)
        if batch is None:
            batch = Batch.empty()
            for number, row in enumerate(chunk, start):
                rec = _record(number, row, options)
                if isinstance(rec, RejectedRecord):
                    batch.rejected.append(rec)
                else:
                    # each hash is its own entry: repeats across packages never conflict
                    for algo, h in rec.hashes:
                        group_rows(batch.groups, (algo, labels, "line")).append(number, h)
                    batch.records += 1
        yield batch


def _fast(chunk: list[tuple[str | None, ...]], start: int,
          labels: tuple[int, None, str | None, None, None, None, int]) -> Batch | None:
    from hashing.registry import SPECS

    columns = list(zip(*chunk, strict=True))
    groups: dict[GroupKey, FlatRows] = {}
    for algo, values in zip(COLUMNS, columns, strict=True):
        if set(map(type, values)) != {str} or set(map(len, values)) != {SPECS[algo].hex_length}:
            return None
        joined = "".join(values)
        try:
            if joined.encode("ascii").translate(None, _HEX):
                return None
        except UnicodeEncodeError:
            return None
        rows = groups[(algo, labels, "line")] = FlatRows(2)
        rows.add_columns(range(start, start + len(values)), list(map(str.lower, values)))
    return Batch(groups, [], {}, len(chunk))
