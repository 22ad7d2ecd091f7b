"""PDQ lists in the reference tools' output shape: `hash,quality[,anything...]` per line.

A line holding only a hash is accepted with no quality (exports of banks whose source gave none).

The reference `pdq-photo-hasher` prints `hash,quality,filename`; fields after the quality are
ignored (never stored: a file name can identify a person).
"""

from __future__ import annotations

from collections.abc import Iterator

from index.ingest.records import (
    ParsedRecord,
    ParseOptions,
    Record,
    RecordError,
    RejectedRecord,
    check_hash,
    check_quality,
    parse_lines,
)


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    return parse_lines(path, lambda line, text: _record(options, line, text))


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
