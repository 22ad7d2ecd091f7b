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
    parse_lines,
)

_BY_LENGTH = {32: "md5", 40: "sha1"}
_AMBIGUOUS = {64: "sha256 or pdq", 16: "phash, dhash, ahash or whash"}


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    return parse_lines(path, lambda line, text: _record(path, options, line, text))


def _record(path: str, options: ParseOptions, line: int, text: str) -> Record:
    token = text.strip()
    if len(token.split()) != 1:
        return RejectedRecord(line, "expected one hash per line")
    algo = options.algo or _algorithm_for(path, line, token)
    if algo is None:
        return RejectedRecord(line, f"no hash algorithm has {len(token)} hex digits")
    try:
        hashes = (check_hash(algo, token),)
    except RecordError as e:
        return RejectedRecord(line, str(e))
    return ParsedRecord(line, hashes, category=options.category, known_good=options.known_good)


def _algorithm_for(path: str, line: int, token: str) -> str | None:
    if len(token) in _AMBIGUOUS:
        raise HashListFormatError(
            path,
            line,
            f"{len(token)} hex digits may be {_AMBIGUOUS[len(token)]}: give --algo",
        )
    return _BY_LENGTH.get(len(token))
