"""Bulk inserts as multi-row `INSERT ... VALUES (..), (..), ..` statements.

Why: `executemany` with one row per statement pays SQLite's step and reset and the sqlite3
module's per-call work once per row, which at 10^6 rows is most of the insert (10^6 entry
rows: 1.2 s of CPU one row a statement, 0.53 s a hundred rows a statement, same rows, same
table). The parameters of one statement stay far below SQLite's limit of 32,766.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat
from typing import Any

ROWS_PER_STATEMENT = 100
_PARAMETER = re.compile(r"\?(\d+)")


@lru_cache(maxsize=256)
def statement(head: str, row: str, width: int, rows: int) -> str:
    """`head` followed by `rows` copies of the VALUES tuple `row`, whose numbered parameters
    ?1..?width are renumbered for each copy (copy k binds ?(k*width+1)..?(k*width+width))."""
    if not all(1 <= int(m) <= width for m in _PARAMETER.findall(row)):
        raise ValueError(f"row template {row!r} binds parameters outside ?1..?{width}")

    def copy(k: int) -> str:
        return _PARAMETER.sub(lambda m: f"?{int(m.group(1)) + k * width}", row)

    return f"{head} VALUES {', '.join(map(copy, range(rows)))}"


@dataclass(slots=True)
class FlatRows:
    """Rows of one width as one flat list, row k at `flat[k * width:(k + 1) * width]`.

    Why flat: the bulk parsers add a column at a time (slice assignment, in C) and the insert
    binds slices of the list, so no tuple is made, flattened and freed per row (10^6 rows of
    three cells: 0.16 s of CPU for that, 0.05 to fill the flat list column by column)."""

    width: int
    flat: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.flat) // self.width

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        """The rows as tuples (for reading them one by one)."""
        return zip(*[iter(self.flat)] * self.width, strict=True)

    def append(self, *cells: Any) -> None:
        if len(cells) != self.width:
            raise ValueError(f"a row of {len(cells)} cells among rows of {self.width}")
        self.flat.extend(cells)

    def add_columns(self, *columns: Sequence[Any]) -> None:
        """Append rows given column by column (each column one cell of every row)."""
        counts = set(map(len, columns))
        if len(columns) != self.width or len(counts) != 1:
            raise ValueError(f"{len(columns)} columns of {sorted(counts)} cells for rows of"
                             f" {self.width}")
        (n,) = counts
        at = len(self.flat)
        self.flat.extend(repeat(None, n * self.width))
        for j, column in enumerate(columns):
            self.flat[at + j :: self.width] = column


def insert_rows(
    con: sqlite3.Connection, head: str, row: str, rows: FlatRows,
    per_statement: int = ROWS_PER_STATEMENT,
) -> None:
    """Insert `rows` with `head` ("INSERT INTO t (a, b)") and the VALUES tuple `row`
    ("(?1, 'x', ?2)") that binds each row's cells as ?1..?width."""
    flat, width = rows.flat, rows.width
    full, rest = divmod(len(rows), per_statement)
    step = per_statement * width
    if full:
        con.executemany(
            statement(head, row, width, per_statement),
            (flat[i:i + step] for i in range(0, full * step, step)),
        )
    if rest:
        con.execute(statement(head, row, width, rest), flat[full * step:])
