"""A scan's scratch store: what the derive stages found about each item, kept on disk.

The derive stages read the case in chunks and leave their findings here instead of in
memory: the reasons of items with bank hits, the strongest hit and path of known-bad items
(what cluster suggestions name), cluster membership and suggestions, the unranked queue
rows and the attention list. It is one SQLite file in the case directory, hidden and named
`*.tmp` so the next scan removes what a killed one left; nothing in it outlives the scan,
so it is written without a journal. The PDQ nodes clustering needs go to two flat files
beside it (`NodeSpill`) and are memory-mapped back, so they never sit in Python lists.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from hashing.codec import pack
from triage.match import Reason
from triage.outputs import FILE_MODE
from triage.queue import QueueRow

SCRATCH_NAME = ".derive.tmp"
_SCHEMA = """
CREATE TABLE reasons(ord INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE leads(ord INTEGER PRIMARY KEY, lead TEXT NOT NULL, path TEXT NOT NULL);
CREATE TABLE clusters(ord INTEGER PRIMARY KEY, cluster INTEGER NOT NULL);
CREATE TABLE suggestions(ord INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE queue(tier INTEGER, neg_sev INTEGER, neg_score REAL, path BLOB, ord INTEGER,
                   data TEXT);
CREATE TABLE attention(ord INTEGER PRIMARY KEY, data TEXT NOT NULL);
"""


def _reasons_json(reasons: Iterable[Reason]) -> str:
    return json.dumps([r.to_dict() for r in reasons])


def _reasons_from(text: str) -> tuple[Reason, ...]:
    return tuple(Reason.from_dict(d) for d in json.loads(text))


def _row_json(row: QueueRow) -> str:
    # every field but the rank, so a field added to QueueRow travels without a change here
    d = {f.name: getattr(row, f.name) for f in fields(QueueRow) if f.name != "rank"}
    d["reasons"] = [r.to_dict() for r in row.reasons]
    return json.dumps(d)


def _row_from(text: str, rank: int) -> QueueRow:
    d = json.loads(text)
    d["reasons"] = tuple(Reason.from_dict(r) for r in d["reasons"])
    return QueueRow(rank=rank, **d)


def _path_blob(path: str) -> bytes:
    # UTF-8 (with lone surrogates passed through) orders bytes as Python orders code points,
    # so SQLite's byte order equals the in-memory sort of the same paths.
    return path.encode("utf-8", "surrogatepass")


class Scratch:
    """The scratch store of one scan (a context manager: closing it deletes the files)."""

    def __init__(self, case_dir: Path) -> None:
        self.path = case_dir / SCRATCH_NAME
        if self.path.exists():
            self.path.unlink()
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA temp_store=FILE")  # sorting spills to disk, not to memory
        self._db.executescript(_SCHEMA)
        self.nodes = NodeSpill(case_dir)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
        self.nodes.close()
        self.path.unlink(missing_ok=True)

    def _put(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany(sql, rows)
        self._db.execute("COMMIT")

    # matching
    def put_reasons(self, rows: Iterable[tuple[int, tuple[Reason, ...]]]) -> None:
        self._put("INSERT INTO reasons VALUES (?, ?)",
                  ((o, _reasons_json(rs)) for o, rs in rows))

    def put_leads(self, rows: Iterable[tuple[int, Reason, str]]) -> None:
        self._put("INSERT INTO leads VALUES (?, ?, ?)",
                  ((o, json.dumps(lead.to_dict()), path) for o, lead, path in rows))

    def lead(self, ordinal: int) -> tuple[Reason, str]:
        """The strongest known-bad hit and the path of a known-bad item."""
        lead, path = self._db.execute("SELECT lead, path FROM leads WHERE ord=?",
                                      (ordinal,)).fetchone()
        return Reason.from_dict(json.loads(lead)), path

    # clustering
    def put_clusters(self, rows: Iterable[tuple[int, int]]) -> None:
        self._put("INSERT INTO clusters VALUES (?, ?)", rows)

    def put_suggestions(self, rows: Iterable[tuple[int, Reason]]) -> None:
        self._put("INSERT INTO suggestions VALUES (?, ?)",
                  ((o, json.dumps(r.to_dict())) for o, r in rows))

    def findings(self, lo: int, hi: int) -> tuple[dict[int, tuple[Reason, ...]], dict[int, int],
                                                  dict[int, Reason]]:
        """Reasons, cluster numbers and suggestions of the items with lo <= ordinal < hi."""
        q = "SELECT ord, {} FROM {} WHERE ord >= ? AND ord < ?"
        reasons = {o: _reasons_from(d) for o, d in
                   self._db.execute(q.format("data", "reasons"), (lo, hi))}
        clusters = {o: int(c) for o, c in self._db.execute(q.format("cluster", "clusters"),
                                                             (lo, hi))}
        suggestions = {o: Reason.from_dict(json.loads(d)) for o, d in
                       self._db.execute(q.format("data", "suggestions"), (lo, hi))}
        return reasons, clusters, suggestions

    # scoring
    def put_queue(self, rows: Iterable[tuple[int, QueueRow]]) -> None:
        self._put("INSERT INTO queue VALUES (?, ?, ?, ?, ?, ?)",
                  ((r.tier, -(r.severity if r.severity is not None else -1), -r.score,
                    _path_blob(r.path), o, _row_json(r)) for o, r in rows))

    def ranked(self) -> Iterator[QueueRow]:
        """The queue in rank order (`queue.rank_key`, ties in manifest order), ranked from 1."""
        self._db.execute("CREATE INDEX IF NOT EXISTS queue_rank "
                         "ON queue(tier, neg_sev, neg_score, path, ord)")
        cur = self._db.execute(
            "SELECT data FROM queue ORDER BY tier, neg_sev, neg_score, path, ord")
        for rank, (data,) in enumerate(cur, start=1):
            yield _row_from(data, rank)

    def put_attention(self, rows: Iterable[tuple[int, dict[str, Any]]]) -> None:
        self._put("INSERT INTO attention VALUES (?, ?)", ((o, json.dumps(a)) for o, a in rows))

    def attention(self) -> Iterator[dict[str, Any]]:
        for (data,) in self._db.execute("SELECT data FROM attention ORDER BY ord"):
            yield json.loads(data)


class NodeSpill:
    """Clustering's nodes (owner ordinal, packed PDQ hash) appended to two flat files and
    memory-mapped back: 40 bytes a node on disk, paged in by the OS while clustering."""

    def __init__(self, case_dir: Path) -> None:
        self._paths = (case_dir / ".nodes-owners.tmp", case_dir / ".nodes-codes.tmp")
        self._files = [open(p, "wb") for p in self._paths]  # noqa: SIM115 - closed in close()
        for p in self._paths:
            os.chmod(p, FILE_MODE)
        self.count = 0

    def add(self, owners: list[int], hexes: list[str]) -> None:
        if not owners:
            return
        self._files[0].write(np.asarray(owners, dtype=np.int64).tobytes())
        self._files[1].write(pack("pdq", hexes).tobytes())
        self.count += len(owners)

    def arrays(self, nbytes: int) -> tuple[np.ndarray, np.ndarray]:
        """(owners int64[n], codes uint8[n, nbytes]), memory-mapped read-only."""
        for f in self._files:
            f.flush()
        if self.count == 0:
            return np.zeros(0, np.int64), np.zeros((0, nbytes), np.uint8)
        owners = np.memmap(self._paths[0], dtype=np.int64, mode="r", shape=(self.count,))
        codes = np.memmap(self._paths[1], dtype=np.uint8, mode="r", shape=(self.count, nbytes))
        return owners, codes

    def close(self) -> None:
        for f in self._files:
            f.close()
        for p in self._paths:
            p.unlink(missing_ok=True)
