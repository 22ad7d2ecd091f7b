"""What any hash-list parser may do with any input: typed records with in-range line numbers,
normalised hashes and valid qualities, or the typed format error naming the file."""

from __future__ import annotations

from hashing import codec
from index.errors import HashListFormatError
from index.ingest import csv as csv_list
from index.ingest import hashlist, nsrl, pdq, vics
from index.ingest.detect import detect_format
from index.ingest.records import ParsedRecord, ParseOptions, RejectedRecord

PARSERS = {"csv": csv_list.parse, "hashlist": hashlist.parse, "pdq": pdq.parse,
           "vics": vics.parse, "nsrl": nsrl.parse}


def check_parse(fmt: str, path: str, options: ParseOptions, nlines: int) -> None:
    try:
        for rec in PARSERS[fmt](path, options):
            assert 1 <= rec.line <= nlines
            if isinstance(rec, ParsedRecord):
                assert rec.hashes
                for algo, hex_ in rec.hashes:
                    assert codec.normalise_hex(algo, hex_) == hex_
                assert rec.quality is None or 0 <= rec.quality <= 100
            else:
                assert isinstance(rec, RejectedRecord) and rec.reason
    except HashListFormatError as e:
        assert e.reason and e.path == path
    try:
        with open(path, "rb") as fh:
            sqlite = fh.read(16) == b"SQLite format 3\x00"
        # a SQLite file is an RDSv3 candidate, whose own reader checks its shape
        assert detect_format(path) == "rdsv3" if sqlite else detect_format(path) in PARSERS
    except HashListFormatError:
        pass
