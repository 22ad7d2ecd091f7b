"""Tests of the synthetic hash-list writer: every format parses and carries the same entries."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from index.categories import VIC
from synthetic_fixtures.hashlists import (
    CSV_HEADER,
    NSRL_HEADER,
    VICS1_CONTEXT,
    VICS2_CONTEXT,
    entry_from_bytes,
    random_entries,
    write_hash_lists,
)


def _lists(tmp_path: Path):
    entries = random_entries(np.random.default_rng(1), 12)
    return entries, write_hash_lists(tmp_path, entries, seed=1)


def test_entry_from_bytes_known_answers() -> None:
    e = entry_from_bytes(b"abc", "X1", "abc.bin")
    assert e.md5 == "900150983cd24fb0d6963f7d28e17f72"
    assert e.sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert e.sha256.startswith("ba7816bf8f01cfea")
    assert e.crc32 == "352441c2" and e.size == 3


def test_every_format_carries_the_same_entries(tmp_path: Path) -> None:
    entries, infos = _lists(tmp_path)
    md5s = {e.md5 for e in entries}
    good = [i for i in infos if not i.malformed]
    assert {i.format for i in good} == {"csv", "hashlist", "pdq", "vics", "nsrl"}
    for info in good:
        text = Path(info.path).read_text(encoding="utf-8")
        if info.format == "csv":
            rows = list(csv.DictReader(text.splitlines()))
            assert tuple(rows[0].keys()) == CSV_HEADER
            assert {r["md5"] for r in rows} == md5s
            assert {int(r["category"]) for r in rows} <= set(range(1, 6))
        elif info.format == "hashlist":
            values = text.split()
            assert {len(v) for v in values} == {{"md5": 32, "sha1": 40, "sha256": 64}[info.algorithm]}
            assert len(values) == info.n_valid == len(entries)
        elif info.format == "pdq":
            pairs = [line.split(",") for line in text.splitlines()]
            assert {p[0] for p in pairs} == {e.pdq for e in entries}
            assert all(0 <= int(p[1]) <= 100 for p in pairs)
        elif info.format == "vics":
            doc = json.loads(text)
            if "odata.metadata" in doc:
                assert doc["odata.metadata"] == VICS1_CONTEXT
                media = [m for case in doc["value"] for m in case["Media"]]
                assert all(m["IsPrecategorized"] == "true" for m in media)
            else:
                assert doc["@odata.context"] == VICS2_CONTEXT
                media = doc["value"]
            assert {m["MD5"] for m in media} == {h.upper() for h in md5s}
            assert all(m["AlternativeHashes"][0]["HashName"] == "PDQ" for m in media)
        elif info.format == "nsrl":
            assert "\r\n" in Path(info.path).read_bytes().decode()
            rows = list(csv.reader(text.splitlines()))
            assert tuple(rows[0]) == NSRL_HEADER
            assert {r[1] for r in rows[1:]} == {h.upper() for h in md5s}


def test_malformed_lists_state_their_rejections(tmp_path: Path) -> None:
    _, infos = _lists(tmp_path)
    bad = [i for i in infos if i.malformed]
    assert {i.format for i in bad} == {"csv", "hashlist", "pdq", "vics", "nsrl"}
    keywords = {k for i in bad for _, k in i.expected_rejections}
    assert keywords == {"hex", "digits", "quality", "duplicate"}
    assert sum(i.expected_duplicates for i in bad) == 3
    for info in bad:
        raw = Path(info.path).read_bytes()
        if info.format != "vics":
            lines = raw.decode("utf-8-sig").splitlines()
            for line, _ in info.expected_rejections:
                assert lines[line - 1].strip()  # a rejection points at a real, non-blank line
        else:
            assert raw.startswith(b"\xef\xbb\xbf")
            doc = json.loads(raw.decode("utf-8-sig"))
            media = doc["value"][0]["Media"]
            assert max(line for line, _ in info.expected_rejections) <= len(media)
    csv_bad = next(i for i in bad if i.format == "csv")
    raw = Path(csv_bad.path).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw


def test_lists_are_deterministic(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        write_hash_lists(tmp_path / sub, random_entries(np.random.default_rng(4), 6), seed=4)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_line_level_rejections_agree_with_the_ingest_parsers(tmp_path: Path) -> None:
    """Cross-check with index.ingest: the parsers reject exactly the lines stated (bad hex,
    wrong length, bad quality); repeats and conflicts are the bank importer's business."""
    importlib = pytest.importorskip("importlib")
    records = pytest.importorskip("index.ingest.records")
    _, infos = _lists(tmp_path)
    for info in infos:
        parser = importlib.import_module(f"index.ingest.{info.format}")
        algo = info.algorithm if info.format == "hashlist" else None
        # the CSV lists carry Project VIC codes in `category`: a code needs its scheme
        scheme = VIC if info.format == "csv" else None
        got = [r for r in parser.parse(info.path, records.ParseOptions(algo=algo, scheme=scheme))
               if isinstance(r, records.RejectedRecord)]
        where = [(r.item if info.format == "vics" else r.line) for r in got]
        line_level = [(n, k) for n, k in info.expected_rejections if k != "duplicate"]
        assert where == [n for n, _ in line_level], info.path
        for r, (_, keyword) in zip(got, line_level, strict=True):
            assert keyword in r.reason.lower(), (info.path, r.reason)


def test_bank_import_reports_exactly_the_stated_rejections_and_repeats(tmp_path: Path) -> None:
    """Cross-check with index.banks: every rejection (incl. conflicts) and repeat as stated."""
    banks = pytest.importorskip("index.banks")
    bank_import = pytest.importorskip("index.bank_import")
    _, infos = _lists(tmp_path)
    with banks.BankStore(tmp_path / "store") as store:
        for k, info in enumerate(i for i in infos if i.malformed):
            algo = info.algorithm if info.format == "hashlist" else None
            result = store.import_file(info.path, bank_import.ImportOptions(
                bank=f"b{k}", format=info.format, algo=algo, skip_invalid=True,
                scheme="vic" if info.format == "csv" else None))
            got = [(r.item if info.format == "vics" else r.line) for r in result.rejected]
            assert got == [n for n, _ in info.expected_rejections], info.path
            for r, (_, keyword) in zip(result.rejected, info.expected_rejections, strict=True):
                assert keyword in r.reason.lower(), (info.path, r.reason)
            assert result.duplicates == info.expected_duplicates, info.path
