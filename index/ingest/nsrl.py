"""NSRL RDS file lists (CSV with quoted fields, `"SHA-1","MD5",...` header): known-good hashes.

Only the SHA-1, MD5 and SHA-256 columns are read; the RDS's many other columns (file name,
product code, ...) are ignored, and every record is known-good. The RDS repeats a hash once
per product it ships in, so identical repeats are expected and deduplicated by the store.
"""

from __future__ import annotations

from collections.abc import Iterator

from hashing.i18n import tr
from index.errors import HashListFormatError
from index.ingest.csv import column_key, each_row, read_table
from index.ingest.records import ParseOptions, Record, RejectedRecord, hashes_record

_HASHES = {"sha1": "sha1", "md5": "md5", "sha256": "sha256"}


def parse(path: str, options: ParseOptions) -> Iterator[Record]:
    with open(path, "rb") as f:
        header_line, header, rows = read_table(path, f)
        columns = {
            i: _HASHES[column_key(n)] for i, n in enumerate(header) if column_key(n) in _HASHES
        }
        if not columns:
            raise HashListFormatError(path, header_line,
                                      tr("no SHA-1, MD5 or SHA-256 column"))
        width = len(header)

        def record(line: int, row: list[str]) -> Record:
            if len(row) != width:
                return RejectedRecord(line, f"expected {width} fields, got {len(row)}")
            cells = ((algo, row[i]) for i, algo in columns.items() if row[i].strip())
            return hashes_record(line, cells, options.category, True)

        yield from each_row(rows, record)
