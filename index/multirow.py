"""Bulk inserts as multi-row `INSERT ... VALUES (..), (..), ..` statements.

Why: `executemany` with one row per statement pays SQLite's step and reset and the sqlite3
module's per-call work once per row, which at 10^6 rows is most of the insert (10^6 entry
rows: 1.2 s of CPU one row a statement, 0.53 s a hundred rows a statement, same rows, same
table). The parameters of one statement stay far below SQLite's limit of 32,766.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
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


def insert_rows(
    con: sqlite3.Connection, head: str, row: str, rows: Sequence[Sequence[Any]],
    per_statement: int = ROWS_PER_STATEMENT,
) -> None:
    """Insert `rows` (tuples of one width) with `head` ("INSERT INTO t (a, b)") and the
    VALUES tuple `row` ("(?1, 'x', ?2)") that binds each tuple's items as ?1..?width."""
    if not rows:
        return
    widths = set(map(len, rows))
    if len(widths) != 1:
        raise ValueError(f"rows of different widths {sorted(widths)} in one insert")
    (width,) = widths
    flat = list(chain.from_iterable(rows))
    full, rest = divmod(len(rows), per_statement)
    step = per_statement * width
    if full:
        con.executemany(
            statement(head, row, width, per_statement),
            (flat[i:i + step] for i in range(0, full * step, step)),
        )
    if rest:
        con.execute(statement(head, row, width, rest), flat[full * step:])
