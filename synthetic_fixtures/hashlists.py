"""Hash lists in every import format (csv, hashlist, pdq, VICS 1.3 and 2.0, NSRL), plus malformed ones.

The same bank entries are written in each format, so an ingest test can check that every
format yields the same records. Each malformed list states what a correct import reports:
`expected_rejections` as `(line, reason_keyword)`, where `line` is 1-based in the file (header
and comment lines count; for VICS JSON it is the 1-based position of the Media object in the
file) and `reason_keyword` is a lower-case word the rejection reason contains: `hex` (not
hexadecimal), `digits` (wrong number of hex digits), `quality` (PDQ quality outside 0-100),
`duplicate` (the same hash again with *different* labels: a conflict, the later line is
rejected). A repeat with identical data is not an error: it is counted in
`expected_duplicates`. `n_valid` is the number of distinct entries the bank ends up with.
BOMs, CRLF line ends, `#` comments, blank lines and upper-case hex are legal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

VICS1_CONTEXT = "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Cases"
VICS2_CONTEXT = "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/US/$metadata#Media"
CSV_HEADER = ("md5", "sha1", "sha256", "pdq", "category", "series", "id")
NSRL_HEADER = (
    "SHA-1", "MD5", "CRC32", "FileName", "FileSize", "ProductCode", "OpSystemCode", "SpecialCode",
)
# Fixed, not the wall clock: the same seed must give the same bytes.
DATE_UPDATED = "2024-03-01T12:00:00Z"


@dataclass(frozen=True, slots=True)
class BankListEntry:
    """One known item as a hash list describes it. Hex is lower case here; writers re-case."""

    id: str
    md5: str
    sha1: str
    sha256: str
    size: int
    crc32: str
    file_name: str
    category: int = 1
    series: str = ""
    pdq: str | None = None
    pdq_quality: int | None = None


@dataclass(frozen=True, slots=True)
class ListInfo:
    """One written list: its import format, the algorithm for single-algorithm formats,

    how many valid entries it holds and which lines a parser must reject.
    """

    path: str
    format: str  # csv | hashlist | pdq | vics | nsrl
    algorithm: str | None = None  # for hashlist files: md5 | sha1 | sha256
    n_valid: int = 0
    malformed: bool = False
    expected_rejections: list[tuple[int, str]] = field(default_factory=list)
    expected_duplicates: int = 0
    note: str = ""


def entry_from_bytes(
    data: bytes,
    entry_id: str,
    file_name: str,
    category: int = 1,
    series: str = "",
    pdq: str | None = None,
    pdq_quality: int | None = None,
) -> BankListEntry:
    """The list entry describing a file with these bytes."""
    return BankListEntry(
        id=entry_id,
        md5=hashlib.md5(data).hexdigest(),
        sha1=hashlib.sha1(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        crc32=f"{zlib.crc32(data):08x}",
        file_name=file_name,
        category=category,
        series=series,
        pdq=pdq,
        pdq_quality=pdq_quality,
    )


def random_entries(rng: np.random.Generator, n: int, prefix: str = "E") -> list[BankListEntry]:
    """`n` entries for random byte strings, with random PDQ hashes, categories 1-5 and series."""
    out = []
    for i in range(n):
        data = rng.bytes(int(rng.integers(100, 5000)))
        pdq = rng.bytes(32).hex()
        out.append(
            entry_from_bytes(
                data,
                entry_id=f"{prefix}{i:06d}",
                file_name=f"IMG_{i:05d}.jpg",
                category=int(rng.integers(1, 6)),
                series=f"S{int(rng.integers(1, 1 + max(1, n // 5))):03d}",
                pdq=pdq,
                pdq_quality=int(rng.integers(50, 101)),
            )
        )
    return out


def _csv_text(rows: Sequence[Sequence[object]], *, quote_all: bool = False, crlf: bool = False) -> str:
    buf = io.StringIO()
    writer = csv.writer(
        buf,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
        lineterminator="\r\n" if crlf else "\n",
    )
    writer.writerows(rows)
    return buf.getvalue()


def _csv_row(e: BankListEntry) -> list[object]:
    return [e.md5, e.sha1, e.sha256, e.pdq or "", e.category, e.series, e.id]


def _nsrl_row(e: BankListEntry) -> list[object]:
    return [e.sha1.upper(), e.md5.upper(), e.crc32.upper(), e.file_name, e.size, 1000, "WIN", ""]


def _vics_media(e: BankListEntry, v2: bool) -> dict[str, object]:
    media: dict[str, object] = {
        "MediaID": e.id,
        "Category": e.category,
        "MD5": e.md5.upper(),
        "SHA1": e.sha1.upper(),
        "MediaSize": e.size,
        "Series": e.series,
        "IsPrecategorized": True if v2 else "true",
        "DateUpdated": DATE_UPDATED,
    }
    if v2:
        media["SHA256"] = e.sha256.upper()
    if e.pdq is not None:
        media["AlternativeHashes"] = [{"HashName": "PDQ", "HashValue": e.pdq}]
    return media


def _vics1(entries: Sequence[BankListEntry], case_number: str, v_media: list[dict[str, object]] | None = None) -> str:
    media = v_media if v_media is not None else [_vics_media(e, False) for e in entries]
    doc = {"odata.metadata": VICS1_CONTEXT, "value": [{"CaseNumber": case_number, "Media": media}]}
    return json.dumps(doc, indent=1)


def _vics2(entries: Sequence[BankListEntry], v_media: list[dict[str, object]] | None = None) -> str:
    media = v_media if v_media is not None else [_vics_media(e, True) for e in entries]
    return json.dumps({"@odata.context": VICS2_CONTEXT, "value": media}, indent=1)


def _write(path: Path, text: str, *, bom: bool = False) -> None:
    # newline="" so CRLF written by the caller stays CRLF on every platform.
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        f.write(text)


def write_hash_lists(
    out_dir: str | os.PathLike[str],
    entries: Sequence[BankListEntry],
    seed: int,
    name: str = "bank",
    malformed: bool = True,
) -> list[ListInfo]:
    """Write `entries` in every import format under `out_dir` (and malformed lists if asked)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 17])
    case_number = f"CASE-{int(rng.integers(10_000, 99_999))}"
    n = len(entries)
    with_pdq = [e for e in entries if e.pdq is not None]
    infos: list[ListInfo] = []

    p = out / f"{name}.csv"
    _write(p, _csv_text([CSV_HEADER, *(_csv_row(e) for e in entries)]))
    infos.append(ListInfo(str(p), "csv", n_valid=n))
    for algo in ("md5", "sha1", "sha256"):
        p = out / f"{name}.{algo}.txt"
        _write(p, "".join(getattr(e, algo) + "\n" for e in entries))
        infos.append(ListInfo(str(p), "hashlist", algorithm=algo, n_valid=n))
    p = out / f"{name}.pdq.txt"
    _write(p, "".join(f"{e.pdq},{e.pdq_quality if e.pdq_quality is not None else 100}\n" for e in with_pdq))
    infos.append(ListInfo(str(p), "pdq", algorithm="pdq", n_valid=len(with_pdq)))
    p = out / f"{name}.vics13.json"
    _write(p, _vics1(entries, case_number))
    infos.append(ListInfo(str(p), "vics", n_valid=n, note="VICS 1.3"))
    p = out / f"{name}.vics20.json"
    _write(p, _vics2(entries))
    infos.append(ListInfo(str(p), "vics", n_valid=n, note="VICS 2.0"))
    p = out / f"{name}.nsrl.txt"
    _write(p, _csv_text([NSRL_HEADER, *(_nsrl_row(e) for e in entries)], quote_all=True, crlf=True))
    infos.append(ListInfo(str(p), "nsrl", n_valid=n, note="NSRL RDS 2.x NSRLFile.txt layout"))
    if malformed and n >= 3:
        infos.extend(_write_malformed(out / "malformed", entries, name, case_number))
    return infos


def _bad_hex(h: str) -> str:
    return h[:-2] + "zz"


def _write_malformed(
    out: Path, entries: Sequence[BankListEntry], name: str, case_number: str
) -> list[ListInfo]:
    out.mkdir(parents=True, exist_ok=True)
    a, b, c = entries[0], entries[1], entries[2]
    infos: list[ListInfo] = []

    # CSV: BOM, CRLF, a comment and a blank line, then one fault per line.
    lines: list[tuple[list[object] | str, str | None]] = [
        (list(CSV_HEADER), None),
        ("# exported by a synthetic tool", None),
        (_csv_row(a), None),
        ("", None),
        (_csv_row(replace(b, md5=_bad_hex(b.md5))), "hex"),
        (_csv_row(replace(b, sha1=b.sha1[:-1])), "digits"),
        (_csv_row(replace(b, pdq=(b.pdq or "0" * 64) + "00")), "digits"),
        (_csv_row(c), None),
        (_csv_row(c), "repeat"),
        (_csv_row(replace(c, category=c.category % 5 + 1)), "duplicate"),
    ]
    p, rejections, valid = out / f"{name}.bad.csv", [], 0
    text = ""
    for lineno, (row, reason) in enumerate(lines, start=1):
        text += (row if isinstance(row, str) else _csv_text([row]).rstrip("\n")) + "\r\n"
        if reason is not None and reason != "repeat":
            rejections.append((lineno, reason))
        elif reason is None and not isinstance(row, str) and lineno > 1:
            valid += 1
    _write(p, text, bom=True)
    infos.append(ListInfo(str(p), "csv", n_valid=valid, malformed=True, expected_rejections=rejections,
                          expected_duplicates=1, note="BOM, CRLF, comment, blank line"))

    # hashlist (md5): BOM, CRLF, comments, blank lines, upper case (legal), faults.
    hl: list[tuple[str, str | None]] = [
        ("# md5 list", None),
        (a.md5.upper(), None),
        ("", None),
        (_bad_hex(b.md5), "hex"),
        (b.md5[:30], "digits"),
        (c.md5, None),
        (c.md5, "repeat"),
        ("   ", None),
    ]
    p = out / f"{name}.bad.md5.txt"
    _write(p, "".join(line + "\r\n" for line, _ in hl), bom=True)
    infos.append(ListInfo(str(p), "hashlist", algorithm="md5", n_valid=2, malformed=True,
                          expected_rejections=[(i, r) for i, (_, r) in enumerate(hl, 1) if r and r != "repeat"],
                          expected_duplicates=1, note="BOM, CRLF, comments, blank lines, upper-case hex"))

    # pdq: quality out of range, bad hex, wrong length, duplicate.
    pa, pb, pc = (e.pdq or "f" * 64 for e in (a, b, c))
    pl: list[tuple[str, str | None]] = [
        (f"{pa},100", None),
        (f"{pb},101", "quality"),
        (f"{_bad_hex(pb)},90", "hex"),
        (f"{pb[:60]},90", "digits"),
        ("", None),
        (f"{pc},0", None),
        (f"{pc},0", "repeat"),
    ]
    p = out / f"{name}.bad.pdq.txt"
    _write(p, "".join(line + "\n" for line, _ in pl))
    infos.append(ListInfo(str(p), "pdq", algorithm="pdq", n_valid=2, malformed=True,
                          expected_rejections=[(i, r) for i, (_, r) in enumerate(pl, 1) if r and r != "repeat"],
                          expected_duplicates=1,
                          note="quality 0 is legal (flagged unreliable), 101 is not"))

    # NSRL: a bad SHA-1 and a short MD5.
    rows: list[list[object]] = [list(NSRL_HEADER), _nsrl_row(a), _nsrl_row(replace(b, sha1=_bad_hex(b.sha1))),
            _nsrl_row(replace(c, md5=c.md5[:31]))]
    p = out / f"{name}.bad.nsrl.txt"
    _write(p, _csv_text(rows, quote_all=True, crlf=True))
    infos.append(ListInfo(str(p), "nsrl", n_valid=1, malformed=True,
                          expected_rejections=[(3, "hex"), (4, "digits")]))

    # VICS 1.3: Media 2 has a bad MD5, Media 3 a short SHA1, Media 5 repeats Media 4 with another category.
    media = [
        _vics_media(a, False),
        _vics_media(replace(b, md5=_bad_hex(b.md5)), False),
        _vics_media(replace(b, sha1=b.sha1[:39]), False),
        _vics_media(c, False),
        _vics_media(replace(c, category=c.category % 5 + 1), False),
    ]
    p = out / f"{name}.bad.vics13.json"
    _write(p, _vics1([], case_number, media), bom=True)
    infos.append(ListInfo(str(p), "vics", n_valid=2, malformed=True,
                          expected_rejections=[(2, "hex"), (3, "digits"), (5, "duplicate")],
                          note="line = 1-based Media position; file has a BOM"))
    return infos
