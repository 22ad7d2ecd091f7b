"""PDQ lists in the reference tools' output shape: `hash,quality[,anything...]` per line.

A line holding only a hash is accepted with no quality (exports of banks whose source gave none).

The reference `pdq-photo-hasher` prints `hash,quality,filename`; fields after the quality are
ignored (never stored: a file name can identify a person).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from index.ingest.fastlines import line_batches
from index.ingest.records import (
    Batch,
    GroupKey,
    ParsedRecord,
    ParseOptions,
    Record,
    RecordError,
    RejectedRecord,
    check_hash,
    check_quality,
    group_rows,
    parse_lines,
)
from index.multirow import FlatRows


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    return parse_lines(path, lambda line, text: _record(options, line, text))


def batches(path: str, options: ParseOptions) -> Iterator[Batch]:
    """The import's path: `parse`'s records as staged batches, well-formed blocks in bulk."""
    return line_batches(path, options, _fast_block, lambda n, t: _record(options, n, t))


# `hash,quality[,anything]` with a canonical quality 0-100, LF or CRLF
_BLOCK = re.compile(r"(?:[0-9a-f]{64},(?:100|[1-9]?[0-9])(?:,[^\r\n]*)?\r?\n)*")
_PAIR = re.compile(r"^([0-9a-f]{64}),(\d+)", re.M)


def _fast_block(lines: list[bytes], start: int, options: ParseOptions) -> Batch | None:
    try:
        text = b"".join(lines).decode("utf-8").lower()
    except UnicodeDecodeError:
        return None
    if _BLOCK.fullmatch(text) is None:
        return None
    groups: dict[GroupKey, FlatRows] = {}
    kg = int(options.known_good)
    for line, (hex_, quality) in enumerate(_PAIR.findall(text), start):
        labels = (0, int(quality), options.category, None, None, None, kg)
        group_rows(groups, ("pdq", labels, "line")).append(line, hex_)
    return Batch(groups, [], {}, len(lines))


def _record(options: ParseOptions, line: int, text: str) -> Record:
    fields = text.split(",")
    try:
        hashes = (check_hash("pdq", fields[0]),)
        quality = check_quality(fields[1]) if len(fields) > 1 else None
    except RecordError as e:
        return RejectedRecord(line, str(e))
    return ParsedRecord(
        line, hashes, quality=quality, category=options.category, known_good=options.known_good
    )
