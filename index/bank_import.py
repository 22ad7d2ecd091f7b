"""Importing one hash list into one bank: staged, checked, then merged in one transaction.

The parser's batches go to temp tables (`index.staging`) where repeats and conflicts inside
the file are found; then, unless an all-or-nothing import met invalid records, one write
transaction merges the list into the bank by set operations. A rejected list writes nothing,
whatever its size, and a process killed mid-import leaves the previous state (SQLite discards
the open transaction; temp tables die with the connection).

Identity: a bank holds each (algorithm, hash) once. Re-importing the same list finds every row
present and changes nothing; a newer list version updates labels in place. With `replace` the
list is the bank's whole new version: entries it no longer holds are retracted, kept in the
history with the import (and version) that dropped them, and reinstated if a later version
lists them again. A retraction by hand is sticky: re-importing that hash does not bring it back.
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from dataclasses import replace as replace_result
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hashing.i18n import tr
from hashing.registry import STORE_PRIVATE, spec
from index.bank_types import ImportResult
from index.categories import CategoryScheme, label_for_option, load_scheme
from index.errors import BankError, HashListFormatError
from index.ingest import csv as csv_list
from index.ingest import hashlist, nsrl, pdq, rdsv3, vics
from index.ingest.detect import detect_format
from index.ingest.records import (
    Batch,
    Labels,
    ParseOptions,
    Record,
    RejectedRecord,
    batched,
)
from index.multirow import insert_rows
from index.staging import LABELS, Staged, Staging, entry_id, same_as_entry
from index.store_schema import entry_indexes, small_sorts, transaction

Parser = Callable[[str, ParseOptions], Iterator[Record]]
PARSERS: dict[str, Parser] = {
    "csv": csv_list.parse,
    "hashlist": hashlist.parse,
    "pdq": pdq.parse,
    "vics": vics.parse,
    "nsrl": nsrl.parse,
    "rdsv3": rdsv3.parse,
}
BatchParser = Callable[[str, ParseOptions], Iterator[Batch]]



def _nsrl_batches(path: str, options: ParseOptions) -> Iterator[Batch]:
    return batched(nsrl.parse(path, options))


# what an import reads: the same records as PARSERS, staged in bulk
BATCHES: dict[str, BatchParser] = {
    "csv": csv_list.batches,
    "hashlist": hashlist.batches,
    "pdq": pdq.batches,
    "vics": vics.batches,
    "nsrl": _nsrl_batches,
    "rdsv3": rdsv3.batches,
}
KNOWN_GOOD_FORMATS = ("nsrl", "rdsv3")  # NIST's lists are known-good by definition
# fullmatch, not match with `$`: `$` also matches before a final newline ("bank\n")
BANK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

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
    replace: bool = False  # the list is the bank's full new version: retract what it lacks


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_bank_name(name: str) -> str:
    if not BANK_NAME.fullmatch(name):
        raise BankError(
            tr("bank name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting "
               "alphanumeric", name=name)
        )
    return name


def resolve(path: str, options: ImportOptions) -> tuple[str, CategoryScheme | None, str | None]:
    """(format, scheme object, scheme name to record) for a file and the options given."""
    fmt = detect_format(path) if options.format == "auto" else options.format
    if fmt not in PARSERS:
        raise BankError(tr("unknown list format {fmt!r}: one of {formats}", fmt=fmt,
                           formats=", ".join(PARSERS)))
    if options.algo is not None:
        spec(options.algo)
        if options.algo in STORE_PRIVATE:
            raise BankError(tr("{algo} entries come from media (bank import-media), not from "
                               "hash lists", algo=options.algo))
    scheme = load_scheme(options.scheme) if options.scheme else None
    name = options.scheme
    if name is None and fmt == "vics":
        with open(path, "rb") as f:
            head = f.read(1 << 16).decode("utf-8", "replace")
        name = vics.context_scheme(head)[1]
    return fmt, scheme, name


def error_text(e: HashListFormatError) -> str:
    """The file-level error of an import report (English, kept translatable for the CLI)."""
    if e.line is None:
        return e.reason
    return tr("line {line}: {reason}", line=e.line, reason=e.reason)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


IDS_CAP = 10_000  # entry ids listed per kind in a report (the counts are always complete)


def stage_file(
    con: sqlite3.Connection, path: str, fmt: str, parse_options: ParseOptions
) -> Staging:
    """Parse `path` into temp tables on `con` (checks not yet run: see `Staging.finish`).

    Raises `Rollback` (with what was found before it) when the file is unreadable part-way.
    The staging tables stay until `drop_staging(con)` or the next staging on `con`.
    """
    staging = Staging(con)
    collecting = gc.isenabled()
    # millions of short-lived row tuples would trigger full collections over and over
    gc.disable()
    try:
        with transaction(con, write=False):  # writes only temp tables: takes no store lock
            for batch in BATCHES[fmt](path, parse_options):
                staging.add(batch)
    except HashListFormatError as e:
        raise Rollback(
            ImportResult(
                bank="", file=path, format=fmt, status="rejected",
                rejected=staging.sorted_rejected(), notes=dict(staging.notes),
                error=error_text(e),
            )
        ) from None
    finally:
        if collecting:
            gc.enable()
    return staging


def check_options(options: ImportOptions) -> None:
    """Refuse option combinations that would lose data."""
    if options.replace and options.skip_invalid:
        raise BankError(
            tr("--replace with --skip-invalid would retract the entries of every record "
               "skipped: a replacing list must be valid as a whole")
        )
    if options.replace and not options.version:
        raise BankError(
            tr("--replace needs --version: the history records which version dropped an entry")
        )


def parse_options_for(options: ImportOptions, scheme: CategoryScheme | None) -> ParseOptions:
    return ParseOptions(
        algo=options.algo,
        # `--category 1` is a code like a category column's "1"; words stay labels
        category=label_for_option(options.category, scheme).label if options.category else None,
        scheme=scheme, known_good=options.known_good,
    )


def refused(options: ImportOptions, path: str, fmt: str, staged: Staged) -> ImportResult:
    """The result of an all-or-nothing import that met invalid records."""
    return ImportResult(
        bank=options.bank, file=path, format=fmt, status="rejected", version=options.version,
        replace=options.replace, records=staged.records, duplicates=staged.duplicates,
        rejected=staged.rejected, notes=staged.notes, skip_invalid=options.skip_invalid,
    )


def validate_file(path: str, options: ImportOptions) -> ImportResult:
    """`bank validate`: the import's checks and report, in a throwaway database, writing nothing.

    Status "valid" or "invalid"; `records` and `added` say what an import into an empty bank
    would hold. Raises HashListFormatError/OSError/BankError as an import would.
    """
    fmt, scheme, _ = resolve(path, options)
    con = sqlite3.connect("", isolation_level=None)  # a private temp file, deleted on close
    try:
        con.execute("PRAGMA temp_store=FILE")
        try:
            staged = stage_file(con, path, fmt, parse_options_for(options, scheme)).finish()
        except Rollback as r:
            return replace_result(r.result, bank=options.bank, status="invalid")
        return ImportResult(
            bank=options.bank, file=path, format=fmt,
            status="invalid" if staged.rejected else "valid", version=options.version,
            replace=options.replace, records=staged.records, added=staged.hashes,
            duplicates=staged.duplicates, rejected=staged.rejected, notes=staged.notes,
            skip_invalid=options.skip_invalid,
        )
    finally:
        con.close()


def _ids(con: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> tuple[list[str], bool]:
    ids = [i for (i,) in con.execute(sql + f" LIMIT {IDS_CAP + 1}", args)]
    return ids[:IDS_CAP], len(ids) > IDS_CAP


_MATCH = "e.bank_id = ? AND e.algorithm = u.algorithm AND e.hash = u.hash"
_FROM_UNIQ = " FROM staging.uniq u JOIN staging.labels l ON l.id = u.label"
_SAME = same_as_entry("e", "u", "l")
_COLUMNS = f"entry_id, {', '.join(LABELS)}"
_VALUES = f"{entry_id('u')}, {', '.join('l.' + c for c in LABELS)}"


def _bank_and_import(
    con: sqlite3.Connection, path: str, options: ImportOptions, fmt: str,
    scheme_name: str | None, stamp: str,
) -> tuple[int, int]:
    known_good = options.known_good or fmt in KNOWN_GOOD_FORMATS
    row = con.execute("SELECT id FROM banks WHERE name = ?", (options.bank,)).fetchone()
    if row is None:
        bank_id = con.execute(
            "INSERT INTO banks (name, source, list_name, version, imported_at, known_good, scheme)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (options.bank, options.source, Path(path).name, options.version, stamp,
             int(known_good), scheme_name),
        ).lastrowid
    else:
        bank_id = row[0]
    import_id = con.execute(
        "INSERT INTO imports (bank_id, file, file_sha256, format, version, imported_at, added,"
        " updated, unchanged, rejected) VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0)",
        (bank_id, str(Path(path).resolve()), file_sha256(path), fmt, options.version, stamp),
    ).lastrowid
    assert bank_id is not None and import_id is not None
    return bank_id, import_id


def _finish_bank(
    con: sqlite3.Connection, path: str, options: ImportOptions, fmt: str,
    scheme_name: str | None, stamp: str, bank_id: int, import_id: int, result: ImportResult,
) -> None:
    known_good = options.known_good or fmt in KNOWN_GOOD_FORMATS
    con.execute(
        "UPDATE imports SET added = ?, updated = ?, unchanged = ?, rejected = ? WHERE id = ?",
        (result.added, result.updated, result.unchanged, len(result.rejected), import_id),
    )
    con.execute(
        "UPDATE banks SET source = COALESCE(?, source), version = COALESCE(?, version),"
        " list_name = ?, imported_at = ?, known_good = MAX(known_good, ?),"
        " scheme = COALESCE(?, scheme) WHERE id = ?",
        (options.source, options.version, Path(path).name, stamp, int(known_good), scheme_name,
         bank_id),
    )


def import_fresh(
    con: sqlite3.Connection, path: str, options: ImportOptions, fmt: str,
    staging: Staging, scheme_name: str | None,
) -> tuple[ImportResult, set[str]] | None:
    """The common first import: a bank with no entries yet and a list that repeats nothing.

    Inserts the staged rows straight into `entries`; the store's unique key notices a repeated
    hash and the count of ids a repeated explicit id, in which case the insert is undone and
    None returned (the caller then runs the full checks). Runs inside the caller's write
    transaction.
    """
    row = con.execute(
        "SELECT b.id FROM banks b WHERE b.name = ? AND EXISTS"
        " (SELECT 1 FROM entries e WHERE e.bank_id = b.id)",
        (options.bank,),
    ).fetchone()
    if row is not None:
        return None
    stamp = now()
    con.execute("SAVEPOINT fresh")
    bank_id, import_id = _bank_and_import(con, path, options, fmt, scheme_name, stamp)
    insert = (
        f"INSERT INTO entries (bank_id, algorithm, hash, {_COLUMNS}, import_id, line)"
        f" SELECT ?, u.algorithm, u.hash, {_VALUES}, ?, u.line FROM staging.stage u"
        " JOIN staging.labels l ON l.id = u.label"
    )
    try:
        with bulk_indexes(con, staging.rows, unique=True) as unkeyed:
            if unkeyed:
                # no index to keep; rebuilding the key on leaving finds any repeated hash
                # (IntegrityError). Row order: where the ids are the hashes, the key's order
                # sorts both indexes' input (10^6 MD5: 4.8 s CPU against 5.3 in file order);
                # with explicit ids, which mostly ascend with the file, file order spares
                # the ORDER BY's sort and the id index's (10^6 CSV entries: 5.4 s against 7.2)
                order = "" if staging.explicit else " ORDER BY u.hash, u.algorithm"
                with small_sorts(con):  # the ORDER BY's sort (10^6 MD5: 4.3 -> 3.8 s)
                    added = con.execute(insert + order, (bank_id, import_id)).rowcount
            else:
                added = con.execute(
                    insert + " ORDER BY u.algorithm, u.hash ON CONFLICT DO NOTHING",
                    (bank_id, import_id),
                ).rowcount
                if added != staging.rows:
                    raise sqlite3.IntegrityError("a repeated hash")
        if staging.explicit and _ids_in_bank(con, bank_id) != staging.records:
            # an explicit id on several records: the full checks say which conflict
            raise sqlite3.IntegrityError("a repeated id")
    except sqlite3.IntegrityError:
        con.execute("ROLLBACK TO fresh")
        con.execute("RELEASE fresh")
        return None
    ids, truncated = _ids(
        con, "SELECT DISTINCT entry_id FROM entries WHERE import_id = ?", (import_id,)
    )
    result = ImportResult(
        bank=options.bank, file=path, format=fmt, status="imported", version=options.version,
        replace=options.replace, records=staging.records, added=added,
        ids={"added": ids, "changed": [], "retracted": [], "reinstated": []},
        ids_truncated=truncated, rejected=staging.sorted_rejected(), notes=dict(staging.notes),
        skip_invalid=options.skip_invalid,
    )
    _finish_bank(con, path, options, fmt, scheme_name, stamp, bank_id, import_id, result)
    con.execute("RELEASE fresh")
    return result, set(staging.algorithms)


# the fewest bytes a listed digest takes in a list big enough for `import_direct` (our CSV
# export: ~50 a digest, a VICS Media ~85): file size // this bounds its rows from below
DIRECT_BYTES = 128
# per batch shape (index.ingest.records): the hash, entry id and line of one staged row; the
# algorithm, labels, bank and import are inlined as the whole group shares them
_DIRECT = {
    "line": "?2, ?2{labels}, ?1",
    "keyed": "?2, COALESCE(?3, ?2){labels}, ?1",
    "item": "?3, COALESCE(?4, ?3){labels}, ?2",
}


def least_rows(path: str) -> int:
    """The fewest entry rows a list of this file's size can hold (see `DIRECT_BYTES`)."""
    return os.path.getsize(path) // DIRECT_BYTES


class _Fallback(Exception):
    """Internal: the direct first import met what only the staged checks can judge."""


def _literal(value: str | int | None) -> str:
    """An SQL literal for a label value (text quoted with '' doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(int(value))
    if "\0" in value:
        raise _Fallback  # SQL text cannot carry NUL: the staged path binds it instead
    return "'" + value.replace("'", "''") + "'"


# the label columns whose default (store_schema) is not NULL
_LABEL_DEFAULTS = {"known_good": 0}


def _label_sql(labels: Labels) -> tuple[str, str]:
    """(", column, ..." , ", literal, ...") for a group's labels, each column at its default
    left out: its row then takes the default at no cost (10^6 rows: 0.53 -> 0.50 s of CPU)."""
    given = [(c, v) for c, v in zip(LABELS, labels[1:], strict=True)
             if v != _LABEL_DEFAULTS.get(c)]
    return ("".join(f", {c}" for c, _ in given), "".join(f", {_literal(v)}" for _, v in given))


def import_direct(
    con: sqlite3.Connection, path: str, options: ImportOptions, fmt: str,
    parse_options: ParseOptions, scheme_name: str | None,
) -> tuple[ImportResult, set[str]] | None:
    """A large first import without staging: the parser's batches go straight into `entries`
    (indexes dropped, built after), inside the caller's write transaction.

    Staging a list and copying it into the bank wrote every row twice (10^6 CSV entries:
    0.88 s of CPU to stage, 0.47 to copy, against 0.95 for the one insert). A bank with no
    entries needs no comparison with its bank, and a list that repeats nothing needs none of
    the staged checks: the unique key notices a repeated hash and the count of ids a repeated
    explicit id. Then, or at the first rejected record of an all-or-nothing import, or when
    the file turns out unreadable, everything is undone and None returned: the caller stages
    the list (reading it again) for the full checks and their report. Only for a list that
    is large against the store (`rebuilds_indexes` with its size's lowest row count), so
    the bank's indexes are rebuilt, not updated in file order. Holds the write lock while
    parsing (readers go on under WAL, and wait under `rollback_journal`; another importer
    waits).
    """
    least = least_rows(path)
    if not rebuilds_indexes(con, least):
        return None
    if con.execute(
        "SELECT 1 FROM banks b WHERE b.name = ? AND EXISTS"
        " (SELECT 1 FROM entries e WHERE e.bank_id = b.id)",
        (options.bank,),
    ).fetchone() is not None:
        return None
    stamp = now()
    con.execute("SAVEPOINT direct")
    collecting = gc.isenabled()
    gc.disable()  # millions of short-lived row tuples would trigger full collections
    rows = records = 0
    explicit = False
    algorithms: set[str] = set()
    rejected: list[RejectedRecord] = []
    notes: Counter[str] = Counter()
    try:
        bank_id, import_id = _bank_and_import(con, path, options, fmt, scheme_name, stamp)
        with bulk_indexes(con, least, unique=True):
            for batch in BATCHES[fmt](path, parse_options):
                if batch.rejected and not options.skip_invalid:
                    raise _Fallback
                for (algo, labels, shape), group in batch.groups.items():
                    spec(algo)  # inlined into SQL below: only registry names may pass
                    columns, literals = _label_sql(labels)
                    insert_rows(
                        con, f"INSERT INTO entries (bank_id, algorithm, import_id, hash,"
                        f" entry_id{columns}, line)",
                        f"({bank_id}, '{algo}', {import_id}, "
                        f"{_DIRECT[shape].format(labels=literals)})",
                        group,
                    )
                    rows += len(group)
                    algorithms.add(algo)
                    explicit = explicit or bool(labels[0])
                records += batch.records
                rejected.extend(batch.rejected)
                notes.update(batch.notes)
        if explicit and _ids_in_bank(con, bank_id) != records:
            raise _Fallback  # an explicit id on several records: the checks say which conflict
    except (_Fallback, sqlite3.IntegrityError, HashListFormatError, OSError):
        con.execute("ROLLBACK TO direct")
        con.execute("RELEASE direct")
        return None
    finally:
        if collecting:
            gc.enable()
    ids, truncated = _ids(
        con, "SELECT DISTINCT entry_id FROM entries WHERE import_id = ?", (import_id,)
    )
    result = ImportResult(
        bank=options.bank, file=path, format=fmt, status="imported", version=options.version,
        replace=options.replace, records=records, added=rows,
        ids={"added": ids, "changed": [], "retracted": [], "reinstated": []},
        ids_truncated=truncated,
        rejected=tuple(sorted(rejected, key=lambda r: (r.line, r.item or 0))),
        notes=dict(notes), skip_invalid=options.skip_invalid,
    )
    _finish_bank(con, path, options, fmt, scheme_name, stamp, bank_id, import_id, result)
    con.execute("RELEASE direct")
    return result, algorithms


def _ids_in_bank(con: sqlite3.Connection, bank_id: int) -> int:
    """The bank's distinct entry ids: as many as the list's records unless two records share
    one (each record has one id). Read from the id index, after the insert: sorting the staged
    rows by id before it cost 0.4 s CPU at 10^6 CSV entries, this 0.08 s."""
    (count,) = con.execute(
        "SELECT COUNT(DISTINCT entry_id) FROM entries WHERE bank_id = ?", (bank_id,)
    ).fetchone()
    return int(count)


BULK_ROWS = 100_000  # below this, updating the indexes row by row costs less than rebuilding


def rebuilds_indexes(con: sqlite3.Connection, rows: int) -> bool:
    """Whether inserting `rows` entries rebuilds the indexes of `entries` (`bulk_indexes`)."""
    (total,) = con.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()
    return rows >= BULK_ROWS and rows >= total // 2


@contextmanager
def bulk_indexes(con: sqlite3.Connection, rows: int, unique: bool = False) -> Iterator[bool]:
    """For an insert large against the table, build the indexes on `entries` after it (one
    sort each) instead of updating them row by row; with `unique` the unique key too (the
    body then yields True and must not rely on it). Inside the caller's transaction: when the
    body or a rebuild raises, the caller's rollback restores the indexes with everything else.
    """
    if not rebuilds_indexes(con, rows):
        yield False
        return
    dropped = [(name, sql, u) for name, sql, u in entry_indexes(con) if unique or not u]
    for name, _, _ in dropped:
        con.execute(f"DROP INDEX {name}")
    yield any(u for _, _, u in dropped)
    for _, sql, unique_key in dropped:
        # the key's input (hashes in table order) is random: small sort runs; the id index's
        # mostly ascends (ids in file order, or hashes inserted sorted), which one large run
        # sorts faster (10^7 VICS entries: 4.4 s of CPU against 4.9-5.8 in small runs)
        with small_sorts(con) if unique_key else nullcontext(con):
            con.execute(sql)


# what the one comparison of a list with its bank found for an entry (bits of `found.action`)
_CHANGED, _REINSTATE, _RETRACT, _UNLISTED = 1, 2, 4, 8
_ACTION = (
    f"(NOT ({_SAME})) * {_CHANGED}"
    f" + (e.retracted = 1 AND e.retracted_import IS NOT NULL) * {_REINSTATE}"
)


def scans_bank(rows: int, total: int, hashes: int, replace: bool) -> bool:
    """Whether comparing a list of `hashes` with a bank of `rows` entries (of `total` in the
    store) scans the bank rather than looking up each listed hash."""
    return 4 * rows >= total and (replace or 4 * hashes >= rows)


def _compare(
    con: sqlite3.Connection, bank_id: int, staged: Staged, replace: bool
) -> int | None:
    """Fill `staging.found` with each entry of the bank the list changes: the row id, what
    happens to it (`_ACTION` bits, `_RETRACT` for an active entry a replacing list lacks) and,
    when its labels change, the listed id, labels and line. Returns how many of the list's
    hashes the bank holds when that came with the comparison (None: not known yet).

    One pass instead of one join per question (counts, changed ids, updates, retractions),
    each looking up every listed hash again (10^6 CSV entries replaced: about 2.4 s of CPU
    each). A bank holding much of the store is scanned in row order with one lookup into the
    list per entry, which also finds what the list lacks; a small one is reached through the
    list's hashes and the key index.
    """
    con.execute(
        "CREATE TABLE staging.found (id INTEGER PRIMARY KEY, action INTEGER NOT NULL,"
        " entry_id TEXT, label INTEGER, line INTEGER)"
    )
    keep = (f"INSERT INTO staging.found SELECT id, action, IIF(action & {_CHANGED}, eid, NULL),"
            f" IIF(action & {_CHANGED}, label, NULL), IIF(action & {_CHANGED}, line, NULL)"
            f" FROM (SELECT e.id AS id, {{}} AS action, {entry_id('u')} AS eid, u.label AS label,"
            " u.line AS line{}) WHERE action != 0")
    (total,) = con.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()
    (rows,) = con.execute("SELECT COUNT(*) FROM entries WHERE bank_id = ?", (bank_id,)).fetchone()
    if scans_bank(rows, total, staged.hashes, replace):
        con.execute(
            keep.format(
                f"CASE WHEN u.hash IS NULL THEN IIF(? AND e.retracted = 0, {_RETRACT},"
                f" {_UNLISTED})"
                f" ELSE {_ACTION} END",
                " FROM entries AS e NOT INDEXED LEFT JOIN staging.uniq u"
                " ON u.algorithm = e.algorithm AND u.hash = e.hash"
                " LEFT JOIN staging.labels l ON l.id = u.label WHERE e.bank_id = ?",
            ),
            (int(replace), bank_id),
        )
        (unlisted,) = con.execute(
            f"SELECT COUNT(*) FROM staging.found WHERE action IN ({_RETRACT}, {_UNLISTED})"
        ).fetchone()
        return int(rows - unlisted)
    con.execute(keep.format(_ACTION, f"{_FROM_UNIQ} JOIN entries e ON {_MATCH}"), (bank_id,))
    if replace:
        con.execute(
            f"INSERT INTO staging.found SELECT e.id, {_RETRACT}, NULL, NULL, NULL FROM entries e"
            " WHERE e.bank_id = ? AND e.retracted = 0 AND NOT EXISTS (SELECT 1 FROM"
            " staging.uniq u WHERE u.algorithm = e.algorithm AND u.hash = e.hash)",
            (bank_id,),
        )
    return None


def import_into(
    con: sqlite3.Connection,
    path: str,
    options: ImportOptions,
    fmt: str,
    staged: Staged,
    scheme_name: str | None,
) -> tuple[ImportResult, set[str]]:
    """Merge a staged list into its bank inside one transaction (already begun by the caller).

    The list is compared with the bank once (`_compare`); then changed labels are updated,
    entries dropped by an earlier `--replace` and listed again reinstated (a retraction by
    hand stays), new hashes inserted in sorted order, and with `options.replace` every active
    entry the list no longer holds retracted with this import recorded as the one that
    dropped it. Returns the result and the algorithms whose matchable rows changed.
    """
    stamp = now()
    bank_id, import_id = _bank_and_import(con, path, options, fmt, scheme_name, stamp)
    existing = _compare(con, bank_id, staged, options.replace)
    touched: set[str] = set()
    truncated = False

    def act(action: int, sets: str, args: tuple[Any, ...] = ()) -> list[tuple[str, str]]:
        return con.execute(
            f"UPDATE entries AS e SET {sets} FROM staging.found f WHERE e.id = f.id"
            f" AND f.action & {action} RETURNING algorithm, entry_id",
            args,
        ).fetchall()

    reinstated = act(_REINSTATE, "retracted = 0, retracted_at = NULL, retract_reason = NULL,"
                     " retracted_import = NULL")
    touched.update(a for a, _ in reinstated)
    changed_ids, t = _ids(
        con, f"SELECT DISTINCT entry_id FROM staging.found WHERE action & {_CHANGED}", ()
    )
    truncated |= t
    changed = con.execute(
        f"UPDATE entries AS e SET ({_COLUMNS}, import_id, line) = (f.entry_id,"
        f" {', '.join('l.' + c for c in LABELS)}, ?, f.line) FROM staging.found f"
        f" JOIN staging.labels l ON l.id = f.label WHERE e.id = f.id AND f.action & {_CHANGED}",
        (import_id,),
    ).rowcount
    new = (f"{_FROM_UNIQ} WHERE u.algorithm = ? AND NOT EXISTS"
           f" (SELECT 1 FROM entries e WHERE {_MATCH})")
    added_ids: list[str] = []
    added = 0
    # the bank's indexes are rebuilt for many new rows, and not touched when none can be new
    with bulk_indexes(con, staged.hashes - (existing or 0)):
        for algo in sorted(staged.algorithms) if existing != staged.hashes else ():
            (before,) = con.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()
            n = con.execute(
                f"INSERT INTO entries (bank_id, algorithm, hash, {_COLUMNS}, import_id, line)"
                f" SELECT ?, u.algorithm, u.hash, {_VALUES}, ?, u.line{new} ORDER BY u.hash",
                (bank_id, import_id, algo, bank_id),
            ).rowcount
            added += n
            if n:
                touched.add(algo)
                if len(added_ids) < IDS_CAP:
                    # the rows just appended, in the hash order they were inserted in
                    more, t = _ids(con, "SELECT DISTINCT entry_id FROM entries WHERE id > ?",
                                   (before,))
                    added_ids.extend(i for i in more if i not in added_ids)
                    truncated |= t
    if len(added_ids) > IDS_CAP:
        added_ids, truncated = added_ids[:IDS_CAP], True
    retracted = act(_RETRACT, "retracted = 1, retracted_at = ?, retract_reason = ?,"
                    " retracted_import = ?",
                    (stamp, f"not in list version {options.version}", import_id))
    touched.update(a for a, _ in retracted)
    existing = staged.hashes - added

    def distinct(pairs: list[tuple[str, str]]) -> list[str]:
        nonlocal truncated
        ids = sorted({i for _, i in pairs})
        truncated |= len(ids) > IDS_CAP
        return ids[:IDS_CAP]

    result = ImportResult(
        bank=options.bank,
        file=path,
        format=fmt,
        status="imported",
        version=options.version,
        replace=options.replace,
        records=staged.records,
        added=added,
        updated=changed,
        unchanged=existing - changed,
        duplicates=staged.duplicates,
        retracted=len(retracted),
        reinstated=len(reinstated),
        ids={
            "added": added_ids,
            "changed": changed_ids,
            "retracted": distinct(retracted),
            "reinstated": distinct(reinstated),
        },
        ids_truncated=truncated,
        rejected=staged.rejected,
        notes=staged.notes,
        skip_invalid=options.skip_invalid,
    )
    _finish_bank(con, path, options, fmt, scheme_name, stamp, bank_id, import_id, result)
    return result, touched


class Rollback(Exception):
    """Internal: unwinds the import transaction while carrying the result to report."""

    def __init__(self, result: ImportResult) -> None:
        super().__init__(result.status)
        self.result = result
