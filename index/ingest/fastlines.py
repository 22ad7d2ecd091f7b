"""The fast path of the line lists: whole blocks of well-formed lines checked with bytes and
regex operations in C, falling back to the per-line reference parser for any block that is not.

Why: a per-line Python parser costs several µs a line, ten times the import target (200k
records/s). A block of a few MB whose every line is well-formed is the overwhelming case in
partner lists; any block holding a blank line, comment, odd length, bad byte or BOM-less
surprise is handed line by line to the reference parser, so rejections and line numbers are
exactly the reference's. Tests check that both paths give the same staged rows.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import BinaryIO

from hashing.registry import PERCEPTUAL
from index.errors import HashListFormatError
from index.ingest.records import (
    BOM,
    Batch,
    ParseOptions,
    Record,
    RejectedRecord,
    is_skippable,
)

BLOCK = 1 << 22
_PERCEPTUAL = frozenset(PERCEPTUAL)
FastBlock = Callable[[list[bytes], int, ParseOptions], Batch | None]


def line_blocks(f: BinaryIO) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, whole lines) of about BLOCK bytes each, the BOM removed;
    a last line without a line ending gets one, so every line ends in b"\\n"."""
    number = 1
    first = True
    while lines := f.readlines(BLOCK):
        if first:
            first = False
            if lines[0].startswith(BOM):
                lines[0] = lines[0][len(BOM) :]
        if not lines[-1].endswith(b"\n"):
            lines[-1] += b"\n"
        yield number, lines
        number += len(lines)


def whole_line_blocks(f: BinaryIO) -> Iterator[bytes]:
    """The rest of `f` in blocks of about BLOCK bytes of whole lines, each ending in b"\\n"
    (a last line without a line ending gets one).

    Why not `readlines`: a bulk parser joins a block's lines again at once, so reading bytes
    and cutting after the last line ending spares a bytes object per line (5·10^5 CSV
    records: 0.08 s of CPU to read and join the lines, 0.05 this way). A line longer than a
    block is gathered in pieces, joined once."""
    parts: list[bytes] = []
    while chunk := f.read(BLOCK):
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            parts.append(chunk)
            continue
        parts.append(chunk[:cut])
        yield b"".join(parts)
        parts = [chunk[cut:]]
    rest = b"".join(parts)
    if rest:
        yield rest + b"\n"


def block_lines(block: bytes) -> list[bytes]:
    """A block's lines as `readlines` gives them (split after each b"\\n" only)."""
    return io.BytesIO(block).readlines()


def reference_block(
    lines: list[bytes], start: int, record: Callable[[int, str], Record], batch: Batch
) -> None:
    """Parse one block line by line with the reference per-line parser (as `parse_lines`)."""
    for number, raw in enumerate(lines, start):
        try:
            text = raw.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            batch.rejected.append(RejectedRecord(number, "not valid UTF-8"))
            continue
        if is_skippable(text):
            continue
        rec = record(number, text)
        if isinstance(rec, RejectedRecord):
            batch.rejected.append(rec)
        else:
            batch.add_record(rec, _PERCEPTUAL)


def line_batches(
    path: str, options: ParseOptions, fast: FastBlock, record: Callable[[int, str], Record]
) -> Iterator[Batch]:
    """Batches of a one-record-per-line list: `fast` per block, else `record` per line."""
    with open(path, "rb") as f:
        for start, lines in line_blocks(f):
            batch = fast(lines, start, options)
            if batch is None:
                batch = Batch.empty()
                try:
                    reference_block(lines, start, record, batch)
                except HashListFormatError:
                    yield batch  # what came before an unreadable line is still reported
                    raise
            yield batch


def uniform_lines(lines: list[bytes], allowed: bytes) -> int | None:
    """The common length of `lines` when each is that long, holds only `allowed` bytes and
    ends in one line ending (LF, or CRLF on every line); else None."""
    length = len(lines[0])
    if set(map(len, lines)) != {length}:
        return None
    block = b"".join(lines)
    if block.translate(None, allowed + b"\r\n"):
        return None
    n = len(lines)
    if block.count(b"\n") != n:
        return None
    crs = block.count(b"\r")
    if crs == 0:
        return length
    if crs == n and all(line.endswith(b"\r\n") for line in lines):
        return length
    return None


_HEX = b"0123456789abcdefABCDEF"


def hex_cells(col: list[str], digits: int) -> bool:
    """Whether every cell is an ASCII hex string of `digits` characters, checked for the whole
    column at once (the bulk paths' test before any per-cell work)."""
    return lower_hex_cells(col, digits) is not None


def lower_hex_cells(col: list[str], digits: int) -> list[str] | None:
    """The column in lower case when every cell is hex of `digits` characters (`hex_cells`),
    else None. A column already in lower case is returned as it is; another is lowered as one
    string (a call of `str.lower` per cell was a fifth of a CSV block's time)."""
    if set(map(len, col)) != {digits}:
        return None
    try:
        block = "".join(col).encode("ascii")
    except UnicodeEncodeError:
        return None
    if block.translate(None, _HEX):
        return None
    if not block.translate(None, _HEX[:16]):
        return col
    # every cell is hex, so none holds the separator
    return "\n".join(col).lower().split("\n")
