"""NSRL RDS file lists (CSV with quoted fields, `"SHA-1","MD5",...` header): known-good hashes.

Only the SHA-1, MD5 and SHA-256 columns are read; the RDS's many other columns (file name,
product code, ...) are ignored, and every record is known-good. The RDS repeats a hash once
per product it ships in, so identical repeats are expected and deduplicated by the store.
"""

from __future__ import annotations

from collections.abc import Iterator

from index.errors import HashListFormatError
from index.ingest.csv import column_key, read_table
from index.ingest.records import (
    ParsedRecord,
    ParseOptions,
    Record,
    RecordError,
    RejectedRecord,
    check_hash,
)

_HASHES = {"sha1": "sha1", "md5": "md5", "sha256": "sha256"}


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    with open(path, "rb") as f:
        header_line, header, rows = read_table(path, f)
        columns = {
            i: _HASHES[column_key(n)] for i, n in enumerate(header) if column_key(n) in _HASHES
        }
        if not columns:
            raise HashListFormatError(path, header_line, "no SHA-1, MD5 or SHA-256 column")
        for item in rows:
            if isinstance(item, RejectedRecord):
                yield item
                continue
            line, row = item
            if len(row) != len(header):
                yield RejectedRecord(line, f"expected {len(header)} fields, got {len(row)}")
                continue
            try:
                hashes = tuple(
                    check_hash(algo, row[i]) for i, algo in columns.items() if row[i].strip()
                )
            except RecordError as e:
                yield RejectedRecord(line, str(e))
                continue
            if not hashes:
                yield RejectedRecord(line, "no hash in row")
                continue
            yield ParsedRecord(line, hashes, category=options.category, known_good=True)
