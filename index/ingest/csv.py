"""CSV/TSV hash lists with a header row naming the columns.

Column names are case-insensitive and ignore `-`, `_` and spaces (`SHA-1`, `media_id`). A row
may carry several hashes (md5, sha1, sha256, pdq, phash, dhash, ahash, whash) plus labels:
`quality`, `category` (free text, or a code of `--scheme`; a number without a scheme is
mapped only when one built-in scheme has it, else refused naming the `--scheme` to give),
`vic_category`, `caid_category` (a row with only these gets the scale's label), `series`,
`id`/`mediaid`, `known_good`. This is also the shape `bank export --format csv` writes.
A text cell (id, category, caid_category, series) that starts with `'` before a formula start
(`= + - @`, tab, CR; after any further quotes) loses that first `'`: it is the prefix
`bank export` adds so spreadsheets show such cells as text (`hashing.output.neutralise_text`).
An unknown column is a rejected record on the header line (and is ignored with --skip-invalid).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from operator import eq, itemgetter, methodcaller
from typing import Any, BinaryIO, TypeVar

from hashing.i18n import tr
from hashing.output import restore_text
from hashing.registry import PERCEPTUAL, SPECS, STORE_PRIVATE
from index.categories import SchemeError, canonical, label_for_text
from index.errors import HashListFormatError
from index.ingest.fastlines import block_lines, lower_hex_cells, whole_line_blocks
from index.ingest.records import (
    BOM,
    Batch,
    GroupKey,
    Labels,
    ParsedRecord,
    ParseOptions,
    Record,
    RecordError,
    RejectedRecord,
    batched,
    check_bool,
    check_caid,
    check_hash,
    check_quality,
    check_vic,
    group_rows,
    is_skippable,
    iter_text_lines,
    rows_by_key,
)
from index.multirow import FlatRows

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
HASH_COLUMNS = tuple(a for a in SPECS if a not in STORE_PRIVATE)  # every list algorithm
_PERCEPTUAL = frozenset(PERCEPTUAL)
_PLAIN_ID = re.compile(r"[^\s'\"]+(?:\n[^\s'\"]+)*")
# the ASCII characters `\s` matches, and the quotes: what a plain id holds none of
_NOT_PLAIN = bytes(c for c in range(128) if re.match(r"\s", chr(c))) + b"'\""
T = TypeVar("T")
ACCEPTED_COLUMNS = (*HASH_COLUMNS, "id", "quality", "category", "vic_category", "caid_category",
                    "series", "known_good")


def column_key(name: str) -> str:
    return name.strip().strip('"').lower().replace("-", "").replace("_", "").replace(" ", "")


def read_rows(path: str, f: BinaryIO) -> Iterator[tuple[int, list[str]] | RejectedRecord]:
    """Yield (start line, fields) per CSV row, the header first, or a RejectedRecord.

    Blank and `#` lines are skipped; the delimiter is a tab when the header has one.
    """
    return rows_of(iter_text_lines(f), path)


def rows_of(
    numbered: Iterator[tuple[int, str | None]], path: str | None = None,
    delimiter: str | None = None,
) -> Iterator[tuple[int, list[str]] | RejectedRecord]:
    """`read_rows` over (line number, text or None when undecodable) pairs."""
    consumed: list[int] = []
    undecodable: set[int] = set()

    def lines() -> Iterator[str]:
        for number, text in numbered:
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
        if path is None:
            return
        raise HashListFormatError(path, None, tr("no header row"))
    if delimiter is None:
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
        raise HashListFormatError(path, first.line, tr("unreadable header: {reason}",
                                                       reason=first.reason))
    header_line, header = first
    return header_line, header, rows


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    with open(path, "rb") as f:
        header_line, header, rows = read_table(path, f)
        columns, problems = _columns(path, header_line, header)
        yield from problems
        yield from each_row(rows, lambda line, row: _record(line, row, columns, len(header),
                                                            options))


def each_row(
    rows: Iterator[tuple[int, list[str]] | RejectedRecord], build: Callable[[int, list[str]], T]
) -> Iterator[T | RejectedRecord]:
    """`build(line, fields)` per data row of `read_table`; a row the reader could not read, or
    whose values `build` refuses (RecordError), is a RejectedRecord on its line."""
    for item in rows:
        if isinstance(item, RejectedRecord):
            yield item
            continue
        line, row = item
        try:
            yield build(line, row)
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
            problems.append(RejectedRecord(line, (
                f"unknown column {name!r}: accepted are {', '.join(ACCEPTED_COLUMNS)} "
                "(--skip-invalid imports the rest and ignores it)")))
            continue
        if target in columns.values():
            raise HashListFormatError(path, line, tr("column {name!r} given twice", name=name))
        columns[i] = target
    if not any(t in HASH_COLUMNS for t in columns.values()):
        raise HashListFormatError(path, line, tr("no hash column in header {header!r}",
                                                 header=header))
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
    return ParsedRecord(line, tuple(hashes), **_label_values(labels, options))


_TEXT_LABELS = ("id", "category", "caid_category", "series")


def _label_values(labels: dict[str, str], options: ParseOptions) -> dict[str, Any]:
    """ParsedRecord's label fields from a row's non-empty label cells (RecordError if bad)."""
    labels = {k: restore_text(v) if k in _TEXT_LABELS else v for k, v in labels.items()}
    category = labels.get("category", options.category)
    vic = check_vic(labels["vic_category"]) if "vic_category" in labels else None
    caid = check_caid(labels["caid_category"]) if "caid_category" in labels else None
    if "category" in labels:
        try:
            found = label_for_text(labels["category"], options.scheme)
        except SchemeError as e:
            raise RecordError(str(e)) from None
        category = found.label
        vic = found.vic_category if vic is None else vic
        caid = found.caid_category if caid is None else caid
    elif category is None and (vic is not None or caid is not None):
        # a list that carries only the scale code still gets the scale's label
        normal = canonical(None, vic, caid)
        category = normal.label if normal else None
    known_good = options.known_good
    if "known_good" in labels:
        known_good = check_bool("known_good", labels["known_good"]) or known_good
    return {
        "entry_id": labels.get("id"),
        "quality": check_quality(labels["quality"]) if "quality" in labels else None,
        "category": category,
        "vic_category": vic,
        "caid_category": caid,
        "series": labels.get("series"),
        "known_good": known_good,
    }


def batches(path: str, options: ParseOptions) -> Iterator[Batch]:
    """The import's path: `parse`'s records as staged batches, unquoted blocks in bulk.

    A header that is not one plain line sends the whole file to the reference parser; after
    it, each block of whole lines without a quote is split and checked column by column, and
    any other block (quotes, comments, blank lines, a bad value) goes through the reference
    row reader, extended until its quotes pair up so no quoted field straddles two blocks.
    """
    with open(path, "rb") as f:
        head = f.readline()
        if head.startswith(BOM):
            head = head[len(BOM) :]
        try:
            header_text = head.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            header_text = ""
        if is_skippable(header_text) or '"' in header_text:
            yield from batched(parse(path, options))
            return
        delimiter = "\t" if "\t" in header_text else ","
        header = header_text.split(delimiter)
        columns, problems = _columns(path, 1, header)
        yield Batch({}, problems, {}, 0)
        number = 2
        blocks = whole_line_blocks(f)
        for block in blocks:
            if b'"' in block:
                # where a quoted field ends is the csv reader's call (an unclosed quote runs on
                # across lines), so from the first quote on the reference reads the rest
                rest = chain.from_iterable(map(block_lines, chain([block], blocks)))
                yield from _reference_batches(rest, number, columns, len(header), delimiter,
                                              options)
                return
            batch = _fast_block(block, number, columns, len(header), delimiter, options)
            if batch is None:
                batch = _reference_block(block_lines(block), number, columns, len(header),
                                         delimiter, options)
            yield batch
            number += block.count(b"\n")


def _reference_block(
    lines: list[bytes], start: int, columns: dict[int, str], width: int, delimiter: str,
    options: ParseOptions,
) -> Batch:
    return next(_reference_batches(lines, start, columns, width, delimiter, options, None))


def _reference_batches(
    lines: Iterable[bytes], start: int, columns: dict[int, str], width: int, delimiter: str,
    options: ParseOptions, every: int | None = 50_000,
) -> Iterator[Batch]:
    """The reference row reader over `lines` (numbered from `start`), in batches of `every`
    records (None: one batch), so a long quoted tail stays in flat memory."""
    batch = Batch.empty()

    def numbered() -> Iterator[tuple[int, str | None]]:
        for number, raw in enumerate(lines, start):
            try:
                yield number, raw.rstrip(b"\r\n").decode("utf-8")
            except UnicodeDecodeError:
                yield number, None

    count = 0
    for item in rows_of(numbered(), delimiter=delimiter):
        count += 1
        if isinstance(item, RejectedRecord):
            batch.rejected.append(item)
        else:
            line, row = item
            try:
                batch.add_record(_record(line, row, columns, width, options), _PERCEPTUAL)
            except RecordError as e:
                batch.rejected.append(RejectedRecord(line, str(e)))
        if every is not None and count % every == 0:
            yield batch
            batch = Batch.empty()
    yield batch


def _fast_block(
    block: bytes, start: int, columns: dict[int, str], width: int, delimiter: str,
    options: ParseOptions,
) -> Batch | None:
    """A block of plain rows (whole lines), every value well-formed and no hash cell empty,
    else None."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    if "#" in text:
        return None  # perhaps comment lines: the reference knows
    texts = text.split("\n")
    texts.pop()  # the block ends with a line ending
    if "" in texts:
        return None
    if set(map(methodcaller("count", delimiter), texts)) != {width - 1}:
        return None
    # every line has `width` cells: split the block once and take the columns by stride
    flat = text.replace("\n", delimiter).split(delimiter)
    flat.pop()
    cells = [flat[i::width] for i in range(width)]
    n = len(texts)
    hash_cols: list[tuple[str, list[str]]] = []
    label_names: list[str] = []
    label_cols: list[list[str]] = []
    ids: list[str] | None = None
    for i, target in sorted(columns.items()):
        col = cells[i]
        if target in HASH_COLUMNS:
            lowered = lower_hex_cells(col, SPECS[target].hex_length)
            if lowered is None:
                return None
            hash_cols.append((target, lowered))
        elif target == "id":
            # cells without spaces or quotes are their own ids (no strip, no restore)
            ids = col if plain_ids(col) else [restore_text(e.strip()) for e in col]
            if "" in ids:
                return None
        else:
            label_names.append(target)
            label_cols.append(col)
    if not hash_cols:
        return None
    # each row's label cells as its grouping key: with one label column, the cell itself
    # (a tuple per row cost a fifth of the block's time)
    label_rows: list[Any] = (label_cols[0] if len(label_cols) == 1
                             else list(zip(*label_cols, strict=True)) if label_cols else [()] * n)
    labels_of: dict[Any, tuple[Labels, Labels]] = {}
    explicit = int(ids is not None)
    for raw in set(label_rows):
        own = (raw,) if len(label_cols) == 1 else raw
        present = {n: v.strip() for n, v in zip(label_names, own, strict=True) if v.strip()}
        try:
            v = _label_values(present, options)
        except RecordError:
            return None
        shared = (v["category"], v["vic_category"], v["caid_category"], v["series"],
                  int(v["known_good"]))
        labels_of[raw] = ((explicit, None, *shared), (explicit, v["quality"], *shared))
    # rows by label combination (usually one or a few), then each group column by column in C
    members = rows_by_key(label_rows)
    groups: dict[GroupKey, FlatRows] = {}
    first = hash_cols[0][1]
    # an id can equal its hash (then stored as NULL) only where the lengths agree
    id_lengths = set(map(len, ids)) if ids is not None else set()
    for raw, idx in members.items():
        pick = (lambda col: col) if len(idx) == n else _picker(idx)
        lines_of: Sequence[int] = (range(start, start + n) if len(idx) == n
                                   else list(map(start.__add__, idx)))
        own_ids = pick(ids) if ids is not None else None
        for j, (algo, values) in enumerate(hash_cols):
            labels = labels_of[raw][1 if algo in _PERCEPTUAL else 0]
            hashes = pick(values)
            group_columns: tuple[Sequence[Any], ...]
            if own_ids is not None:
                same = SPECS[algo].hex_length in id_lengths and any(map(eq, own_ids, hashes))
                entries = own_ids if not same else [
                    None if e == h else e for e, h in zip(own_ids, hashes, strict=True)]
                group_columns, shape = (lines_of, hashes, entries), "keyed"
            elif j == 0:
                group_columns, shape = (lines_of, hashes), "line"
            else:
                group_columns, shape = (lines_of, hashes, pick(first)), "keyed"
            # label combinations differing only in quality share a digest's group
            group_rows(groups, (algo, labels, shape)).add_columns(*group_columns)
    return Batch(groups, [], {}, n)


def plain_ids(col: list[str]) -> bool:
    """Whether every cell is a plain id: not empty, no whitespace, no quote (`_PLAIN_ID`).
    ASCII cells are checked as bytes in C (the regex took 0.065 s of CPU a 5·10^5 ids)."""
    joined = "".join(col)
    if not joined.isascii():
        return _PLAIN_ID.fullmatch("\n".join(col)) is not None
    raw = joined.encode("ascii")
    return bool(col) and "" not in col and len(raw.translate(None, _NOT_PLAIN)) == len(raw)


def _picker(idx: list[int]) -> Any:
    get = itemgetter(*idx)
    if len(idx) == 1:
        return lambda col: [get(col)]
    return lambda col: list(get(col))
