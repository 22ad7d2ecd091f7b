"""The record shapes every hash-list parser yields, and the small value checks they share.

A parser never raises for one bad record: it yields `RejectedRecord(line, reason)` and goes on,
so an import can list every problem at once. Only a file that cannot be read at all (not
JSON, no header, ambiguous hash length without `--algo`) raises `HashListFormatError`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

import numpy as np

from hashing import codec
from hashing.errors import HashFormatError, UnknownAlgorithmError
from index.categories import CategoryScheme
from index.errors import HashListFormatError
from index.multirow import FlatRows

BOM = b"\xef\xbb\xbf"
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f", ""})
_CAID = frozenset({"A", "B", "C"})


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    """One valid item of a hash list: one media item, possibly with several hashes.

    `line` is 1-based in the source file (for VICS: the line where the Media object starts);
    `item` is the 1-based Media ordinal for VICS, None for line formats.
    """

    line: int
    hashes: tuple[tuple[str, str], ...]  # (algorithm, lower-case hex checked by the codec)
    entry_id: str | None = None
    quality: int | None = None
    category: str | None = None
    vic_category: int | None = None
    caid_category: str | None = None
    series: str | None = None
    known_good: bool = False
    item: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """One invalid item, with the reason an analyst can act on."""

    line: int
    reason: str
    item: int | None = None


Record = ParsedRecord | RejectedRecord


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """What the caller tells every parser: forced algorithm, default labels, category scheme."""

    algo: str | None = None
    category: str | None = None  # label for records that carry none
    scheme: CategoryScheme | None = None
    known_good: bool = False


class RecordError(ValueError):
    """Raised by the value checks below; parsers turn it into a `RejectedRecord`."""


def check_hash(algorithm: str, text: str) -> tuple[str, str]:
    try:
        return algorithm, codec.normalise_hex(algorithm, text)
    except HashFormatError as e:
        raise RecordError(f"{algorithm}: {e.reason}") from None
    except UnknownAlgorithmError as e:
        raise RecordError(str(e)) from None


def hashes_record(
    line: int, values: Iterable[tuple[str, object]], category: str | None, known_good: bool
) -> Record:
    """The record of a row's non-empty `(algorithm, value)` cells, or the row rejected with the
    first bad value's reason ("no hash in row" when every cell is empty)."""
    hashes = []
    try:
        for algo, value in values:
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise RecordError(f"{algo}: not text")
            hashes.append(check_hash(algo, value))
    except RecordError as e:
        return RejectedRecord(line, str(e))
    if not hashes:
        return RejectedRecord(line, "no hash in row")
    return ParsedRecord(line, tuple(hashes), category=category, known_good=known_good)


def check_quality(value: object) -> int:
    try:
        q = int(str(value).strip()) if not isinstance(value, int | float) else value
    except ValueError:
        raise RecordError(f"quality {value!r} is not an integer") from None
    if isinstance(q, float):
        if not q.is_integer():
            raise RecordError(f"quality {value!r} is not an integer")
        q = int(q)
    if isinstance(q, bool) or not 0 <= q <= 100:
        raise RecordError(f"quality {value!r} out of range 0-100")
    return q


def check_bool(name: str, value: object) -> bool:
    """Booleans arrive as JSON booleans or as strings ("true", "False", "1")."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RecordError(f"{name}: expected a boolean, got {value!r}")


def check_vic(value: object) -> int:
    text = str(value).strip()
    if text.isdigit() and 0 <= int(text) <= 5:
        return int(text)
    raise RecordError(f"vic_category {value!r} not in 0-5")


def check_caid(value: object) -> str:
    text = str(value).strip().upper()
    if text in _CAID:
        return text
    raise RecordError(f"caid_category {value!r} not one of A, B, C")


def iter_text_lines(f: BinaryIO) -> Iterator[tuple[int, str | None]]:
    """Yield (1-based line number, text without line ending) of a UTF-8 file.

    Decoding is per line so that one undecodable line is one rejected record (text None)
    rather than an exception that loses the line number. Handles a BOM and LF/CRLF.
    """
    for number, raw in enumerate(f, 1):
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        raw = raw.rstrip(b"\r\n")
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


def is_skippable(text: str) -> bool:
    """Blank lines and `#` comments carry no record."""
    stripped = text.strip()
    return not stripped or stripped.startswith("#")


def parse_lines(path: str, record: Callable[[int, str], Record]) -> Iterator[Record]:
    """Drive a one-record-per-line list: `record(line, text)` for each line carrying data.

    Non-UTF-8 lines are rejected here, blank lines and comments skipped, so the line-list
    parsers only say what one line means.
    """
    with open(path, "rb") as f:
        for line, text in iter_text_lines(f):
            if text is None:
                yield RejectedRecord(line, "not valid UTF-8")
            elif not is_skippable(text):
                yield record(line, text)


# The labels one staged hash carries besides its id:
# (explicit_id, quality, category, vic_category, caid_category, series, known_good).
Labels = tuple[int, int | None, str | None, int | None, str | None, str | None, int]
# Staged rows come in three shapes, so that what a whole batch shares is not bound per row:
#   "line":  (line, hash)                    key = line, entry id = the hash itself
#   "keyed": (line, hash, entry_id | None)   key = line (None: the hash is the id)
#   "item":  (item, line, hash, entry_id | None)   key = item (VICS Media ordinal)
GroupKey = tuple[str, Labels, str]  # (algorithm, labels, shape)
SHAPE_WIDTHS = {"line": 2, "keyed": 3, "item": 4}


def group_rows(groups: dict[GroupKey, FlatRows], key: GroupKey) -> FlatRows:
    """The rows of `key`'s group, a new empty one of its shape's width when there are none."""
    rows = groups.get(key)
    if rows is None:
        rows = groups[key] = FlatRows(SHAPE_WIDTHS[key[2]])
    return rows


@dataclass(slots=True)
class Batch:
    """Several records of one list as staged rows grouped by what they share, plus the records
    rejected among them. `key` is unique per record of one file."""

    groups: dict[GroupKey, FlatRows]
    rejected: list[RejectedRecord]
    notes: dict[str, int]
    records: int  # valid records in `groups`

    @classmethod
    def empty(cls) -> Batch:
        return cls({}, [], {}, 0)

    def add_record(self, rec: ParsedRecord, perceptual: frozenset[str]) -> None:
        """Stage one parsed record (quality is kept only on perceptual hashes)."""
        entry_id = rec.entry_id if rec.entry_id is not None else rec.hashes[0][1]
        explicit = int(rec.entry_id is not None)
        for algo, h in rec.hashes:
            labels: Labels = (
                explicit, rec.quality if algo in perceptual else None, rec.category,
                rec.vic_category, rec.caid_category, rec.series, int(rec.known_good),
            )
            entry = None if entry_id == h else entry_id
            if rec.item is not None:
                group_rows(self.groups, (algo, labels, "item")).append(rec.item, rec.line, h, entry)
            else:
                group_rows(self.groups, (algo, labels, "keyed")).append(rec.line, h, entry)
        self.records += 1
        for note in rec.notes:
            self.notes[note] = self.notes.get(note, 0) + 1

    def size(self) -> int:
        return sum(map(len, self.groups.values())) + len(self.rejected)


K = TypeVar("K", bound=Hashable)


def rows_by_key(keys: list[K]) -> dict[K, list[int]]:
    """The row numbers of each distinct key, in file order: each row's key as a number, then
    one stable numpy sort, so grouping a block costs no Python step per row."""
    if len(set(keys)) == 1:
        return {keys[0]: list(range(len(keys)))}
    distinct = list(dict.fromkeys(keys))
    number = {key: k for k, key in enumerate(distinct)}
    codes = np.fromiter(map(number.__getitem__, keys), dtype=np.int64, count=len(keys))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(distinct) + 1))
    return {key: order[bounds[k] : bounds[k + 1]].tolist() for k, key in enumerate(distinct)}


def batched(records: Iterator[Record], size: int = 20_000) -> Iterator[Batch]:
    """Group a parser's records into batches (the generic path, and the fallback of fast ones)."""
    from hashing.registry import PERCEPTUAL

    perceptual = frozenset(PERCEPTUAL)
    batch = Batch.empty()
    n = 0
    try:
        for rec in records:
            if isinstance(rec, RejectedRecord):
                batch.rejected.append(rec)
            else:
                batch.add_record(rec, perceptual)
            n += 1
            if n >= size:
                yield batch
                batch, n = Batch.empty(), 0
    except HashListFormatError:
        yield batch  # what came before an unreadable part is still reported
        raise
    if n or batch.notes:
        yield batch
