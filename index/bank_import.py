"""Importing one hash list into one bank, as a single SQLite transaction.

Records stream from the parser straight into the open transaction; invalid ones are collected.
At the end the transaction commits (no rejections, or `skip_invalid`) or rolls back, so an
all-or-nothing import that meets one bad record writes nothing, whatever the list's size, and a
process killed mid-import leaves the previous state (SQLite discards the open transaction).

Identity: a bank holds each (algorithm, hash) once. Re-importing the same list finds every row
present and changes nothing; a newer list version updates labels in place. Within one file a
repeated hash or id is accepted when its data is identical and rejected when it conflicts.
Retraction is sticky: re-importing a retracted hash does not bring it back.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hashing.registry import spec
from index.bank_types import ImportResult
from index.categories import CategoryScheme, load_scheme
from index.errors import BankError, HashListFormatError
from index.ingest import csv as csv_list
from index.ingest import hashlist, nsrl, pdq, vics
from index.ingest.detect import detect_format
from index.ingest.records import ParsedRecord, ParseOptions, Record, RejectedRecord

Parser = Callable[[str, ParseOptions], Iterator[Record]]
PARSERS: dict[str, Parser] = {
    "csv": csv_list.parse,
    "hashlist": hashlist.parse,
    "pdq": pdq.parse,
    "vics": vics.parse,
    "nsrl": nsrl.parse,
}
BANK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

Labels = tuple[str, int | None, str | None, int | None, str | None, str | None, int]
_LABEL_COLUMNS = "entry_id, quality, category, vic_category, caid_category, series, known_good"
_INSERT = (
    f"INSERT INTO entries (bank_id, algorithm, hash, {_LABEL_COLUMNS}, import_id, line)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (bank_id, algorithm, hash) DO NOTHING"
)
_FIND = (
    f"SELECT id, import_id, line, {_LABEL_COLUMNS} FROM entries"
    " WHERE bank_id = ? AND algorithm = ? AND hash = ?"
)
_BY_ID = (
    f"SELECT id, algorithm, hash, line, {_LABEL_COLUMNS} FROM entries"
    " WHERE bank_id = ? AND entry_id = ? AND import_id = ?"
)
_UPDATE = (
    "UPDATE entries SET entry_id = ?, quality = ?, category = ?, vic_category = ?,"
    " caid_category = ?, series = ?, known_good = ?, import_id = ?, line = ? WHERE id = ?"
)


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """Everything `bank import` takes besides the file."""

    bank: str
    format: str = "auto"
    algo: str | None = None
    category: str | None = None
    known_good: bool = False
    source: str | None = None
    version: str | None = None
    scheme: str | None = None  # "vic", "caid" or a scheme file
    skip_invalid: bool = False


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_bank_name(name: str) -> str:
    if not BANK_NAME.match(name):
        raise BankError(
            f"bank name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    return name


def resolve(path: str, options: ImportOptions) -> tuple[str, CategoryScheme | None, str | None]:
    """(format, scheme object, scheme name to record) for a file and the options given."""
    fmt = detect_format(path) if options.format == "auto" else options.format
    if fmt not in PARSERS:
        raise BankError(f"unknown list format {fmt!r}: one of {', '.join(PARSERS)}")
    if options.algo is not None:
        spec(options.algo)
    scheme = load_scheme(options.scheme) if options.scheme else None
    name = options.scheme
    if name is None and fmt == "vics":
        with open(path, "rb") as f:
            head = f.read(1 << 16).decode("utf-8", "replace")
        name = vics.context_scheme(head)[1]
    return fmt, scheme, name


def error_text(e: HashListFormatError) -> str:
    return f"line {e.line}: {e.reason}" if e.line is not None else e.reason


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Importer:
    """Applies parsed records to one bank inside the caller's open transaction."""

    def __init__(self, con: sqlite3.Connection, bank_id: int, import_id: int) -> None:
        self.con = con
        self.bank_id = bank_id
        self.import_id = import_id
        self.added = self.updated = self.unchanged = self.duplicates = 0
        self.touched: set[str] = set()  # algorithms that gained rows

    def apply(self, rec: ParsedRecord) -> str | None:
        """Write one record; return a rejection reason instead (writing nothing) on a conflict.

        Insert-first: a new hash costs one statement; only a hash already in the bank is read
        back, to tell a repeat in this file, a conflict in this file, or a re-import apart.
        """
        entry_id = rec.entry_id if rec.entry_id is not None else rec.hashes[0][1]
        mine = {(a, h): _labels(rec, a, entry_id) for a, h in rec.hashes}
        inserted: list[tuple[int, str]] = []
        existing: list[tuple[Any, ...]] = []
        reason = None
        for (algo, h), labels in mine.items():
            cur = self.con.execute(
                _INSERT, (self.bank_id, algo, h, *labels, self.import_id, rec.line)
            )
            if cur.rowcount == 1:
                inserted.append((cur.lastrowid or 0, algo))
                continue
            found = self.con.execute(_FIND, (self.bank_id, algo, h)).fetchone()
            if found[1] == self.import_id and tuple(found[3:]) != labels:
                reason = f"duplicate {algo} hash with different data than line {found[2]}"
                break
            existing.append((found, labels))
        if reason is None and rec.entry_id is not None:
            reason = self._id_conflict(entry_id, mine, {pk for pk, _ in inserted})
        if reason is not None:
            self.con.executemany("DELETE FROM entries WHERE id = ?", [(pk,) for pk, _ in inserted])
            return reason
        self.added += len(inserted)
        self.touched.update(algo for _, algo in inserted)
        if not inserted and all(found[1] == self.import_id for found, _ in existing):
            self.duplicates += 1
            return None
        for found, labels in existing:
            if found[1] == self.import_id:
                continue
            if tuple(found[3:]) == labels:
                self.unchanged += 1
            else:
                self.updated += 1
            self.con.execute(_UPDATE, (*labels, self.import_id, rec.line, found[0]))
        return None

    def _id_conflict(
        self, entry_id: str, mine: dict[tuple[str, str], Labels], inserted: set[int]
    ) -> str | None:
        """An explicit id seen earlier in this file must come with the same hashes and labels."""
        prior = [
            r
            for r in self.con.execute(_BY_ID, (self.bank_id, entry_id, self.import_id))
            if r[0] not in inserted
        ]
        if not prior:
            return None
        theirs = {(r[1], r[2]): tuple(r[4:]) for r in prior}
        if inserted or theirs != mine:
            return f"duplicate id {entry_id!r} with different data than line {prior[0][3]}"
        return None


def _labels(rec: ParsedRecord, algorithm: str, entry_id: str) -> Labels:
    # quality describes a perceptual hash; a digest of the same file has none
    quality = rec.quality if spec(algorithm).kind == "perceptual" else None
    return (
        entry_id,
        quality,
        rec.category,
        rec.vic_category,
        rec.caid_category,
        rec.series,
        int(rec.known_good),
    )


def import_into(
    con: sqlite3.Connection,
    path: str,
    options: ImportOptions,
    fmt: str,
    parse_options: ParseOptions,
    scheme_name: str | None,
) -> tuple[ImportResult, set[str]]:
    """Run the whole import inside one transaction (already begun by the caller).

    Returns the result and the algorithms whose rows changed. Raises `_Rollback` (carrying
    the result) when the import must not be committed.
    """
    stamp = now()
    known_good = options.known_good or fmt == "nsrl"
    row = con.execute("SELECT id FROM banks WHERE name = ?", (options.bank,)).fetchone()
    if row is None:
        bank_id = con.execute(
            "INSERT INTO banks (name, source, list_name, version, imported_at, known_good, scheme)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                options.bank,
                options.source,
                Path(path).name,
                options.version,
                stamp,
                int(known_good),
                scheme_name,
            ),
        ).lastrowid
    else:
        bank_id = row[0]
    import_id = con.execute(
        "INSERT INTO imports (bank_id, file, file_sha256, format, version, imported_at, added,"
        " updated, unchanged, rejected) VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0)",
        (bank_id, str(Path(path).resolve()), file_sha256(path), fmt, options.version, stamp),
    ).lastrowid
    assert bank_id is not None and import_id is not None
    importer = Importer(con, bank_id, import_id)
    rejected: list[RejectedRecord] = []
    notes: Counter[str] = Counter()
    try:
        for rec in PARSERS[fmt](path, parse_options):
            if isinstance(rec, RejectedRecord):
                rejected.append(rec)
                continue
            notes.update(rec.notes)
            reason = importer.apply(rec)
            if reason is not None:
                rejected.append(RejectedRecord(rec.line, reason, rec.item))
    except HashListFormatError as e:
        # the file is unreadable past this point: report it with what was found before it
        raise Rollback(
            ImportResult(
                bank=options.bank,
                file=path,
                format=fmt,
                status="rejected",
                rejected=tuple(rejected),
                notes=dict(notes),
                error=error_text(e),
                skip_invalid=options.skip_invalid,
            )
        ) from None
    result = ImportResult(
        bank=options.bank,
        file=path,
        format=fmt,
        status="imported" if options.skip_invalid or not rejected else "rejected",
        added=importer.added,
        updated=importer.updated,
        unchanged=importer.unchanged,
        duplicates=importer.duplicates,
        rejected=tuple(rejected),
        notes=dict(notes),
        skip_invalid=options.skip_invalid,
    )
    if result.status == "rejected":
        raise Rollback(result)
    con.execute(
        "UPDATE imports SET added = ?, updated = ?, unchanged = ?, rejected = ? WHERE id = ?",
        (result.added, result.updated, result.unchanged, len(rejected), import_id),
    )
    con.execute(
        "UPDATE banks SET source = COALESCE(?, source), version = COALESCE(?, version),"
        " list_name = ?, imported_at = ?, known_good = MAX(known_good, ?),"
        " scheme = COALESCE(?, scheme) WHERE id = ?",
        (
            options.source,
            options.version,
            Path(path).name,
            stamp,
            int(known_good),
            scheme_name,
            bank_id,
        ),
    )
    return result, importer.touched


class Rollback(Exception):
    """Internal: unwinds the import transaction while carrying the result to report."""

    def __init__(self, result: ImportResult) -> None:
        super().__init__(result.status)
        self.result = result
