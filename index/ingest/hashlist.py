"""Plain hash lists: one hex hash per line.

The algorithm comes from `--algo`, or from the length when that is unambiguous (32 hex digits
md5, 40 sha1). 64 digits may be sha256 or PDQ and 16 digits any 64-bit perceptual hash, so
those lengths without `--algo` make the whole file unreadable rather than guessing.
"""

from __future__ import annotations

from collections.abc import Iterator

from index.errors import HashListFormatError
from index.ingest.records import (
    ParsedRecord,
    ParseOptions,
    Record,
    RecordError,
    RejectedRecord,
    check_hash,
    data_lines,
)

_BY_LENGTH = {32: "md5", 40: "sha1"}
_AMBIGUOUS = {64: "sha256 or pdq", 16: "phash, dhash, ahash or whash"}


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    with open(path, "rb") as f:
        for item in data_lines(f):
            if isinstance(item, RejectedRecord):
                yield item
                continue
            line, text = item
            token = text.strip()
            if len(token.split()) != 1:
                yield RejectedRecord(line, "expected one hash per line")
                continue
            algo = options.algo or _algorithm_for(path, line, token)
            if algo is None:
                yield RejectedRecord(line, f"no hash algorithm has {len(token)} hex digits")
                continue
            try:
                hashes = (check_hash(algo, token),)
            except RecordError as e:
                yield RejectedRecord(line, str(e))
                continue
            yield ParsedRecord(
                line, hashes, category=options.category, known_good=options.known_good
            )


def _algorithm_for(path: str, line: int, token: str) -> str | None:
    if len(token) in _AMBIGUOUS:
        raise HashListFormatError(
            path,
            line,
            f"{len(token)} hex digits may be {_AMBIGUOUS[len(token)]}: give --algo",
        )
    return _BY_LENGTH.get(len(token))
