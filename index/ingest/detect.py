"""`--format auto`: tell the import formats apart from the first bytes of a file."""

from __future__ import annotations

import re

from hashing.i18n import tr
from index.errors import HashListFormatError
from index.ingest.csv import HASH_COLUMNS, column_key
from index.ingest.records import BOM, is_skippable

FORMATS = ("csv", "hashlist", "pdq", "vics", "nsrl", "rdsv3")
_PDQ_LINE = re.compile(r"^\s*(0x)?[0-9a-fA-F]{64}\s*,\s*\d+\s*(,.*)?$")
_HEX_LINE = re.compile(r"^\s*(0x)?[0-9a-fA-F]+\s*$")
_NSRL_COLUMNS = {"filename", "productcode", "opsystemcode", "specialcode", "crc32"}
_HEAD = 1 << 16


def detect_format(path: str) -> str:
    """Return one of FORMATS, or raise HashListFormatError when nothing fits."""
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    if head.startswith(b"SQLite format 3\x00"):
        return "rdsv3"  # NIST ships the NSRL as SQLite only now; the reader checks its shape
    if head.startswith(BOM):
        head = head[len(BOM) :]
    if head.lstrip().startswith(b"{"):
        return "vics"
    text = head.decode("utf-8", "replace")
    for number, line in enumerate(text.splitlines(), 1):
        if is_skippable(line):
            continue
        if _PDQ_LINE.match(line):
            return "pdq"
        if _HEX_LINE.match(line):
            return "hashlist"
        names = {column_key(n) for n in re.split(r"[,\t]", line)}
        if names & _NSRL_COLUMNS and names & {"sha1", "md5"}:
            return "nsrl"
        if names & set(HASH_COLUMNS):
            return "csv"
        raise HashListFormatError(path, number,
                                  tr("cannot detect the list format: give --format"))
    raise HashListFormatError(path, None, tr("empty list: no record"))
