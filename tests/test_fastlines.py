"""The column checks of the bulk parsers against their per-cell definitions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from index.ingest.fastlines import hex_cells, lower_hex_cells

_CELL = st.text(alphabet="0123456789abcdefABCDEFxX\n é", min_size=3, max_size=5)


def _per_cell(col: list[str], digits: int) -> list[str] | None:
    ok = bool(col) and all(
        len(c) == digits and all(ch in "0123456789abcdefABCDEF" for ch in c) for c in col)
    return [c.lower() for c in col] if ok else None


@given(col=st.lists(_CELL, max_size=6), digits=st.integers(3, 5))
def test_lower_hex_cells_is_the_per_cell_check_and_lowering(col: list[str], digits: int) -> None:
    assert lower_hex_cells(col, digits) == _per_cell(col, digits)
    assert hex_cells(col, digits) == (_per_cell(col, digits) is not None)


def test_a_separator_inside_a_cell_is_not_hex() -> None:
    """A cell holding a line break (a JSON string may) must not split into two cells."""
    assert lower_hex_cells(["ab\ncd", "ABCDE"], 5) is None
    assert lower_hex_cells(["abcde", "ABCDE"], 5) == ["abcde", "abcde"]
    col = ["abcde", "01234"]
    assert lower_hex_cells(col, 5) is col  # already lower case: no copy
