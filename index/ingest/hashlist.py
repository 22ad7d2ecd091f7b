"""Plain hash lists: one hex hash per line.

The algorithm comes from `--algo`, or from the length when that is unambiguous (32 hex digits
md5, 40 sha1). 64 digits may be sha256 or PDQ and 16 digits any 64-bit perceptual hash, so
those lengths without `--algo` make the whole file unreadable rather than guessing.
"""

from __future__ import annotations

from collections.abc import Iterator

from hashing.i18n import tr
from hashing.registry import spec
from index.errors import HashListFormatError
from index.ingest.fastlines import line_batches, uniform_lines
from index.ingest.records import (
    Batch,
    ParseOptions,
    Record,
    RejectedRecord,
    hashes_record,
    parse_lines,
)
from index.multirow import FlatRows

_BY_LENGTH = {32: "md5", 40: "sha1"}
_HEX = b"0123456789abcdefABCDEF"
_AMBIGUOUS = {64: "sha256 or pdq", 16: "phash, dhash, ahash or whash"}


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    return parse_lines(path, lambda line, text: _record(path, options, line, text))


def batches(path: str, options: ParseOptions) -> Iterator[Batch]:
    """The import's path: `parse`'s records as staged batches, well-formed blocks in bulk."""
    return line_batches(path, options, _fast_block, lambda n, t: _record(path, options, n, t))


def _fast_block(lines: list[bytes], start: int, options: ParseOptions) -> Batch | None:
    """A block whose every line is one hash of one algorithm's length, or None."""
    length = uniform_lines(lines, _HEX)
    if length is None:
        return None
    digits = length - (2 if lines[0].endswith(b"\r\n") else 1)
    algo = options.algo or _BY_LENGTH.get(digits)
    if algo is None or spec(algo).hex_length != digits:
        return None
    hashes = b"".join(lines).decode("ascii").lower().split()
    labels = (0, None, options.category, None, None, None, int(options.known_good))
    rows = FlatRows(2)
    rows.add_columns(range(start, start + len(lines)), hashes)
    return Batch({(algo, labels, "line"): rows}, [], {}, len(lines))


def _record(path: str, options: ParseOptions, line: int, text: str) -> Record:
    token = text.strip()
    if len(token.split()) != 1:
        return RejectedRecord(line, "expected one hash per line")
    algo = options.algo or _algorithm_for(path, line, token)
    if algo is None:
        return RejectedRecord(line, f"no hash algorithm has {len(token)} hex digits")
    return hashes_record(line, [(algo, token)], options.category, options.known_good)


def _algorithm_for(path: str, line: int, token: str) -> str | None:
    if len(token) in _AMBIGUOUS:
        raise HashListFormatError(
            path,
            line,
            tr("{n} hex digits may be {algorithms}: give --algo", n=len(token),
               algorithms=_AMBIGUOUS[len(token)]),
        )
    return _BY_LENGTH.get(len(token))
