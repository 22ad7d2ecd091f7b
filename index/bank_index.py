"""Perceptual index files of the bank store, their freshness checks, and the matcher built on them.

One index file per perceptual algorithm holds the distinct hashes of every enabled,
non-retracted entry, sorted; `index_maps` maps each row to its entries (the same hash known to
several banks is one row with several entries). A file is trusted only when its recorded
generation equals the algorithm's current generation and its bytes match the recorded sha256;
otherwise it is rebuilt, with a warning saying why. Files are replaced atomically by
`faiss_store.write_index_atomic` *before* the SQLite record is committed, so a crash in between
leaves a checksum mismatch, which the next open detects and repairs.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter, ne
from typing import Any, overload

import numpy as np

from hashing import codec
from hashing.errors import HashFormatError
from hashing.registry import DIGESTS, PERCEPTUAL, spec
from index.attached import AttachedBank, attachments
from index.bank_import import now
from index.bank_types import BankEntry, IndexInfo
from index.errors import IndexCorruptError
from index.ingest.fastlines import hex_cells
from index.store_schema import connect, small_sorts, transaction

log = logging.getLogger(__name__)

_ENTRY_SELECT = (
    "SELECT b.name, e.entry_id, e.algorithm, e.hash, e.quality, e.category, e.vic_category,"
    " e.caid_category, e.series, MAX(e.known_good, b.known_good),"
    " (SELECT COUNT(*) FROM false_positives f WHERE f.bank_id = e.bank_id"
    " AND f.entry_id = e.entry_id) FROM entries e"
    " JOIN banks b ON b.id = e.bank_id WHERE e.retracted = 0 AND b.enabled = 1"
)


def generation(con: sqlite3.Connection, algorithm: str) -> int:
    row = con.execute(
        "SELECT generation FROM generations WHERE algorithm = ?", (algorithm,)
    ).fetchone()
    return int(row[0]) if row else 0


def bump(con: sqlite3.Connection, algorithms: set[str]) -> None:
    """Mark the algorithms' indexes stale (call inside the changing transaction)."""
    for algo in sorted(algorithms):
        con.execute(
            "INSERT INTO generations (algorithm, generation) VALUES (?, 1) ON CONFLICT(algorithm)"
            " DO UPDATE SET generation = generation + 1",
            (algo,),
        )


def index_path(store_dir: str, algorithm: str) -> str:
    return os.path.join(store_dir, "index", f"{algorithm}.faissbin")


BUILD_CHUNK = 1 << 16  # entries read, converted and written at a time by `build`
# `index_maps` holds an index's (row, entry) pairs as blobs of little-endian int64, in row
# order, one blob per `build` chunk: a table row per entry, with its own index, cost 0.42 s of
# CPU to write for 3.3·10^5 PDQ entries, the blobs under 0.01
PAIR = np.dtype("<i8")


def build(con: sqlite3.Connection, store_dir: str, algorithm: str,
          chunk: int = BUILD_CHUNK) -> IndexInfo:
    """Rebuild one algorithm's index file and its row mapping from the current entries.

    Streamed in chunks of `chunk` entries: codes go straight into the index file
    (`CodesWriter`) and the (row, entry) mapping into a temporary file, which the mapping's
    transaction then reads back, so memory stays flat in the bank's size (reading every row at
    once took ~500 bytes an entry: 1.9 GB for 3.3M PDQ hashes).
    """
    from index.faiss_store import CodesWriter, remove_stale_temps

    nbytes = spec(algorithm).nbytes
    path = index_path(store_dir, algorithm)
    remove_stale_temps(os.path.dirname(path))  # left by a writer killed mid-way
    held: set[int] = set()  # banks with an entry in the index
    sha: str | None = None
    with tempfile.TemporaryFile(dir=store_dir) as spill, \
            CodesWriter(path, nbytes) as codes:
        with small_sorts(con), transaction(con, write=False):
            gen = generation(con, algorithm)
            banks = {i: (name, version) for i, name, version in con.execute(
                "SELECT id, name, version FROM banks WHERE enabled = 1")}
            # a scan of the table and one sort: the key's index leads with the hash, so
            # walking it visits every algorithm's rows in random table order (2x slower)
            cursor = con.execute(
                "SELECT e.id, e.hash, e.bank_id FROM entries e NOT INDEXED"
                " WHERE e.algorithm = ? AND e.retracted = 0"
                " AND e.bank_id IN (SELECT id FROM banks WHERE enabled = 1)"
                " ORDER BY e.hash, e.id",
                (algorithm,),
            )
            last: str | None = None
            while rows := cursor.fetchmany(chunk):
                block, pairs, last = _index_chunk(algorithm, rows, last, codes.count, banks)
                held.update(map(itemgetter(2), rows))
                codes.add(block)
                spill.write(pairs.tobytes())
        versions = dict(sorted(banks[i] for i in held))
        entries = spill.tell() // 16
        if codes.count:
            sha = codes.commit()
            os.chmod(path, 0o600)
        elif os.path.exists(path):
            os.remove(path)
        with transaction(con):
            con.execute("DELETE FROM index_maps WHERE algorithm = ?", (algorithm,))
            # a store made before `index_maps`: its row maps are never read again
            con.execute("DROP TABLE IF EXISTS index_rows")
            spill.seek(0)
            part = 0
            while data := spill.read(16 * chunk):
                con.execute("INSERT INTO index_maps (algorithm, part, pairs) VALUES (?, ?, ?)",
                            (algorithm, part, data))
                part += 1
            con.execute(
                "INSERT OR REPLACE INTO index_files (algorithm, file, sha256, rows, entries,"
                " generation, bank_versions, built_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    algorithm,
                    os.path.basename(path) if sha else "",
                    sha or "",
                    codes.count,
                    entries,
                    gen,
                    json.dumps(versions, sort_keys=True),
                    now(),
                ),
            )
    return IndexInfo(algorithm, path if sha else None, sha, codes.count, entries, gen)


def _index_chunk(
    algorithm: str, rows: list[tuple[int, str, int]], last: str | None, first_row: int,
    banks: dict[int, tuple[str, str | None]],
) -> tuple[bytes, np.ndarray, str | None]:
    """One chunk of `build`'s sorted (entry, hash, bank) rows: (the codes of its new distinct
    hashes, its (row, entry) pairs as int64[n, 2], the last hash kept). A stored hash that is
    not valid hex for its algorithm (a tampered row) is skipped with a warning, as are its
    entries."""
    pks, hexes, _ = zip(*rows, strict=True)
    new = list(map(ne, hexes, (last, *hexes[:-1])))
    distinct = list(compress(hexes, new))
    pairs = np.empty((len(rows), 2), dtype=PAIR)
    if hex_cells(distinct, spec(algorithm).hex_length):  # the usual case, in C
        pairs[:, 0] = np.cumsum(new) + (first_row - 1)
        pairs[:, 1] = pks
        return bytes.fromhex("".join(distinct)), pairs, hexes[-1]
    parts: list[bytes] = []  # some stored hash is not plain hex: check each, as the codec does
    kept: list[tuple[int, int]] = []
    row = first_row - 1
    for pk, hex_, bank in rows:
        if hex_ != last:
            try:
                parts.append(codec.hex_to_bits(algorithm, hex_))
            except HashFormatError as e:
                log.warning("skipping stored %s entry %d of bank %s: %s", algorithm, pk,
                            banks[bank][0], e)
                continue
            last = hex_
            row += 1
        kept.append((row, pk))
    return b"".join(parts), np.array(kept, dtype=PAIR).reshape(-1, 2), last


@dataclass(frozen=True, slots=True)
class LoadedIndex:
    codes: np.ndarray  # uint8[rows, nbytes]
    row_ptr: np.ndarray  # int64[rows + 1]: entries of row r are entry_pks[row_ptr[r]:row_ptr[r+1]]
    entry_pks: np.ndarray  # int64
    sha256: str | None
    bank_versions: dict[str, str | None]


def _try_load(con: sqlite3.Connection, store_dir: str, algorithm: str) -> LoadedIndex | str:
    """The recorded index if it is fresh and intact, else the reason it is not."""
    from index.faiss_store import read_index

    with transaction(con, write=False):
        rec = con.execute(
            "SELECT sha256, rows, entries, generation, bank_versions FROM index_files"
            " WHERE algorithm = ?",
            (algorithm,),
        ).fetchone()
        if rec is None:
            return "not built yet"
        sha, nrows, nentries, built_gen, versions = rec
        gen = generation(con, algorithm)
        if built_gen != gen:
            return f"stale (built at generation {built_gen}, bank data now at {gen})"
        if nrows:
            try:
                codes = read_index(index_path(store_dir, algorithm), sha)
            except IndexCorruptError as e:
                return f"corrupt ({e.reason})"
            except OSError as e:
                return f"unreadable ({e})"
            if codes.shape != (nrows, spec(algorithm).nbytes):
                return f"corrupt (holds {codes.shape[0]} rows, {nrows} recorded)"
        else:
            codes = np.zeros((0, spec(algorithm).nbytes), dtype=np.uint8)
        pairs = _row_map(con, algorithm, nentries)
    if isinstance(pairs, str):
        return pairs
    if not _covers_in_order(pairs[:, 0], nrows):
        return "corrupt (row map does not cover the index in row order)"
    row_ptr = np.zeros(nrows + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=nrows), out=row_ptr[1:])
    return LoadedIndex(codes, row_ptr, pairs[:, 1].copy(), sha or None, json.loads(versions))


def _covers_in_order(rows: np.ndarray, nrows: int) -> bool:
    """Whether `rows` runs through 0..nrows-1 in order, each at least once (what `row_ptr`
    needs): it starts at 0, ends at nrows-1 and steps by 0 (the same row) or 1."""
    if len(rows) == 0:
        return nrows == 0
    steps = np.diff(rows)
    return bool(rows[0] == 0 and rows[-1] == nrows - 1 and np.all((steps == 0) | (steps == 1)))


def _row_map(con: sqlite3.Connection, algorithm: str, entries: int) -> np.ndarray | str:
    """The index's (row, entry) pairs as int64[entries, 2], else why not. Filled blob by blob:
    memory is the map and one blob."""
    pairs = np.empty((entries, 2), dtype=np.int64)
    flat = pairs.reshape(-1)
    filled = parts = 0
    for (blob,) in con.execute(
        "SELECT pairs FROM index_maps WHERE algorithm = ? ORDER BY part", (algorithm,)
    ):
        parts += 1
        if not isinstance(blob, bytes) or len(blob) % (2 * PAIR.itemsize):
            return "corrupt (a row map blob is not whole pairs)"
        part = np.frombuffer(blob, dtype=PAIR)
        if filled + part.size > flat.size:
            return "corrupt (row map holds more than the recorded entries)"
        flat[filled : filled + part.size] = part
        filled += part.size
    if entries and not parts:
        # indexes built before `index_maps` kept their map in a table now dropped
        return "stale (no row map: built by an earlier version)"
    if filled != flat.size:
        return "corrupt (row map holds fewer than the recorded entries)"
    return pairs


def load_fresh(con: sqlite3.Connection, store_dir: str, algorithm: str) -> LoadedIndex:
    """Load an algorithm's index, rebuilding it first when it is missing, stale or corrupt."""
    loaded = _try_load(con, store_dir, algorithm)
    if isinstance(loaded, LoadedIndex):
        return loaded
    level = logging.INFO if loaded == "not built yet" else logging.WARNING
    log.log(
        level, "%s index %s: %s; rebuilding", algorithm, index_path(store_dir, algorithm), loaded
    )
    build(con, store_dir, algorithm)
    again = _try_load(con, store_dir, algorithm)
    if isinstance(again, str):
        raise IndexCorruptError(index_path(store_dir, algorithm), f"after rebuild: {again}")
    return again


class _Entries:
    """Fetches entries by primary key through the matcher's shared connection."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        self.lock = threading.Lock()

    def by_pk(self, pks: Sequence[int]) -> list[BankEntry]:
        if not pks:
            return []
        marks = ",".join("?" * len(pks))
        with self.lock:
            rows = self.con.execute(
                f"{_ENTRY_SELECT} AND e.id IN ({marks}) ORDER BY b.name, e.id", list(pks)
            ).fetchall()
        return [_entry(r) for r in rows]

    def by_hash(self, algorithm: str, hex_: str) -> list[BankEntry]:
        with self.lock:
            rows = self.con.execute(
                f"{_ENTRY_SELECT} AND e.algorithm = ? AND e.hash = ? ORDER BY b.name, e.id",
                (algorithm, hex_),
            ).fetchall()
        return [_entry(r) for r in rows]


def _entry(row: tuple[Any, ...]) -> BankEntry:
    bank, entry_id, algorithm, hex_, quality, category, vic, caid, series, known_good, fps = row
    return BankEntry(
        bank, entry_id, algorithm, hex_, quality, category, vic, caid, series, bool(known_good),
        int(fps),
    )


class RowEntries(Sequence[list[BankEntry]]):
    """Index row -> the bank entries with that hash (read from SQLite when asked).

    Labels are read live, so an entry retracted or a bank disabled after the matcher was
    opened drops out (a row can then map to an empty list).
    """

    def __init__(self, entries: _Entries, row_ptr: np.ndarray, entry_pks: np.ndarray) -> None:
        self._entries = entries
        self._row_ptr = row_ptr
        self._pks = entry_pks

    def __len__(self) -> int:
        return len(self._row_ptr) - 1

    @overload
    def __getitem__(self, row: int) -> list[BankEntry]: ...
    @overload
    def __getitem__(self, row: slice) -> list[list[BankEntry]]: ...
    def __getitem__(self, row: int | slice) -> list[BankEntry] | list[list[BankEntry]]:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        if not -len(self) <= row < len(self):
            raise IndexError(row)
        row %= len(self)
        pks = self._pks[self._row_ptr[row] : self._row_ptr[row + 1]]
        return self._entries.by_pk([int(p) for p in pks])


def _digest_prefixes(con: sqlite3.Connection, algorithm: str) -> np.ndarray:
    """Sorted first 8 bytes of every matchable `algorithm` digest, as uint64."""
    cursor = con.execute(
        "SELECT e.hash FROM entries e JOIN banks b ON b.id = e.bank_id"
        " WHERE e.algorithm = ? AND e.retracted = 0 AND b.enabled = 1",
        (algorithm,),
    )
    length = spec(algorithm).hex_length
    parts = [np.zeros(0, dtype=np.uint64)]
    while hexes := cursor.fetchmany(BUILD_CHUNK):  # chunks: memory is the array's alone
        valid = [h[:16] for (h,) in hexes if len(h) == length and _is_hex(h)]
        parts.append(np.fromiter((int(h, 16) for h in valid), dtype=np.uint64, count=len(valid)))
    prefixes = np.concatenate(parts)
    prefixes.sort()
    return prefixes


def _is_hex(text: str) -> bool:
    # stored hashes were checked at import; this only keeps a tampered row from breaking open
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


class BankMatcher:
    """What a scan matches against: digest lookups and one Hamming index per perceptual algorithm.

    What can match is a snapshot taken at open (a list imported later is seen by the next
    matcher); labels are read from SQLite when a match is reported, so an entry retracted or a
    bank disabled since then is dropped. Attached RDSv3 publications (`index.attached`) answer
    digest lookups as known-good banks, read in place. Digest lookups first ask a sorted array of the digests'
    first 8 bytes (8 bytes per entry), so the usual answer, "not known", costs no SQL.
    Safe to share between threads (one connection behind a lock); pickling it (for worker
    processes) reopens the store on the other side.
    """

    def __init__(self, db_path: str, store_dir: str) -> None:
        from index.hamming import HammingIndex

        con = connect(db_path)
        self._db_path = db_path

        self._con = con
        self._store_dir = store_dir
        self._entries = _Entries(con)
        self._indexes: dict[str, tuple[Any, RowEntries]] = {}
        self._checksums: dict[str, str] = {}
        for algorithm in PERCEPTUAL:
            loaded = load_fresh(con, store_dir, algorithm)
            rows = RowEntries(self._entries, loaded.row_ptr, loaded.entry_pks)
            self._indexes[algorithm] = (HammingIndex(loaded.codes), rows)
            if loaded.sha256:
                self._checksums[algorithm] = loaded.sha256
        with transaction(con, write=False):
            self._versions: dict[str, str | None] = dict(
                con.execute("SELECT name, version FROM banks WHERE enabled = 1 ORDER BY name")
            )
            self._prefixes = {algo: _digest_prefixes(con, algo) for algo in DIGESTS}
            self._attached = [AttachedBank(a, store_dir) for a in attachments(con)]

    def lookup_digest(self, algorithm: str, hex_: str) -> list[BankEntry]:
        """Entries of enabled banks whose `algorithm` hash equals `hex_` (any case)."""
        value = codec.normalise_hex(algorithm, hex_)
        found = self._stored(algorithm, value)
        for bank in self._attached:
            if bank.holds(algorithm, value):
                found.append(BankEntry(bank.name, value, algorithm, value, None, None, None, None,
                                       None, True))
        return found

    def _stored(self, algorithm: str, value: str) -> list[BankEntry]:
        prefixes = self._prefixes.get(algorithm)
        if prefixes is not None:
            key = np.uint64(int(value[:16], 16))
            i = int(np.searchsorted(prefixes, key))
            if i == len(prefixes) or prefixes[i] != key:
                return []
        return self._entries.by_hash(algorithm, value)

    def perceptual(self, algorithm: str) -> tuple[Any, RowEntries]:
        """(HammingIndex over the distinct hashes, row -> entries) for a perceptual algorithm."""
        if spec(algorithm).kind != "perceptual":
            raise ValueError(f"{algorithm} is not a perceptual hash")
        return self._indexes[algorithm]

    def held_algorithms(self) -> tuple[str, ...]:
        """Perceptual algorithms some enabled bank holds a hash of (what a scan must compute)."""
        return tuple(a for a, (index, _) in self._indexes.items() if index.ntotal > 0)

    def bank_versions(self) -> dict[str, str | None]:
        """Enabled bank name -> list version, as of opening (for the scan's audit record)."""
        return dict(self._versions)

    def index_checksums(self) -> dict[str, str]:
        """Algorithm -> sha256 of the index file in use (algorithms with entries only)."""
        return dict(self._checksums)

    def close(self) -> None:
        for bank in self._attached:
            bank.close()
        self._con.close()

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        # a connection cannot be pickled: a worker process reopens the same store instead
        return BankMatcher, (self._db_path, self._store_dir)
