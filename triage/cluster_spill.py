"""Clustering a case too large for memory: the same components, with bounded working state.

`cluster.unique_components` holds every unique PDQ node, its index and its temporaries in
memory (about 175 bytes a node). Above `ClusterSpill.block_nodes` nodes the same graph
("distance <= radius") is built like this instead:

1. Identical hashes are collapsed by SQLite's external sort (`ORDER BY code`, spilling to a
   temporary file beside the case) into two memory-mapped files: the unique codes in byte
   order (the order `np.unique(codes, axis=0)` gives) and each node's unique id.
2. The unique codes are searched block against block: an index over one block of
   `block_nodes` codes at a time, queried by every code of that block and of the blocks
   before it, so every pair within the radius is found once its later block is indexed.
   Pairs are merged into a union-find forest (memory-mapped) as they arrive.

Components are exactly those of the in-memory path (the same pairs are joined); only the
forest's shape differs, and nothing downstream depends on it. The in-memory state is one
block's index and one query block of pairs, whatever the case's size.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.hamming import HammingIndex
from triage.cluster_kernels import union_pairs
from triage.outputs import FILE_MODE

# Rows moved between numpy and SQLite at a time.
SORT_CHUNK = 65_536
# SQLite's page cache for the sort (KiB, as a negative cache_size); the sorter spills past it.
SORT_CACHE_KIB = 16_384
# Bytes a node costs the in-memory path at its peak (measured: benchmarks/scale.py notes).
NODE_BYTES = 256


@dataclass(frozen=True, slots=True)
class ClusterSpill:
    """Where clustering may spill (a folder of ours: the case directory) and the most unique
    nodes it may hold in memory at once."""

    folder: Path
    block_nodes: int

    @classmethod
    def for_budget(cls, folder: Path, memory_budget: int) -> ClusterSpill:
        """Half the derive stages' budget for clustering's working state."""
        return cls(folder, max(2, memory_budget // 2 // NODE_BYTES))


def _file(path: Path, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """A writable memory-mapped array in a new file of ours (mode 0600, removed by `close`)."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, FILE_MODE))
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size == 0:
        return np.zeros(shape, dtype)
    os.truncate(path, size)
    return np.asarray(np.memmap(path, dtype=dtype, mode="r+", shape=shape))


class SpilledGraph:
    """The spilled working files of one clustering (a context manager: closing removes them)."""

    def __init__(self, spill: ClusterSpill) -> None:
        self.spill = spill
        self._paths = [spill.folder / f".cluster-{name}.tmp"
                       for name in ("sort", "codes", "inverse", "parent")]

    def __enter__(self) -> SpilledGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self._paths:
            p.unlink(missing_ok=True)
            Path(f"{p}-journal").unlink(missing_ok=True)

    def sorted_unique(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(unique codes uint8[u, nbytes] in byte order, inverse int64[n]), both mapped."""
        n, nbytes = codes.shape
        sort_path, codes_path, inverse_path, _ = self._paths
        os.close(os.open(sort_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, FILE_MODE))
        db = sqlite3.connect(sort_path, isolation_level=None)
        try:
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE",
                           f"cache_size=-{SORT_CACHE_KIB}"):
                db.execute(f"PRAGMA {pragma}")
            db.execute("CREATE TABLE nodes(code BLOB NOT NULL, row INTEGER NOT NULL)")
            db.execute("BEGIN")
            for lo in range(0, n, SORT_CHUNK):
                block = np.ascontiguousarray(codes[lo:lo + SORT_CHUNK])
                db.executemany("INSERT INTO nodes VALUES (?, ?)",
                               zip((r.tobytes() for r in block), range(lo, lo + len(block)),
                                   strict=True))
            db.execute("COMMIT")
            inverse = _file(inverse_path, np.int64, (n,))
            count = 0
            prev: bytes | None = None
            with open(codes_path, "wb") as out:
                os.chmod(codes_path, FILE_MODE)
                cur = db.execute("SELECT code, row FROM nodes ORDER BY code")
                while batch := cur.fetchmany(SORT_CHUNK):
                    blobs, rows = zip(*batch, strict=True)
                    block = np.frombuffer(b"".join(blobs), np.uint8).reshape(-1, nbytes)
                    new = np.empty(len(blobs), dtype=bool)
                    new[0] = blobs[0] != prev
                    new[1:] = np.any(block[1:] != block[:-1], axis=1)
                    inverse[np.asarray(rows, dtype=np.int64)] = count + np.cumsum(new) - 1
                    out.write(block[new].tobytes())
                    count += int(new.sum())
                    prev = blobs[-1]
        finally:
            db.close()
            sort_path.unlink(missing_ok=True)
        uniq = np.asarray(np.memmap(codes_path, dtype=np.uint8, mode="r", shape=(count, nbytes)))
        return uniq, inverse

    def components(self, codes: np.ndarray, radius: int,
                   query_block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`cluster.unique_components`'s result, `(unique, inverse, parent)`, found block
        against block (see the module docstring)."""
        uniq, inverse = self.sorted_unique(codes)
        u = uniq.shape[0]
        parent = _file(self._paths[3], np.int64, (u,))
        for lo in range(0, u, SORT_CHUNK):
            parent[lo:lo + SORT_CHUNK] = np.arange(lo, min(u, lo + SORT_CHUNK))
        block = self.spill.block_nodes
        for jlo in range(0, u, block):
            jhi = min(u, jlo + block)
            index = HammingIndex(np.ascontiguousarray(uniq[jlo:jhi]))
            for qlo in range(0, jhi, query_block):
                queries = np.ascontiguousarray(uniq[qlo:min(jhi, qlo + query_block)])
                lims, _, ids = index.range_search(queries, radius)
                src = np.repeat(np.arange(qlo, qlo + queries.shape[0], dtype=np.int64),
                                np.diff(lims))
                union_pairs(parent, src, ids.astype(np.int64) + jlo)
            del index
        return uniq, inverse, parent
