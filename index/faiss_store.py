"""FAISS as the on-disk container of binary codes, and as an opt-in (approximate) index.

Files are FAISS `IndexBinaryFlat` files (`write_index_binary` format), written atomically and
identified by their SHA-256. A write that fails (full disk, file size limit) raises
`IndexWriteError` naming the file, and temp files of writers that died are removed by
`remove_stale_temps`. Reading verifies the checksum before FAISS parses anything and
maps the codes instead of copying them (`IO_FLAG_MMAP_IFC`).

`FaissBinaryIndex` implements `BinaryIndex` over FAISS. FAISS's binary range search returns
distance < radius; our radius is inclusive, and this module is the one place that adds 1.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import struct
from pathlib import Path
from typing import Any, Literal

import numpy as np

# before faiss: sets OMP_WAIT_POLICY, which FAISS's OpenMP runtime reads when it loads
import index.threading  # noqa: F401

# isort: split
import faiss

from hashing.errors import TriageError
from index.errors import IndexCorruptError
from index.protocol import PAD_DISTANCE, BinaryIndex

_CHUNK = 1 << 20
# `.<name>.<pid>.<hex>.tmp`, as made by write_index_atomic
_TEMP = re.compile(r"^\..+\.(\d+)\.[0-9a-f]+\.tmp$")


class IndexWriteError(TriageError, OSError):
    """An index file that could not be written (full disk, file size limit, I/O error).

    Also an OSError, so callers treating any I/O failure as "index left stale" keep working.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: cannot write the index file: {reason}")
        self.path = path
        self.reason = reason


def _faiss_reason(exc: RuntimeError) -> str:
    """The system's words from a FAISS write error ('... write error in f: 3 != 9 (File too
    large)' -> 'File too large'), else its first line."""
    text = str(exc).strip()
    found = re.search(r"\(([^()]+)\)\s*$", text)
    if found:
        return found.group(1)
    return text.splitlines()[0] if text else type(exc).__name__


def _check_codes(codes: np.ndarray, name: str = "codes") -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] == 0 or arr.shape[1] % 8:
        raise ValueError(f"{name} must be uint8[n, nbytes] with nbytes a positive multiple of 8,"
                         f" got {arr.dtype}{arr.shape}")
    return np.ascontiguousarray(arr)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _install(tmp: Path, final: Path) -> str:
    """Checksum the fsynced temp file, rename it over `final`, fsync the directory."""
    try:
        digest = file_sha256(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)
    return digest


def write_index_atomic(path: str | Path, codes: np.ndarray) -> str:
    """Write `codes: uint8[N, nbytes]` as a FAISS IndexBinaryFlat file at `path`; return the
    file's SHA-256 hex.

    The file is written under a temporary name in the same directory, fsynced, renamed over
    `path` and the directory fsynced, so a crash leaves either the old file or the new one,
    never a partial file under the real name.
    """
    arr = _check_codes(codes)
    final = Path(path)
    tmp = _temp_name(final)
    index = faiss.IndexBinaryFlat(arr.shape[1] * 8)
    if arr.shape[0]:
        index.add(arr)
    try:
        try:
            faiss.write_index_binary(index, str(tmp))
        except RuntimeError as exc:
            # FAISS reports a failed write(2) as RuntimeError: give it a type and the path
            raise IndexWriteError(str(final), _faiss_reason(exc)) from None
        del index
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _install(tmp, final)


# IndexBinaryFlat as `write_index_binary` lays it out: fourcc, d, code_size, ntotal,
# is_trained, metric_type, then the codes as a vector (byte count, bytes)
_FLAT_HEADER = struct.Struct("<4siiqBiQ")


class CodesWriter:
    """Streams codes into the file `write_index_atomic` would write, chunk by chunk, so an
    index is built in memory bounded by a chunk, not by the bank (FAISS's writer needs every
    code in one index object first, and the caller one array before that).

    Same atomic steps: a temporary name beside `path`, fsynced, renamed over `path` by
    `commit()`; leaving the block without committing removes the temporary file. Tests check
    the bytes equal `write_index_atomic`'s.
    """

    def __init__(self, path: str | Path, nbytes: int) -> None:
        if nbytes <= 0 or nbytes % 8:
            raise ValueError(f"nbytes must be a positive multiple of 8, got {nbytes}")
        self.final = Path(path)
        self.nbytes = nbytes
        self.count = 0
        self._tmp = _temp_name(self.final)
        self._fh: Any = None

    def __enter__(self) -> CodesWriter:
        self._fh = open(self._tmp, "wb")
        self._fh.write(_FLAT_HEADER.pack(b"IBxF", 0, 0, 0, 0, 0, 0))  # rewritten by commit
        return self

    def add(self, codes: np.ndarray | bytes) -> None:
        """Append codes: a `uint8[n, nbytes]` array or their bytes, n * nbytes long."""
        data = _check_codes(codes).tobytes() if isinstance(codes, np.ndarray) else codes
        if len(data) % self.nbytes:
            raise ValueError(f"{len(data)} bytes is not a whole number of {self.nbytes}-byte codes")
        try:
            self._fh.write(data)
        except OSError as exc:
            raise IndexWriteError(str(self.final), exc.strerror or str(exc)) from None
        self.count += len(data) // self.nbytes

    def commit(self) -> str:
        """Finish the file and put it in place; returns its SHA-256 hex."""
        size = self.count * self.nbytes
        try:
            self._fh.seek(0)
            self._fh.write(_FLAT_HEADER.pack(b"IBxF", self.nbytes * 8, self.nbytes, self.count,
                                             1, 1, size))
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise IndexWriteError(str(self.final), exc.strerror or str(exc)) from None
        finally:
            self._fh.close()
        return _install(self._tmp, self.final)

    def __exit__(self, *exc: object) -> None:
        try:
            self._fh.close()  # a no-op after commit
        except OSError:
            pass  # flushing what a failed write left buffered: that failure is being raised
        self._tmp.unlink(missing_ok=True)  # not committed (committed: already renamed)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Delete the temp files of `write_index_atomic` calls whose process is gone (SIGKILL,
    power loss); return what was removed.

    A writer is recognised by the pid in the temp file's name, so a temp file of a live writer
    is never touched. Stores are local directories: a pid written on another host would be
    judged by this host's process table.
    """
    removed: list[Path] = []
    folder = Path(directory)
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        found = _TEMP.match(path.name)
        if found is None:
            continue
        pid = int(found.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# A saved IVF (`write_ivf_atomic`): magic, the caller's key (what the index was built from),
# the payload's SHA-256 and length, then FAISS's own serialisation of the index
_IVF_MAGIC = b"OSECIVF1"
_IVF_HEADER = struct.Struct("<8s32s32sQ")


def write_ivf_atomic(path: str | Path, index: FaissBinaryIndex, key: bytes) -> None:
    """Save an IVF index under `key` (32 bytes, e.g. a SHA-256 of the codes and build
    parameters), atomically as `write_index_atomic` does, readable only by the owner (the
    inverted lists hold the codes themselves)."""
    if len(key) != 32:
        raise ValueError(f"the key must be 32 bytes, got {len(key)}")
    payload = faiss.serialize_index_binary(index._index).data
    final = Path(path)
    tmp = _temp_name(final)
    try:
        with open(tmp, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(_IVF_HEADER.pack(_IVF_MAGIC, key, hashlib.sha256(payload).digest(),
                                      len(payload)))
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise IndexWriteError(str(final), exc.strerror or str(exc)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _install(tmp, final)


def read_ivf(path: str | Path, key: bytes, nprobe: int) -> FaissBinaryIndex | None:
    """The IVF index `write_ivf_atomic` saved at `path` under `key`, searching `nprobe`
    lists; None when there is none or it was saved under another key (built from other
    codes). Raises `IndexCorruptError` for a file whose payload does not match its checksum
    or does not parse."""
    p = str(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(_IVF_HEADER.size)
            if len(head) < _IVF_HEADER.size:
                raise IndexCorruptError(p, "truncated header")
            magic, saved_key, digest, length = _IVF_HEADER.unpack(head)
            if magic != _IVF_MAGIC:
                raise IndexCorruptError(p, "not a saved IVF index")
            if saved_key != key:
                return None
            payload = np.fromfile(fh, dtype=np.uint8)
    except FileNotFoundError:
        return None
    if payload.nbytes != length or hashlib.sha256(payload.data).digest() != digest:
        raise IndexCorruptError(p, "checksum mismatch")
    try:
        found = FaissBinaryIndex.wrap(faiss.deserialize_index_binary(payload))
    except RuntimeError as exc:
        raise IndexCorruptError(p, _faiss_reason(exc)) from None
    if found.nlist == 0:
        raise IndexCorruptError(p, "not an IVF index")
    found._index.nprobe = min(nprobe, found.nlist)
    return found


class _Mapped:
    """Owns the FAISS index whose file mapping backs an array (numpy keeps this as `.base`)."""

    def __init__(self, index: Any, interface: dict[str, Any]) -> None:
        self._index = index
        self.__array_interface__ = interface


def read_index(path: str | Path, expected_sha256: str | None = None) -> np.ndarray:
    """The codes of a file written by `write_index_atomic`, as read-only `uint8[N, nbytes]`
    mapped from the file.

    With `expected_sha256` the whole file is hashed first and a mismatch is refused before FAISS
    parses it. Raises `IndexCorruptError(path, reason)` for a missing, unreadable, truncated or
    mismatching file, or one that is not a flat binary index.
    """
    p = str(path)
    if not os.path.isfile(p):
        raise IndexCorruptError(p, "index file is missing")
    if expected_sha256 is not None:
        try:
            actual = file_sha256(p)
        except OSError as exc:
            raise IndexCorruptError(p, f"cannot read index file: {exc}") from exc
        if actual != expected_sha256.lower():
            raise IndexCorruptError(
                p, f"checksum mismatch: expected sha256 {expected_sha256}, file has {actual}")
    try:
        index: Any = faiss.read_index_binary(p, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    except (RuntimeError, MemoryError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IndexCorruptError(p, f"FAISS cannot read it: {first}") from exc
    if not isinstance(index, faiss.IndexBinaryFlat):
        raise IndexCorruptError(p, f"expected a flat binary index, found {type(index).__name__}")
    flat: Any = index  # FAISS's Python stubs do not declare `xb`
    n, nbytes = int(flat.ntotal), int(flat.code_size)
    if nbytes == 0 or nbytes % 8 or int(flat.xb.size()) != n * nbytes:
        raise IndexCorruptError(p, f"inconsistent header: {n} codes of {nbytes} bytes")
    if n == 0:
        return np.zeros((0, nbytes), dtype=np.uint8)
    view = faiss.rev_swig_ptr(flat.xb.data(), n * nbytes)
    interface = dict(view.__array_interface__)
    interface["data"] = (interface["data"][0], True)  # read-only: the mapping is the file
    interface["shape"] = (n, nbytes)
    return np.asarray(_Mapped(flat, interface))


Kind = Literal["flat", "ivf"]


class FaissBinaryIndex:
    """`BinaryIndex` over a FAISS binary index.

    `kind="flat"` (IndexBinaryFlat) is exact and returns what `HammingIndex` returns.
    `kind="ivf"` (IndexBinaryIVF, `nlist` clusters, `nprobe` probed) is approximate, for banks
    too large to scan; measure it with `recall_against`. IVF rather than HNSW because FAISS's
    binary HNSW has no range search, and range search is what matching needs.

    With `sampled=True` the IVF's centroids are `nlist` of the codes themselves, drawn with
    `seed`, and no k-means runs: FAISS's binary k-means trains in float space over 256·nlist
    codes (minutes for 1,024 lists of ORB descriptors, on one core), while sampled centroids
    cost one assignment pass (1.4 s for 5·10^5 descriptors) and, measured on generated photos'
    ORB descriptors at 1,024 lists and 16 probes, kept 95 % of the exact search's pairs.
    """

    def __init__(self, codes: np.ndarray, kind: Kind = "flat", nlist: int | None = None,
                 nprobe: int = 16, seed: int = 0, sampled: bool = False) -> None:
        arr = _check_codes(codes)
        self.nbytes = int(arr.shape[1])
        self.kind: str = kind
        d = self.nbytes * 8
        if kind == "flat":
            self._index: Any = faiss.IndexBinaryFlat(d)
        elif kind == "ivf":
            n = arr.shape[0]
            nlist = nlist or max(1, min(65536, int(4 * np.sqrt(max(n, 1)))))
            self._quantizer = faiss.IndexBinaryFlat(d)
            if sampled:
                if n < nlist:
                    raise ValueError(f"{nlist} sampled centroids need as many codes, got {n}")
                rows = np.random.default_rng(seed).choice(n, nlist, replace=False)
                self._quantizer.add(arr[np.sort(rows)])
            self._index = faiss.IndexBinaryIVF(self._quantizer, d, nlist)
            if not sampled:
                sample = arr
                if n > 256 * nlist:
                    rows = np.random.default_rng(seed).choice(n, 256 * nlist, replace=False)
                    sample = arr[np.sort(rows)]
                self._index.train(sample)
            self._index.nprobe = min(nprobe, nlist)
        else:
            raise ValueError(f"unknown FAISS index kind {kind!r} (expected 'flat' or 'ivf')")
        if arr.shape[0]:
            self._index.add(arr)

    @classmethod
    def wrap(cls, faiss_index: Any) -> FaissBinaryIndex:
        """Put our (inclusive, sorted) interface on an existing FAISS binary index, e.g. an
        `IndexBinaryMultiHash` for comparison. Exact only if that index is."""
        self = cls.__new__(cls)
        self.nbytes = int(faiss_index.code_size)
        self.kind = type(faiss_index).__name__
        self._index = faiss_index
        return self

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def nlist(self) -> int:
        """Inverted lists of an IVF index (0 for any other kind)."""
        return int(getattr(self._index, "nlist", 0))

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = _check_codes(queries, "queries")
        if q.shape[1] != self.nbytes:
            raise ValueError(f"queries have {q.shape[1]} bytes per code, the index {self.nbytes}")
        return q

    def range_search(self, queries: np.ndarray, radius: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inclusive range search (see `BinaryIndex`), each query sorted by (distance, id)."""
        q = self._queries(queries)
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        if q.shape[0] == 0:
            return np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
        # FAISS keeps distance < radius: the +1 makes it distance <= radius
        lims, dist, ids = self._index.range_search(q, int(radius) + 1)
        lims = lims.astype(np.int64)
        dist = dist.astype(np.int32)
        ids = ids.astype(np.int64)
        query = np.repeat(np.arange(q.shape[0]), np.diff(lims))
        order = np.lexsort((ids, dist, query))
        return lims, dist[order], ids[order]

    def knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's k nearest, re-sorted by (distance, id) and padded like `HammingIndex.knn`.
        Among codes tied at the k-th distance FAISS may keep different ids than HammingIndex."""
        q = self._queries(queries)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        dist, ids = self._index.search(q, int(k))
        dist = dist.astype(np.int32)
        ids = ids.astype(np.int64)
        dist[ids < 0] = PAD_DISTANCE
        order = np.lexsort((ids, dist), axis=-1) if q.shape[0] else np.zeros_like(ids)
        return np.take_along_axis(dist, order, 1), np.take_along_axis(ids, order, 1)

    def recall_against(self, exact: BinaryIndex, queries: np.ndarray, radius: int) -> float:
        """Share of `exact`'s (query, id) matches within `radius` that this index also finds
        (1.0 when there is nothing to find)."""
        want = range_pairs(exact.range_search(queries, radius))
        if not want:
            return 1.0
        return len(want & range_pairs(self.range_search(queries, radius))) / len(want)


def range_pairs(result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> set[tuple[int, int]]:
    """The (query, id) pairs of a range search's `(lims, distances, ids)`."""
    lims, _, ids = result
    query = np.repeat(np.arange(lims.size - 1), np.diff(lims))
    return set(zip(query.tolist(), ids.tolist(), strict=True))
