"""The bank store: one private directory with a SQLite database and perceptual index files.

`BankStore` is the library behind every `triage bank` command (import, list, show, export,
retract, enable, disable, rebuild) and `open_matcher()` is what a scan uses. Every change is one
SQLite transaction that also bumps the generation of the algorithms it affects; index files are
rebuilt after the commit, so a crash between the two only leaves an index that the next
`open_matcher()` sees is stale and rebuilds.

Layout of the store directory (0700; files 0600):
    banks.sqlite (+ -wal, -shm)   metadata, entries, import history, index records
                                  (+ -journal while a bulk import has it to itself)
    index/<algorithm>.faissbin    one FAISS binary index per perceptual algorithm
    reports/import-<bank>-<time>.json
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from typing import TextIO

from hashing.errors import TriageError
from hashing.i18n import N_, Text, tr
from hashing.registry import PERCEPTUAL, SPECS
from index import attached, bank_export
from index.bank_import import (
    ImportOptions,
    Rollback,
    check_bank_name,
    check_options,
    error_text,
    import_direct,
    import_fresh,
    import_into,
    least_rows,
    parse_options_for,
    rebuilds_indexes,
    refused,
    resolve,
    stage_file,
)
from index.bank_index import BankMatcher, build, bump
from index.bank_types import (
    BankDetail,
    BankEntry,
    BankInfo,
    FalsePositive,
    ImportHistory,
    ImportRejectedError,
    ImportResult,
    IndexInfo,
    RetractResult,
)
from index.errors import BankError, HashListFormatError
from index.ingest.records import ParseOptions, is_skippable
from index.staging import drop as drop_staging
from index.store_schema import (
    connect,
    rollback_journal,
    small_sorts,
    transaction,
    unchecked_references,
)

__all__ = [
    "BankDetail",
    "BankEntry",
    "BankInfo",
    "BankMatcher",
    "BankStore",
    "ImportOptions",
    "ImportRejectedError",
    "ImportResult",
    "IndexInfo",
    "RetractResult",
    "default_store_dir",
    "store_exists",
]

log = logging.getLogger(__name__)
_HEX = frozenset("0123456789abcdef")
_HASH_LENGTHS = {s.hex_length for s in SPECS.values()}
_DB_NAME = "banks.sqlite"


def default_store_dir() -> str:
    """`$TRIAGE_STORE`, else `$XDG_DATA_HOME/osec-triage` (XDG default ~/.local/share)."""
    env = os.environ.get("TRIAGE_STORE")
    if env:
        return env
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(data, "osec-triage")


def store_exists(store_dir: str | os.PathLike[str]) -> bool:
    """True when `store_dir` holds a bank store (a scan must never create one by accident)."""
    return os.path.isfile(os.path.join(os.fspath(store_dir), _DB_NAME))


def _private_dir(path: str) -> None:
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # makedirs' mode is filtered by the umask
    elif os.stat(path).st_mode & 0o077:
        log.warning("store directory %s is readable by other users", path)


def _private_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


class BankStore:
    """A bank store directory. Open one per process; it holds one SQLite connection."""

    def __init__(self, store_dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = os.path.abspath(os.fspath(store_dir) if store_dir else default_store_dir())
        _private_dir(self.dir)
        for sub in ("index", "reports"):
            _private_dir(os.path.join(self.dir, sub))
        self.db_path = os.path.join(self.dir, _DB_NAME)
        with self._writing(N_("cannot open the bank store")):
            if not os.path.exists(self.db_path):
                # create it 0600 before SQLite does; SQLite gives -wal/-shm the same mode
                os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT, 0o600))
            self.con = connect(self.db_path)
        from index.faiss_store import remove_stale_temps

        remove_stale_temps(os.path.join(self.dir, "index"))  # of writers killed mid-way

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> BankStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- import ---------------------------------------------------------------------------

    def _import(
        self, path: str, options: ImportOptions, fmt: str, parse_options: ParseOptions,
        scheme_name: str | None,
    ) -> tuple[ImportResult, set[str]]:
        """The import's write transactions: straight into `entries`, else staged and checked."""
        # every reference an import writes is to its own bank and import rows (or to a bank
        # read in the same write transaction)
        with unchecked_references(self.con), transaction(self.con):
            done = import_direct(self.con, path, options, fmt, parse_options, scheme_name)
            if done is not None:
                bump(self.con, done[1])
                return done
        staging = stage_file(self.con, path, fmt, parse_options)
        if staging.rejected and not options.skip_invalid:
            raise Rollback(refused(options, path, fmt, staging.finish()))
        with unchecked_references(self.con), transaction(self.con):
            done = import_fresh(self.con, path, options, fmt, staging, scheme_name)
            if done is None:
                with small_sorts(self.con):  # sorts of the staged list only
                    staged = staging.finish()
                if staged.rejected and not options.skip_invalid:
                    raise Rollback(refused(options, path, fmt, staged))
                done = import_into(self.con, path, options, fmt, staged, scheme_name)
            bump(self.con, done[1])
        return done

    def import_file(
        self, path: str, options: ImportOptions, report_path: str | None = None
    ) -> ImportResult:
        """Import one list into `options.bank`; raises ImportRejectedError when nothing was written.

        The JSON report is written in both cases (default under `<store>/reports/`).
        """
        check_bank_name(options.bank)
        check_options(options)
        fmt = options.format
        touched: set[str] = set()
        try:
            fmt, scheme, scheme_name = resolve(path, options)
            parse_options = parse_options_for(options, scheme)
            # a list large against the store rebuilds its indexes: alone, it skips the WAL
            bulk = rebuilds_indexes(self.con, least_rows(path))
            with rollback_journal(self.con) if bulk else nullcontext(False):
                done = self._import(path, options, fmt, parse_options, scheme_name)
            result, touched = done
        except sqlite3.Error as e:
            # the store, not the list, is at fault (full disk, I/O error): not a rejection
            raise BankError(tr(
                "{store}: cannot write the bank store, nothing was imported: {reason}",
                store=str(self.dir), reason=_cause(e))) from e
        except Rollback as r:
            result = replace(r.result, bank=options.bank, skip_invalid=options.skip_invalid)
        except (HashListFormatError, OSError) as e:
            error = error_text(e) if isinstance(e, HashListFormatError) else str(e)
            result = ImportResult(
                options.bank, path, fmt, "rejected", error=error, skip_invalid=options.skip_invalid
            )
        finally:
            try:
                drop_staging(self.con)
            except sqlite3.Error:
                pass  # the temp tables die with the connection anyway
        report = report_path or os.path.join(
            self.dir,
            "reports",
            f"import-{options.bank}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.json",
        )
        try:
            _private_file(report, json.dumps(result.to_dict(), indent=2) + "\n")
            result = replace(result, report_path=report)
        except OSError as e:
            # the import itself stands (or was refused) either way; only the file is missing
            log.warning("import report %s not written: %s", report, e)
        if result.status == "rejected":
            raise ImportRejectedError(result)
        self._rebuild(touched)
        return result

    def attach(self, path: str, bank: str, source: str | None = None,
               version: str | None = None) -> BankInfo:
        """Attach an NSRL RDSv3 publication as a known-good bank read in place, read-only
        (`index.attached`); attaching an attached bank again takes the new publication."""
        check_bank_name(bank)
        with self._writing("cannot attach the publication"):
            row = self.con.execute(
                "SELECT b.id, a.bank_id FROM banks b LEFT JOIN attachments a ON a.bank_id = b.id"
                " WHERE b.name = ?", (bank,)).fetchone()
            if row is not None and row[1] is None:
                raise BankError(f"bank {bank!r} holds imported entries: attach under a new name")
            try:
                rows, columns = attached.inspect(path, self.dir, bank)
            except HashListFormatError as e:
                raise BankError(f"{path}: {error_text(e)}") from None
            with transaction(self.con):
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                if row is None:
                    bank_id = self.con.execute(
                        "INSERT INTO banks (name, source, list_name, version, imported_at,"
                        " known_good, scheme) VALUES (?, ?, ?, ?, ?, 1, NULL)",
                        (bank, source, os.path.basename(path), version, stamp),
                    ).lastrowid
                    assert bank_id is not None
                else:
                    bank_id = row[0]
                    self.con.execute("DELETE FROM attachments WHERE bank_id = ?", (bank_id,))
                    self.con.execute(
                        "UPDATE banks SET source = COALESCE(?, source), version = ?,"
                        " list_name = ?, imported_at = ? WHERE id = ?",
                        (source, version, os.path.basename(path), stamp, bank_id),
                    )
                attached.record(self.con, bank_id, path, rows, columns)
        return self._info(bank)

    # -- read -------------------------------------------------------------------------------

    def list_banks(self) -> list[BankInfo]:
        names = [n for (n,) in self.con.execute("SELECT name FROM banks ORDER BY name")]
        return [self._info(n) for n in names]

    def show(self, name: str) -> BankDetail:
        info = self._info(name)
        bank_id = self._bank_id(name)
        per_algo = dict(
            self.con.execute(
                "SELECT algorithm, COUNT(*) FROM entries WHERE bank_id = ? AND retracted = 0"
                " GROUP BY algorithm ORDER BY algorithm",
                (bank_id,),
            )
        )
        imports = tuple(
            ImportHistory(*row)
            for row in self.con.execute(
                "SELECT file, file_sha256, format, version, imported_at, added, updated,"
                " unchanged, rejected FROM imports WHERE bank_id = ? ORDER BY id",
                (bank_id,),
            )
        )
        false_positives = tuple(
            (str(e), int(n))
            for e, n in self.con.execute(
                "SELECT entry_id, COUNT(*) FROM false_positives WHERE bank_id = ?"
                " GROUP BY entry_id ORDER BY COUNT(*) DESC, entry_id",
                (bank_id,),
            )
        )
        return BankDetail(info, per_algo, imports, false_positives)

    def history(self, name: str) -> list[dict[str, object]]:
        """Every entry of the bank, retracted ones included, with retraction time and reason (and
        the list version that dropped it, for entries a replacing import retracted)."""
        bank_id = self._bank_id(name)
        cur = self.con.execute(
            "SELECT e.entry_id, e.algorithm, e.hash, e.retracted, e.retracted_at,"
            " e.retract_reason, i.version AS retracted_version FROM entries e"
            " LEFT JOIN imports i ON i.id = e.retracted_import WHERE e.bank_id = ? ORDER BY e.id",
            (bank_id,),
        )
        keys = [d[0] for d in cur.description]
        return [dict(zip(keys, row, strict=True)) for row in cur]

    def export(self, name: str, fmt: str, out: TextIO) -> int:
        bank_id = self._bank_id(name)
        (scheme,) = self.con.execute("SELECT scheme FROM banks WHERE id = ?", (bank_id,)).fetchone()
        with transaction(self.con, write=False):
            return bank_export.export(self.con, bank_id, scheme, fmt, out)

    # -- change -----------------------------------------------------------------------------

    def set_enabled(self, name: str, enabled: bool) -> BankInfo:
        bank_id = self._bank_id(name)
        with self._writing(N_("cannot write the bank store")), transaction(self.con):
            changed = self.con.execute(
                "UPDATE banks SET enabled = ? WHERE id = ? AND enabled != ?",
                (int(enabled), bank_id, int(enabled)),
            ).rowcount
            algos = self._algorithms(bank_id) if changed else set()
            bump(self.con, algos)
        self._rebuild(algos)
        return self._info(name)

    def retract(self, name: str, hashes: Iterable[str], reason: str | None = None,
                whole_item: bool = False) -> RetractResult:
        """Retract entries of bank `name` with these hashes (any algorithm): kept, never matched.
        With `whole_item`, every hash of the same item (entry id) goes with it."""
        bank_id = self._bank_id(name)
        wanted = [_normal_hash(h) for h in hashes]
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        count = 0
        not_found: list[str] = []
        algos: set[str] = set()
        with self._writing(N_("cannot write the bank store")), transaction(self.con):
            for h in wanted:
                rows = self.con.execute(
                    "SELECT id, algorithm FROM entries WHERE bank_id = ? AND hash = ?"
                    " AND retracted = 0",
                    (bank_id, h),
                ).fetchall()
                if whole_item:
                    rows = self.con.execute(
                        "SELECT id, algorithm FROM entries WHERE bank_id = ? AND retracted = 0"
                        " AND entry_id IN (SELECT entry_id FROM entries WHERE bank_id = ?"
                        " AND hash = ?)",
                        (bank_id, bank_id, h),
                    ).fetchall()
                if not rows:
                    already = self.con.execute(
                        "SELECT 1 FROM entries WHERE bank_id = ? AND hash = ?", (bank_id, h)
                    ).fetchone()
                    if already is None:
                        not_found.append(h)
                    continue
                for pk, algo in rows:
                    self.con.execute(
                        "UPDATE entries SET retracted = 1, retracted_at = ?, retract_reason = ?"
                        " WHERE id = ?",
                        (stamp, reason, pk),
                    )
                    algos.add(algo)
                    count += 1
            bump(self.con, algos)
        self._rebuild(algos)
        return RetractResult(count, tuple(not_found))

    def record_false_positives(self, reports: Iterable[FalsePositive]) -> int:
        """Record analysts' confirmed false matches on bank entries (once per case and item);
        returns how many were new. A bank or entry that no longer exists is skipped."""
        added = 0
        with self._writing(N_("cannot write the bank store")), transaction(self.con):
            for fp in reports:
                row = self.con.execute("SELECT id FROM banks WHERE name = ?", (fp.bank,)).fetchone()
                if row is None:
                    continue
                added += self.con.execute(
                    "INSERT OR IGNORE INTO false_positives (bank_id, entry_id, case_name, item,"
                    " who, at, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (row[0], fp.entry_id, fp.case_name, fp.item, fp.who, fp.at, fp.note),
                ).rowcount
        return added

    def retract_file(self, name: str, path: str, reason: str | None = None,
                     whole_item: bool = False) -> RetractResult:
        """`retract` with hashes read from a file, one per line (`#` comments allowed)."""
        try:
            with open(path, encoding="utf-8-sig") as f:
                hashes = [line.strip() for line in f if not is_skippable(line)]
        except (OSError, UnicodeDecodeError) as e:
            raise BankError(tr("{path}: cannot read: {reason}", path=str(path),
                               reason=str(e))) from None
        return self.retract(name, hashes, reason, whole_item)

    def rebuild(self) -> list[IndexInfo]:
        """Rebuild every perceptual index file from the current entries.

        Raises BankError (a full disk, an I/O error) after which the old files are in place.
        """
        with self._writing(N_("cannot rebuild the index")):
            return [build(self.con, self.dir, algo) for algo in PERCEPTUAL]

    def open_matcher(self) -> BankMatcher:
        """A matcher over enabled, non-retracted entries; stale or corrupt indexes are rebuilt
        (BankError when that rebuild cannot be written)."""
        with self._writing(N_("cannot open the matcher")):
            return BankMatcher(self.db_path, self.dir)

    # -- helpers ----------------------------------------------------------------------------

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn a failed write to the store (full disk, I/O error, read-only file system) into
        a BankError naming the store, instead of a bare sqlite3/OS error."""
        try:
            yield
        except TriageError:
            raise
        except (sqlite3.Error, OSError) as e:
            raise BankError(Text("{store}: {what}: {reason}", {
                "store": str(self.dir), "what": Text(what, {}), "reason": _cause(e)})) from e

    def _rebuild(self, algos: set[str]) -> None:
        """Rebuild after a committed change; a failure here only leaves the index stale."""
        for algo in sorted(algos & set(PERCEPTUAL)):
            try:
                build(self.con, self.dir, algo)
            except (TriageError, OSError, sqlite3.Error) as e:
                log.warning("%s index not rebuilt (%s); it will be when next opened", algo, e)

    def _bank_id(self, name: str) -> int:
        row = self.con.execute("SELECT id FROM banks WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise BankError(tr("no bank named {name!r} in {store}", name=name,
                               store=str(self.dir)))
        return int(row[0])

    def _algorithms(self, bank_id: int) -> set[str]:
        return {
            a
            for (a,) in self.con.execute(
                "SELECT DISTINCT algorithm FROM entries WHERE bank_id = ?", (bank_id,)
            )
        }

    def _info(self, name: str) -> BankInfo:
        bank_id = self._bank_id(name)
        row = self.con.execute(
            "SELECT name, enabled, known_good, source, version, list_name, imported_at, scheme"
            " FROM banks WHERE id = ?",
            (bank_id,),
        ).fetchone()
        counts = self.con.execute(
            "SELECT algorithm, SUM(retracted = 0), SUM(retracted) FROM entries"
            " WHERE bank_id = ? GROUP BY algorithm ORDER BY algorithm",
            (bank_id,),
        ).fetchall()
        publication = self.con.execute(
            "SELECT rows, columns FROM attachments WHERE bank_id = ?", (bank_id,)).fetchone()
        if publication is not None:  # read in place: its FILE rows, in every digest it holds
            counts = [(a, publication[0], 0) for a in sorted(json.loads(publication[1]))]
        return BankInfo(
            name=row[0],
            entries=sum(c[1] for c in counts),
            algorithms=tuple(c[0] for c in counts if c[1]),
            enabled=bool(row[1]),
            known_good=bool(row[2]),
            source=row[3],
            version=row[4],
            list_name=row[5],
            imported_at=row[6],
            scheme=row[7],
            retracted=sum(c[2] for c in counts),
            false_positives=self.con.execute(
                "SELECT COUNT(*) FROM false_positives WHERE bank_id = ?", (bank_id,)
            ).fetchone()[0],
        )


def _cause(e: BaseException) -> str:
    """SQLite says "disk I/O error" for a full disk on most platforms; say what is likely."""
    text = str(e) or type(e).__name__
    if isinstance(e, sqlite3.Error) and ("disk" in text or "full" in text):
        return f"{text} (is the disk full?)"
    return text


def _normal_hash(text: str) -> str:
    value = text.strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    if not value or not set(value) <= _HEX or len(value) not in _HASH_LENGTHS:
        raise BankError(tr("{text!r} is not a hash of any known algorithm", text=text))
    return value
