"""Hostile input: random bytes and mutated valid lists never raise anything but the typed error."""

from __future__ import annotations

import json
import os
import tempfile

from _ingest_checks import PARSERS, check_parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.categories import VIC
from index.ingest.detect import detect_format
from index.ingest.records import ParsedRecord, ParseOptions

MD5 = "0123456789abcdef0123456789abcdef"
PDQ = "ab" * 32
VALID = {
    "csv": f"id,md5,pdq,quality,category\n1,{MD5},{PDQ},90,x\n2,{MD5[::-1]},,,y\n".encode(),
    "hashlist": f"# c\n{MD5}\n{MD5[::-1]}\n".encode(),
    "pdq": f"{PDQ},100,a\n{PDQ[::-1]},50\n".encode(),
    "vics": json.dumps(
        {
            "odata.metadata": "x/DataModels/1.3.xml#Cases",
            "value": [
                {
                    "Media": [
                        {
                            "MediaID": 1,
                            "Category": 1,
                            "MD5": MD5,
                            "AlternativeHashes": [{"HashName": "PDQ", "HashValue": PDQ}],
                        }
                    ]
                }
            ],
        },
        indent=1,
    ).encode(),
    "nsrl": f'"SHA-1","MD5","FileName"\n"{"1" * 40}","{MD5}","a"\n'.encode(),
}


def check(data: bytes, fmt: str) -> None:
    """Parse `data` as `fmt`: records are well-formed or the file is refused with the typed error."""
    fd, path = tempfile.mkstemp()
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        options = ParseOptions(algo="md5" if fmt == "hashlist" else None, scheme=VIC)
        check_parse(fmt, path, options, data.count(b"\n") + 1)
    finally:
        os.unlink(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(sorted(PARSERS)))
def test_random_bytes(data: bytes, fmt: str) -> None:
    check(data, fmt)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, str]:
    fmt = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[fmt])
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = draw(st.sampled_from(b'",{}[]:\n\r\t 0aZ\xff\xef#'))
        if op == "insert" or pos == len(data):
            data.insert(pos, byte)
        elif op == "flip":
            data[pos] = byte
        else:
            del data[pos]
    return bytes(data), fmt


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_lists(case: tuple[bytes, str]) -> None:
    check(*case)


def test_valid_lists_parse_cleanly() -> None:
    for fmt, data in VALID.items():
        fd, path = tempfile.mkstemp()
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            records = list(
                PARSERS[fmt](path, ParseOptions(algo="md5" if fmt == "hashlist" else None))
            )
            assert records and all(isinstance(r, ParsedRecord) for r in records), fmt
            assert detect_format(path) == fmt
        finally:
            os.unlink(path)
