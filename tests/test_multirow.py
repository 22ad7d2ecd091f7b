"""Multi-row inserts: the statement text, and rows landing exactly as one-row inserts put them."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.multirow import FlatRows, insert_rows, statement


def test_statement_renumbers_each_copy_of_the_row() -> None:
    sql = statement("INSERT INTO t (a, b, c)", "(?2, COALESCE(?3, ?2), 'x', ?1)", 3, 2)
    assert sql == (
        "INSERT INTO t (a, b, c) VALUES (?2, COALESCE(?3, ?2), 'x', ?1),"
        " (?5, COALESCE(?6, ?5), 'x', ?4)"
    )


def test_statement_refuses_a_parameter_beyond_the_width() -> None:
    with pytest.raises(ValueError, match=r"\?1\.\.\?2"):
        statement("INSERT INTO t (a)", "(?3)", 2, 1)


def test_rows_of_another_width_are_refused() -> None:
    rows = FlatRows(2)
    with pytest.raises(ValueError, match="a row of 1 cells among rows of 2"):
        rows.append(3)
    with pytest.raises(ValueError, match=r"2 columns of \[1, 2\] cells for rows of 2"):
        rows.add_columns([1], [2, 3])
    with pytest.raises(ValueError, match="3 columns"):
        rows.add_columns([1], [2], [3])
    assert rows.flat == [] and len(rows) == 0


def test_columns_and_rows_land_in_one_row_order() -> None:
    rows = FlatRows(3)
    rows.append(1, "a", None)
    rows.add_columns(range(2, 4), ["b", "c"], ["x", None])
    rows.add_columns([], [], [])
    assert list(rows) == [(1, "a", None), (2, "b", "x"), (3, "c", None)]
    assert rows.flat == [1, "a", None, 2, "b", "x", 3, "c", None] and len(rows) == 3


def _table() -> sqlite3.Connection:
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, line, hash, entry, kind)")
    return con


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(-2**63, 2**63 - 1),
                               st.text(max_size=8), st.none() | st.text(max_size=4)),
                     max_size=350),
       per_statement=st.sampled_from([1, 3, 100]))
def test_rows_land_as_one_row_inserts_put_them(
    rows: list[tuple[int, str, str | None]], per_statement: int,
) -> None:
    """Any count (full statements plus a remainder), NULLs, quotes and non-ASCII text."""
    head, row = "INSERT INTO t (line, hash, entry, kind)", "(?1, ?2, COALESCE(?3, ?2), 'k')"
    ours, reference = _table(), _table()
    flat = FlatRows(3)
    if rows:
        flat.add_columns(*zip(*rows, strict=True))
    insert_rows(ours, head, row, flat, per_statement)
    reference.executemany(f"{head} VALUES {row}", rows)
    assert (ours.execute("SELECT * FROM t ORDER BY n").fetchall()
            == reference.execute("SELECT * FROM t ORDER BY n").fetchall())
    assert ours.execute("SELECT COUNT(*) FROM t").fetchone() == (len(rows),)
