"""Staging one hash list in a SQLite temp database, where repeats and conflicts are found by sorting.

Why: checking each record against the store with its own INSERT and SELECT cost two SQL round
trips per hash, and a 10^7-entry list took most of an hour. Here a parser's batches go into an
unindexed temp table by multi-row inserts (`index.multirow`), binding only what differs per
row (line, hash, id): what a batch shares (algorithm, labels) is one row of `labels` referenced
by number. Then one GROUP BY builds `uniq` (one row per distinct algorithm and hash, with the
first record's data) in sorted order, and only lists that repeat a hash or an explicit id pay
for the conflict passes. SQLite spills its sorts to temp files, so memory stays flat whatever
the list's size.

The checks are the sequential importer's: within one file a repeated hash or id is accepted
when its data is identical (counted as a duplicate record) and rejected, naming the earlier
line, when it conflicts; a rejected record contributes none of its hashes. Used by an import
(on the store's connection) and by `bank validate` (in a throwaway database).

Tables (schema `staging`: a private temp database attached to the connection): `labels(id,
explicit, quality, category, vic_category, caid_category, series, known_good)`; `stage(key,
line, item, algorithm, hash, entry_id, label)` with `entry_id` NULL when the hash is its own
id; `uniq(algorithm, hash, key, line, n, entry_id, label)` keyed by (algorithm, hash).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass

from hashing.registry import SPECS
from index.ingest.records import Batch, Labels, RejectedRecord
from index.multirow import insert_rows
from index.store_schema import PAGE_BYTES

LABELS = ("quality", "category", "vic_category", "caid_category", "series", "known_good")
_UNIQ = (
    "(algorithm TEXT NOT NULL, hash TEXT NOT NULL, key INTEGER NOT NULL, line INTEGER NOT NULL,"
    " n INTEGER NOT NULL, entry_id TEXT, label INTEGER NOT NULL,"
    " PRIMARY KEY (algorithm, hash)) WITHOUT ROWID"
)
# per shape: the VALUES of one row, given the algorithm and label id the whole group shares
_VALUES = {
    "line": "(?1, ?1, NULL, '{algo}', ?2, NULL, {label})",
    "keyed": "(?1, ?1, NULL, '{algo}', ?2, ?3, {label})",
    "item": "(?1, ?2, ?1, '{algo}', ?3, ?4, {label})",
}


def entry_id(alias: str) -> str:
    """SQL: the entry id of a staged row."""
    return f"COALESCE({alias}.entry_id, {alias}.hash)"


def same_staged(a: str, b: str) -> str:
    """SQL: staged rows `a` and `b` carry the same id and labels."""
    return f"{a}.label = {b}.label AND {entry_id(a)} = {entry_id(b)}"


def same_as_entry(e: str, u: str, lab: str) -> str:
    """SQL: entry row `e` already holds the id and labels of staged row `u` (labels `lab`)."""
    return f"{e}.entry_id = {entry_id(u)} AND " + " AND ".join(
        f"{e}.{c} IS {lab}.{c}" for c in LABELS
    )


def _attached(con: sqlite3.Connection) -> bool:
    return any(name == "staging" for _, name, _ in con.execute("PRAGMA database_list"))


def drop(con: sqlite3.Connection) -> None:
    """Discard the staging tables of `con` (they also vanish with the connection).

    Detaching deletes the database file at once; dropping its tables walked every page of
    them to free it (0.28 s CPU after 10^6 CSV entries).
    """
    if _attached(con):
        con.execute("DETACH DATABASE staging")


@dataclass(frozen=True, slots=True)
class Staged:
    """A staged list after the checks: `staging.uniq` holds its distinct hashes."""

    records: int  # valid records
    hashes: int  # distinct (algorithm, hash) pairs in staging.uniq
    duplicates: int  # records repeating earlier ones exactly
    rejected: tuple[RejectedRecord, ...]  # in file order
    notes: dict[str, int]
    algorithms: frozenset[str]


class Staging:
    """The staging tables of one list on `con` (until `drop(con)`)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        drop(con)
        # "": a private database in a temp file, deleted when detached or closed
        con.execute("ATTACH DATABASE '' AS staging")
        con.execute(f"PRAGMA staging.page_size={PAGE_BYTES}")  # see PAGE_BYTES
        con.execute(
            "CREATE TABLE staging.labels (id INTEGER PRIMARY KEY, explicit INTEGER NOT NULL,"
            " quality INTEGER, category TEXT, vic_category INTEGER, caid_category TEXT,"
            " series TEXT, known_good INTEGER NOT NULL)"
        )
        con.execute(
            "CREATE TABLE staging.stage (key INTEGER NOT NULL, line INTEGER NOT NULL, item INTEGER,"
            " algorithm TEXT NOT NULL, hash TEXT NOT NULL, entry_id TEXT, label INTEGER NOT NULL)"
        )
        self.rows = 0
        self.records = 0
        self.explicit = False
        self.algorithms: set[str] = set()
        self.rejected: list[RejectedRecord] = []
        self.notes: Counter[str] = Counter()
        self._labels: dict[Labels, int] = {}

    def _label(self, labels: Labels) -> int:
        found = self._labels.get(labels)
        if found is None:
            found = len(self._labels) + 1
            self.con.execute("INSERT INTO staging.labels VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (found, *labels))
            self._labels[labels] = found
            self.explicit = self.explicit or bool(labels[0])
        return found

    def add(self, batch: Batch) -> None:
        for (algo, labels, shape), rows in batch.groups.items():
            if algo not in SPECS:  # inlined into SQL below: only registry names may pass
                raise ValueError(f"unknown algorithm {algo!r}")
            values = _VALUES[shape].format(algo=algo, label=self._label(labels))
            insert_rows(
                self.con,
                "INSERT INTO staging.stage (key, line, item, algorithm, hash, entry_id, label)",
                values, rows,
            )
            self.rows += len(rows)
            self.algorithms.add(algo)
        self.records += batch.records
        self.rejected.extend(batch.rejected)
        self.notes.update(batch.notes)

    def finish(self) -> Staged:
        """Run the within-file checks; afterwards `staging.uniq` holds what the list says."""
        self.con.execute(f"CREATE TABLE IF NOT EXISTS staging.uniq {_UNIQ}")
        while True:
            self.con.execute("DELETE FROM staging.uniq")
            # SQLite takes the bare columns from the row holding MIN(key): the first record's
            hashes = self.con.execute(
                "INSERT INTO staging.uniq SELECT algorithm, hash, MIN(key), line, COUNT(*),"
                " entry_id, label FROM staging.stage GROUP BY algorithm, hash"
                " ORDER BY algorithm, hash"
            ).rowcount
            conflicts: dict[int, RejectedRecord] = {}
            if hashes < self.rows:
                self._hash_conflicts(conflicts)
            if self.explicit:
                self._id_conflicts(conflicts)
            if not conflicts:
                break
            self._drop_records(conflicts)
        duplicates = self._duplicates() if hashes < self.rows else 0
        return Staged(
            self.records, hashes, duplicates, self.sorted_rejected(), dict(self.notes),
            frozenset(self.algorithms),
        )

    def sorted_rejected(self) -> tuple[RejectedRecord, ...]:
        return tuple(sorted(self.rejected, key=lambda r: (r.line, r.item or 0)))

    def _hash_conflicts(self, conflicts: dict[int, RejectedRecord]) -> None:
        """A later record giving an earlier hash other data (labels or id) is rejected."""
        self.con.execute("DROP TABLE IF EXISTS staging.dups")
        self.con.execute(f"CREATE TABLE staging.dups {_UNIQ}")
        self.con.execute("INSERT INTO staging.dups SELECT * FROM staging.uniq WHERE n > 1")
        rows = self.con.execute(
            "SELECT s.key, s.line, s.item, s.algorithm, u.line FROM staging.stage s"
            " JOIN staging.dups u ON u.algorithm = s.algorithm AND u.hash = s.hash"
            f" WHERE s.key != u.key AND NOT ({same_staged('s', 'u')}) ORDER BY s.key, s.rowid"
        )
        for key, line, item, algo, first in rows:
            if key not in conflicts:
                conflicts[key] = RejectedRecord(
                    line, f"duplicate {algo} hash with different data than line {first}", item
                )

    def _id_conflicts(self, conflicts: dict[int, RejectedRecord]) -> None:
        """Records naming the same explicit id must carry the same hashes and labels."""
        self.con.execute("DROP TABLE IF EXISTS staging.dup_ids")
        self.con.execute("CREATE TABLE staging.dup_ids (entry_id TEXT PRIMARY KEY) WITHOUT ROWID")
        explicit = (" FROM staging.stage s JOIN staging.labels l ON l.id = s.label"
                    " WHERE l.explicit = 1")
        self.con.execute(
            f"INSERT INTO staging.dup_ids SELECT {entry_id('s')} AS eid {explicit}"
            " GROUP BY eid HAVING MIN(s.key) != MAX(s.key)"
        )
        rows = self.con.execute(
            f"SELECT {entry_id('s')} AS eid, s.key, s.line, s.item, s.algorithm, s.hash, s.label"
            f"{explicit} AND eid IN (SELECT entry_id FROM staging.dup_ids) ORDER BY eid, s.key"
        )
        current: str | None = None
        records: dict[int, tuple[int, int | None, set[tuple[str, str, int]]]] = {}

        def judge() -> None:
            ordered = sorted(records.items())
            if len(ordered) < 2:
                return
            first_line, _, first_rows = ordered[0][1]
            for key, (line, item, mine) in ordered[1:]:
                if mine != first_rows and key not in conflicts:
                    conflicts[key] = RejectedRecord(
                        line,
                        f"duplicate id {current!r} with different data than line {first_line}",
                        item,
                    )

        for eid, key, line, item, algo, hash_, label in rows:
            if eid != current:
                judge()
                current, records = eid, {}
            records.setdefault(key, (line, item, set()))[2].add((algo, hash_, label))
        judge()

    def _drop_records(self, conflicts: dict[int, RejectedRecord]) -> None:
        self.rejected.extend(conflicts.values())
        self.con.execute("DROP TABLE IF EXISTS staging.dropped")
        self.con.execute("CREATE TABLE staging.dropped (key INTEGER PRIMARY KEY)")
        self.con.executemany("INSERT INTO staging.dropped VALUES (?)", [(k,) for k in conflicts])
        self.rows -= self.con.execute(
            "DELETE FROM staging.stage WHERE key IN (SELECT key FROM staging.dropped)"
        ).rowcount
        self.records -= len(conflicts)

    def _duplicates(self) -> int:
        """Records every hash of which an earlier record gave with the same data."""
        (count,) = self.con.execute(
            "SELECT COUNT(*) FROM (SELECT COUNT(*) AS total, SUM(EXISTS (SELECT 1 FROM staging.dups u"
            " WHERE u.algorithm = s.algorithm AND u.hash = s.hash AND u.key != s.key)) AS repeated"
            " FROM staging.stage s GROUP BY s.key) WHERE total = repeated"
        ).fetchone()
        return int(count)
