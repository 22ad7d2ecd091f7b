"""Media-bank signatures in the bank store: local features per bank item, and the descriptor
index a scan searches them with.

A media bank (`triage bank import-media`) holds, per reference file, ordinary entries
(digests, PDQ, pHash), sub-window PDQ entries (algorithm `pdq_grid`) and one `orb` entry whose
hash is the SHA-256 of its feature set; the feature set itself (keypoint geometry and 256-bit
descriptors, see `hashing.algorithms.local_features`) is a row of `local_features` keyed by
that entry. Retracting the entry, or disabling the bank, takes its features out of matching
like any other entry.

What is stored per bank image, exactly: up to `MAX_KEYPOINTS` keypoints as float32 x, y,
size, angle (16 bytes each) and their 32-byte descriptors, plus a 18-byte header (width,
height, count). No pixels; but dense local features allow coarse reconstruction of the
image, so they are as sensitive as the media: private to the store (0600 files in a 0700
directory), never in a case output, never in a partner export (`bank export` leaves
`pdq_grid` and `orb` out; `bank export --format store` / `bank import-store` move them
between stores of this tool only, see `index.store_transfer`).

`FeatureSet` is the search side: every descriptor of a set of items in one index, with the
item and keypoint of each row. The same type serves a case's own images. Up to
`APPROXIMATE_FROM` descriptors the index is the exact `HammingIndex`; above, the exact scan's
cost per query image, linear in the set, dominated a scan's matching, so the set is searched
through an inverted file (`descriptor_index`): each descriptor is filed under the nearest of
~1.5·√N centroids and a query scans the lists of its `IVF_PROBES` nearest. Measured against
the exact scan (benchmarks/descriptor_search.py, 200 edited copies and 200 distinct photos as
queries, 12 kinds of edit, CPU a query image on the 2-core EPYC): 1,000 bank images 604 ->
34 ms, 95 % of the exact putative pairs kept; 10,000 images 6,306 -> 167 ms, 86 % kept; at
both, every edit verified against its original and nothing else verified.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hashing.algorithms.local_features import DESCRIPTOR_BYTES, LocalFeatures
from hashing.errors import TriageError
from hashing.registry import PERCEPTUAL
from index.bank_import import check_bank_name, now
from index.bank_index import build, bump
from index.bank_types import BankEntry, ImportResult
from index.errors import BankError, IndexCorruptError
from index.hamming import HammingIndex
from index.ingest.records import ParsedRecord, RejectedRecord
from index.protocol import BinaryIndex
from index.store_schema import connect, transaction

if TYPE_CHECKING:
    from index.banks import BankStore

log = logging.getLogger(__name__)

ALGORITHM = "orb"
FEATURES_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_features (
    entry INTEGER PRIMARY KEY REFERENCES entries(id),
    keypoints INTEGER NOT NULL,
    features BLOB NOT NULL
)
"""


# descriptors from which a FeatureSet is searched approximately (see the module's docstring):
# below, the exact scan costs at most ~110 ms a 1,000-keypoint query image here
APPROXIMATE_FROM = 100_000
IVF_PROBES = 16  # lists probed a query descriptor (1,024 lists at 5·10^5: 95 % of pairs)
DESCRIPTOR_INDEX_FILE = "orb-descriptors.ivf"  # in the store's index folder, owner-only
IVF_SEED = 0  # centroids are drawn from the descriptors with a fixed seed: repeatable results


def ivf_lists(n: int) -> int:
    """Inverted lists for `n` descriptors: the power of two nearest 1.5·√n (5·10^5 -> 1,024),
    so a probe scans ~√n/1.5 codes and the centroid search costs ~1.5·√n."""
    return int(2 ** round(np.log2(max(1.5 * np.sqrt(max(n, 1)), 1.0))))


def descriptor_index(codes: np.ndarray, approximate: bool | None = None,
                     saved: str | None = None) -> BinaryIndex:
    """The index a FeatureSet searches `codes` with: exact below `APPROXIMATE_FROM` codes,
    an inverted file with sampled centroids from there (`approximate` forces either).

    With `saved` (a file path) the inverted file is read from there when it was built from
    the same codes, and saved there otherwise: building it costs a pass assigning every code
    (42-47 s of CPU at 5·10^6 descriptors, a 10^4-image media bank), reading it back about a
    second. A damaged file is built again; a file that cannot be written only costs the next
    scan the build."""
    if approximate is None:
        approximate = codes.shape[0] >= APPROXIMATE_FROM
    if not approximate or codes.shape[0] == 0:
        return HammingIndex(codes)
    from index.faiss_store import FaissBinaryIndex, read_ivf, write_ivf_atomic

    nlist = min(ivf_lists(codes.shape[0]), codes.shape[0])
    key = b""
    if saved is not None:
        key = _ivf_key(codes, nlist)
        try:
            found = read_ivf(saved, key, IVF_PROBES)
        except IndexCorruptError as e:
            log.warning("descriptor index %s: %s; building it again", saved, e.reason)
        except OSError as e:
            log.warning("descriptor index %s unreadable (%s); building it again", saved, e)
        else:
            if found is not None and found.ntotal == codes.shape[0]:
                return found
    index = FaissBinaryIndex(codes, kind="ivf", nlist=nlist, nprobe=IVF_PROBES, seed=IVF_SEED,
                             sampled=True)
    if saved is not None:
        try:
            os.makedirs(os.path.dirname(saved), mode=0o700, exist_ok=True)
            write_ivf_atomic(saved, index, key)
        except OSError as e:
            log.warning("descriptor index %s not saved: %s", saved, e)
    return index


def _ivf_key(codes: np.ndarray, nlist: int) -> bytes:
    """What a saved inverted file was built from: the codes in order and the build's
    parameters (so a change to either builds it again)."""
    h = hashlib.sha256(f"sampled-ivf nlist={nlist} seed={IVF_SEED} bytes={codes.shape[1]}\n"
                       .encode())
    h.update(np.ascontiguousarray(codes).data)
    return h.digest()


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """Descriptors of `n_items` images in one Hamming index (`descriptor_index`).

    Row r of the index is keypoint `keypoints[r]` of item `owner[r]`; `sizes[i]` is item i's
    (width, height) in pixels.
    """

    index: BinaryIndex
    owner: np.ndarray  # int64[rows]
    keypoints: np.ndarray  # float32[rows, 4]
    sizes: np.ndarray  # int64[items, 2]

    @property
    def n_items(self) -> int:
        return int(self.sizes.shape[0])

    def size_of(self, item: int) -> tuple[int, int]:
        w, h = self.sizes[item]
        return int(w), int(h)

    @property
    def nbytes(self) -> int:
        """Memory held: descriptors (an inverted file also holds an 8-byte id each),
        keypoints, owners."""
        per_code = DESCRIPTOR_BYTES + (0 if isinstance(self.index, HammingIndex) else 8)
        return int(self.index.ntotal * per_code + self.keypoints.nbytes + self.owner.nbytes)

    @classmethod
    def build(cls, features: Sequence[LocalFeatures], approximate: bool | None = None,
              saved: str | None = None) -> FeatureSet:
        """`saved`: where the inverted file of a large set is kept (`descriptor_index`)."""
        counts = np.fromiter((len(f) for f in features), dtype=np.int64, count=len(features))
        owner = np.repeat(np.arange(len(features), dtype=np.int64), counts)
        if counts.sum():
            codes = np.ascontiguousarray(np.concatenate([f.descriptors for f in features]))
            kps = np.ascontiguousarray(np.concatenate([f.keypoints for f in features]))
        else:
            codes = np.zeros((0, DESCRIPTOR_BYTES), np.uint8)
            kps = np.zeros((0, 4), np.float32)
        sizes = np.array([(f.width, f.height) for f in features], dtype=np.int64).reshape(-1, 2)
        return cls(descriptor_index(codes, approximate, saved), owner, kps.astype(np.float32),
                   sizes)


def ensure_schema(con: sqlite3.Connection) -> None:
    """Create the features table in a store made before media banks existed (in a write
    transaction of the caller)."""
    con.execute(FEATURES_SCHEMA)


def has_features_table(con: sqlite3.Connection) -> bool:
    return con.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'local_features'"
    ).fetchone() is not None


def put_features(con: sqlite3.Connection, bank_id: int, features: LocalFeatures) -> None:
    """Attach `features` to the bank's `orb` entry keyed by their fingerprint (in the caller's
    transaction, after that entry was written)."""
    row = con.execute(
        "SELECT id FROM entries WHERE bank_id = ? AND algorithm = ? AND hash = ?",
        (bank_id, ALGORITHM, features.fingerprint()),
    ).fetchone()
    if row is None:
        raise KeyError("no orb entry for these features")
    con.execute(
        "INSERT OR IGNORE INTO local_features (entry, keypoints, features) VALUES (?, ?, ?)",
        (int(row[0]), len(features), features.to_bytes()),
    )


def load_features(con: sqlite3.Connection, saved: str | None = None
                  ) -> tuple[FeatureSet, np.ndarray]:
    """(FeatureSet of every matchable bank item, entry primary key of each item); `saved`:
    where its inverted file is kept (`descriptor_index`).

    Matchable: entry not retracted, bank enabled, and the stored blob intact (a damaged
    blob is skipped: its fingerprint no longer matches the entry's hash).
    """
    if not has_features_table(con):
        return FeatureSet.build([]), np.zeros(0, np.int64)
    rows = con.execute(
        "SELECT e.id, e.hash, f.features FROM entries e JOIN banks b ON b.id = e.bank_id"
        " JOIN local_features f ON f.entry = e.id WHERE e.algorithm = ? AND e.retracted = 0"
        " AND b.enabled = 1 ORDER BY e.id",
        (ALGORITHM,),
    ).fetchall()
    feats: list[LocalFeatures] = []
    pks: list[int] = []
    for pk, fingerprint, blob in rows:
        if (f := _intact(fingerprint, blob)) is not None:
            feats.append(f)
            pks.append(int(pk))
    return FeatureSet.build(feats, saved=saved), np.asarray(pks, dtype=np.int64)


def _intact(fingerprint: str, blob: bytes) -> LocalFeatures | None:
    """A stored feature blob, or None when it does not parse or no longer matches its
    entry's hash (damaged since it was written)."""
    try:
        f = LocalFeatures.from_bytes(bytes(blob))
    except ValueError:
        return None
    return f if f.fingerprint() == fingerprint else None


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One hashed reference file to write into a media bank."""

    record: ParsedRecord  # its entries: digests, pdq (frames), phash, pdq_grid, orb key
    features: LocalFeatures | None
    path: str  # the entry id (path relative to the imported folder)


@dataclass(frozen=True, slots=True)
class MediaImport:
    """Provenance of one media import (`triage bank import-media`)."""

    bank: str
    folder: str
    category: str | None = None
    source: str | None = None
    version: str | None = None
    known_good: bool = False
    format: str = "media"  # "store": from another store's export (index.store_transfer)


_LABELS = "entry_id, quality, category, vic_category, caid_category, series, known_good"


class _Writer:
    """Writes media items' entries into one bank inside the caller's transaction.

    A bank holds each (algorithm, hash) once. An entry already there from an earlier import
    is left as it is (same labels: unchanged) or relabelled (updated); one written earlier in
    this import for another file means the two files share that content: the later file is
    reported and nothing of it is written. Retracted entries stay retracted."""

    def __init__(self, con: sqlite3.Connection, bank_id: int, import_id: int) -> None:
        self.con, self.bank_id, self.import_id = con, bank_id, import_id
        self.added = self.updated = self.unchanged = 0
        self.touched: set[str] = set()

    def apply(self, rec: ParsedRecord) -> str | None:
        rows = []
        for algo, h in rec.hashes:
            found = self.con.execute(
                f"SELECT id, import_id, {_LABELS} FROM entries WHERE bank_id = ? AND"
                " algorithm = ? AND hash = ?", (self.bank_id, algo, h)).fetchone()
            if found is not None and found[1] == self.import_id and found[2] != rec.entry_id:
                return f"same {algo} content as {found[2]}"
            rows.append((algo, h, found))
        for algo, h, found in rows:
            quality = rec.quality if algo in PERCEPTUAL else None
            labels = (rec.entry_id, quality, rec.category, rec.vic_category, rec.caid_category,
                      rec.series, int(rec.known_good))
            if found is None:
                self.con.execute(
                    f"INSERT INTO entries (bank_id, algorithm, hash, {_LABELS}, import_id, line)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (self.bank_id, algo, h, *labels, self.import_id, rec.line))
                self.added += 1
                self.touched.add(algo)
            elif found[1] == self.import_id:
                continue  # the same file listed this hash twice (a repeated window)
            elif tuple(found[2:]) == labels:
                self.unchanged += 1
            else:
                self.con.execute(
                    "UPDATE entries SET entry_id = ?, quality = ?, category = ?,"
                    " vic_category = ?, caid_category = ?, series = ?, known_good = ?,"
                    " import_id = ?, line = ? WHERE id = ?",
                    (*labels, self.import_id, rec.line, found[0]))
                self.updated += 1
        return None


class _ContentDigest:
    """SHA-256 of an import's content, independent of the order items come in: over the
    items sorted by path, each as the SHA-256 of its path and hashes (what is held per item:
    its path and those 32 bytes, not its hashes)."""

    def __init__(self) -> None:
        self._parts: list[tuple[str, bytes]] = []

    def add(self, item: MediaItem) -> None:
        h = hashlib.sha256(item.path.encode("utf-8", "surrogateescape") + b"\0")
        h.update("".join(f"{a}:{x}" for a, x in item.record.hashes).encode() + b"\n")
        self._parts.append((item.path, h.digest()))

    def hexdigest(self) -> str:
        h = hashlib.sha256()
        for _, part in sorted(self._parts):
            h.update(part)
        return h.hexdigest()


@dataclass(slots=True)
class MediaTally:
    """What an import sets aside besides its items: files it could not hash (reported with
    the rest) and its counts. Read by `write_media` after the last item, so a caller that
    produces the items lazily may fill it while they are read."""

    skipped: list[RejectedRecord] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)


def write_media(store: BankStore, spec: MediaImport, items: Iterable[MediaItem],
                tally: MediaTally) -> ImportResult:
    """Write the items into bank `spec.bank` in one transaction, reading them one at a
    time; what cannot be written (a file whose content another entry of the same import
    already holds) is reported, not fatal.

    Media imports always commit what is valid: the folder is the unit's own holdings and a
    duplicate or an undecodable file must not block the rest.
    """
    check_bank_name(spec.bank)
    con = store.con
    stamp = now()
    rejected: list[RejectedRecord] = []
    touched: set[str] = set()
    content = _ContentDigest()
    try:
        with transaction(con):
            ensure_schema(con)
            row = con.execute("SELECT id FROM banks WHERE name = ?", (spec.bank,)).fetchone()
            if row is None:
                bank_id = con.execute(
                    "INSERT INTO banks (name, source, list_name, version, imported_at,"
                    " known_good) VALUES (?, ?, ?, ?, ?, ?)",
                    (spec.bank, spec.source, os.path.basename(spec.folder.rstrip("/")),
                     spec.version, stamp, int(spec.known_good)),
                ).lastrowid
            else:
                bank_id = row[0]
            import_id = con.execute(
                "INSERT INTO imports (bank_id, file, file_sha256, format, version, imported_at,"
                " added, updated, unchanged, rejected) VALUES (?, ?, '', ?, ?, ?, 0, 0, 0, 0)",
                (bank_id, spec.folder, spec.format, spec.version, stamp),
            ).lastrowid
            assert bank_id is not None and import_id is not None
            importer = _Writer(con, int(bank_id), int(import_id))
            for item in items:
                content.add(item)
                reason = importer.apply(item.record)
                if reason is not None:
                    rejected.append(RejectedRecord(item.record.line, f"{item.path}: {reason}"))
                    continue
                if item.features is not None:
                    put_features(con, int(bank_id), item.features)
            touched = importer.touched
            rejected = tally.skipped + rejected
            con.execute(
                "UPDATE imports SET added = ?, updated = ?, unchanged = ?, rejected = ?,"
                " file_sha256 = ? WHERE id = ?",
                (importer.added, importer.updated, importer.unchanged, len(rejected),
                 content.hexdigest(), import_id),
            )
            con.execute(
                "UPDATE banks SET source = COALESCE(?, source), version = COALESCE(?, version),"
                " imported_at = ?, known_good = MAX(known_good, ?) WHERE id = ?",
                (spec.source, spec.version, stamp, int(spec.known_good), bank_id),
            )
            bump(con, touched)
    except sqlite3.Error as e:
        raise BankError(f"{store.dir}: cannot write the bank store, nothing was imported: {e}"
                        ) from e
    for algo in sorted(touched & {*PERCEPTUAL, "pdq_grid"}):
        try:
            build(con, store.dir, algo)
        except (TriageError, OSError, sqlite3.Error) as e:
            log.warning("%s index not rebuilt (%s); it will be when next opened", algo, e)
    return ImportResult(
        bank=spec.bank, file=spec.folder, format=spec.format, status="imported",
        added=importer.added, updated=importer.updated, unchanged=importer.unchanged,
        rejected=tuple(rejected), notes=dict(tally.notes),
        skip_invalid=True,
    )


class MediaMatcher:
    """What a scan matches media banks with: the sub-window PDQ index and the bank items'
    local features, loaded once per scan (a snapshot, like `BankMatcher`; labels are read
    live, so an entry retracted since is dropped)."""

    def __init__(self, db_path: str, store_dir: str) -> None:
        from index.bank_index import RowEntries, _Entries, load_fresh

        self._db_path, self._store_dir = db_path, store_dir
        self._con = connect(db_path)
        self._entries = _Entries(self._con)
        loaded = load_fresh(self._con, store_dir, "pdq_grid")
        self._windows = (HammingIndex(loaded.codes),
                         RowEntries(self._entries, loaded.row_ptr, loaded.entry_pks))
        with transaction(self._con, write=False):
            self._features, self._item_pks = load_features(
                self._con, os.path.join(store_dir, "index", DESCRIPTOR_INDEX_FILE))
        self.windows_sha256 = loaded.sha256

    def windows(self) -> tuple[HammingIndex, Sequence[list[BankEntry]]]:
        """(index over distinct window hashes, row -> the entries holding that hash)."""
        return self._windows

    def features(self) -> FeatureSet:
        return self._features

    def features_of(self, bank: str, entry_id: str) -> LocalFeatures | None:
        """The local features of media-bank item `entry_id` of `bank`, matchable as in
        `load_features`; None for an entry that is no media item or holds none. Asked only
        for the few items a hash matched weakly (`triage.local_match`)."""
        row = self._con.execute(
            "SELECT e.hash, f.features FROM entries e JOIN banks b ON b.id = e.bank_id"
            " JOIN local_features f ON f.entry = e.id WHERE b.name = ? AND e.entry_id = ?"
            " AND e.algorithm = ? AND e.retracted = 0 AND b.enabled = 1",
            (bank, entry_id, ALGORITHM),
        ).fetchone() if self._features.n_items else None
        f = _intact(*row) if row is not None else None
        return f if f is not None and len(f) else None

    def item_entries(self, items: Sequence[int]) -> dict[int, BankEntry]:
        """Feature-set item -> its `orb` entry (items whose entry is gone are left out); asked
        only for the few items a scan verified."""
        out: dict[int, BankEntry] = {}
        for i in items:
            found = self._entries.by_pk([int(self._item_pks[i])])
            if found:
                out[int(i)] = found[0]
        return out

    def close(self) -> None:
        self._con.close()

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return MediaMatcher, (self._db_path, self._store_dir)
