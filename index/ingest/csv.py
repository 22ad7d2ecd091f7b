"""CSV/TSV hash lists with a header row naming the columns.

Column names are case-insensitive and ignore `-`, `_` and spaces (`SHA-1`, `media_id`). A row
may carry several hashes (md5, sha1, sha256, pdq, phash, dhash, ahash, whash) plus labels:
`quality`, `category` (free text, or a code of `--scheme`), `vic_category`, `caid_category`,
`series`, `id`/`mediaid`, `known_good`. This is also the shape `bank export --format csv` writes.
An unknown column is a rejected record on the header line (and is ignored with --skip-invalid).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import chain
from typing import BinaryIO

from hashing.registry import SPECS
from index.errors import HashListFormatError
from index.ingest.records import (
    ParsedRecord,
    ParseOptions,
    Record,
    RecordError,
    RejectedRecord,
    check_bool,
    check_caid,
    check_hash,
    check_quality,
    check_vic,
    is_skippable,
    iter_text_lines,
)

_LABELS = {
    "quality": "quality",
    "pdqquality": "quality",
    "category": "category",
    "viccategory": "vic_category",
    "caidcategory": "caid_category",
    "series": "series",
    "id": "id",
    "mediaid": "id",
    "entryid": "id",
    "knowngood": "known_good",
}
HASH_COLUMNS = tuple(SPECS)  # every algorithm name is a column name


def column_key(name: str) -> str:
    return name.strip().strip('"').lower().replace("-", "").replace("_", "").replace(" ", "")


def read_rows(path: str, f: BinaryIO) -> Iterator[tuple[int, list[str]] | RejectedRecord]:
    """Yield (start line, fields) per CSV row, the header first, or a RejectedRecord.

    Blank and `#` lines are skipped; the delimiter is a tab when the header has one.
    """
    consumed: list[int] = []
    undecodable: set[int] = set()

    def lines() -> Iterator[str]:
        for number, text in iter_text_lines(f):
            if text is not None and is_skippable(text):
                continue
            consumed.append(number)
            if text is None:
                undecodable.add(number)
                text = ""
            yield text + "\n"

    source = lines()
    first = next(source, None)
    if first is None:
        raise HashListFormatError(path, None, "no header row")
    delimiter = "\t" if "\t" in first else ","
    reader = csv.reader(chain([first], source), delimiter=delimiter)
    last = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield RejectedRecord(consumed[0] if consumed else last, f"CSV: {e}")
            consumed.clear()
            continue
        line = last = consumed[0]
        bad_text = any(n in undecodable for n in consumed)
        consumed.clear()
        yield RejectedRecord(line, "not valid UTF-8") if bad_text else (line, row)


def read_table(
    path: str, f: BinaryIO
) -> tuple[int, list[str], Iterator[tuple[int, list[str]] | RejectedRecord]]:
    """(header line, header fields, the data rows): a file whose header is unreadable is refused."""
    rows = read_rows(path, f)
    first = next(rows)
    if isinstance(first, RejectedRecord):
        raise HashListFormatError(path, first.line, f"unreadable header: {first.reason}")
    header_line, header = first
    return header_line, header, rows


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    with open(path, "rb") as f:
        header_line, header, rows = read_table(path, f)
        columns, problems = _columns(path, header_line, header)
        yield from problems
        for item in rows:
            if isinstance(item, RejectedRecord):
                yield item
                continue
            line, row = item
            try:
                yield _record(line, row, columns, len(header), options)
            except RecordError as e:
                yield RejectedRecord(line, str(e))


def _columns(
    path: str, line: int, header: list[str]
) -> tuple[dict[int, str], list[RejectedRecord]]:
    """Map field position -> algorithm name or label key."""
    columns: dict[int, str] = {}
    problems: list[RejectedRecord] = []
    for i, name in enumerate(header):
        key = column_key(name)
        target = key if key in HASH_COLUMNS else _LABELS.get(key)
        if target is None:
            problems.append(RejectedRecord(line, f"unknown column {name!r}"))
            continue
        if target in columns.values():
            raise HashListFormatError(path, line, f"column {name!r} given twice")
        columns[i] = target
    if not any(t in HASH_COLUMNS for t in columns.values()):
        raise HashListFormatError(path, line, f"no hash column in header {header!r}")
    return columns, problems


def _record(
    line: int, row: list[str], columns: dict[int, str], width: int, options: ParseOptions
) -> ParsedRecord:
    if len(row) != width:
        raise RecordError(f"expected {width} fields, got {len(row)}")
    hashes: list[tuple[str, str]] = []
    labels: dict[str, str] = {}
    for i, target in columns.items():
        value = row[i].strip()
        if not value:
            continue
        if target in HASH_COLUMNS:
            hashes.append(check_hash(target, value))
        else:
            labels[target] = value
    if not hashes:
        raise RecordError("no hash in row")
    category = labels.get("category", options.category)
    vic = check_vic(labels["vic_category"]) if "vic_category" in labels else None
    caid = check_caid(labels["caid_category"]) if "caid_category" in labels else None
    if options.scheme is not None and "category" in labels:
        found = options.scheme.lookup(labels["category"])
        if found is None:
            raise RecordError(
                f"unknown category {labels['category']!r} in scheme {options.scheme.name}"
            )
        category = found.label
        vic = found.vic_category if vic is None else vic
        caid = found.caid_category if caid is None else caid
    known_good = options.known_good
    if "known_good" in labels:
        known_good = check_bool("known_good", labels["known_good"]) or known_good
    return ParsedRecord(
        line,
        tuple(hashes),
        entry_id=labels.get("id"),
        quality=check_quality(labels["quality"]) if "quality" in labels else None,
        category=category,
        vic_category=vic,
        caid_category=caid,
        series=labels.get("series"),
        known_good=known_good,
    )
