"""VICS JSON: 1.x and 2.0, Cases and Media shapes, schemes, exact start lines, streaming errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.categories import CAID, VIC, load_scheme
from index.errors import HashListFormatError
from index.ingest import vics
from index.ingest.records import ParsedRecord, ParseOptions, RejectedRecord

MD5 = "0123456789ABCDEF0123456789ABCDEF"
SHA1 = "0123456789ABCDEF0123456789ABCDEF01234567"
PDQ = "ab" * 32
V1 = "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Cases"
V2 = "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/{}/$metadata#{}"


def write(tmp_path: Path, doc: object | str, bom: bool = False, indent: int | None = 2) -> str:
    text = doc if isinstance(doc, str) else json.dumps(doc, indent=indent)
    path = tmp_path / "v.json"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return str(path)


def media(i: int, **extra: object) -> dict[str, object]:
    return {"MediaID": i, "Category": 1, "MD5": MD5, **extra}


def parse(path: str, **opts: object) -> tuple[list[ParsedRecord], list[RejectedRecord]]:
    records = list(vics.parse(path, ParseOptions(**opts)))  # type: ignore[arg-type]
    good = [r for r in records if isinstance(r, ParsedRecord)]
    return good, [r for r in records if isinstance(r, RejectedRecord)]


def test_v1_cases_with_media_bom_crlf_exact_lines(tmp_path: Path) -> None:
    text = (
        "{\r\n"
        f'  "odata.metadata": "{V1}",\r\n'
        '  "value": [\r\n'
        '    {"CaseID": 1, "CaseNumber": "x",\r\n'
        '     "Media": [\r\n'
        "      {\r\n"
        f'        "MediaID": 7, "Category": 1, "MD5": "{MD5}", "SHA1": "{SHA1}",\r\n'
        '        "IsPrecategorized": "true", "Series": "s-9", "MediaSize": 1234,\r\n'
        f'        "AlternativeHashes": [{{"HashName": "PDQ", "HashValue": "{PDQ}"}},\r\n'
        '                              {"HashName": "PhotoDNA", "HashValue": "AAAA"}]\r\n'
        "      },\r\n"
        f'      {{"MediaID": 8, "Category": 9, "MD5": "{MD5}"}}\r\n'
        "     ]},\r\n"
        f'    {{"CaseID": 2, "Media": [{{"MediaID": "9", "Category": "2", "SHA1": "{SHA1[:-1]}"}}]}}\r\n'
        "  ]\r\n"
        "}\r\n"
    )
    good, bad = parse(write(tmp_path, text, bom=True))
    assert len(good) == 1
    r = good[0]
    assert (r.line, r.item, r.entry_id, r.series) == (6, 1, "7", "s-9")
    assert r.hashes == (("md5", MD5.lower()), ("sha1", SHA1.lower()), ("pdq", PDQ))
    assert (r.category, r.vic_category) == (VIC.codes["1"].label, 1)
    assert r.notes == ("ignored alternative hash 'PhotoDNA'",)
    assert [(b.line, b.item, b.reason) for b in bad] == [
        (12, 2, "unknown category 9 in scheme vic"),
        (14, 3, "sha1: expected 40 hex digits, got 39"),
    ]


@pytest.mark.parametrize("region, scheme", [("US", VIC), ("Default", VIC), ("UK", CAID)])
def test_v2_media_shape_scheme_from_context(tmp_path: Path, region: str, scheme: object) -> None:
    doc = {"@odata.context": V2.format(region, "Media"), "value": [media(1), media(2, Category=3)]}
    good, bad = parse(write(tmp_path, doc))
    assert not bad
    assert [r.category for r in good] == [scheme.codes["1"].label, scheme.codes["3"].label]  # type: ignore[attr-defined]
    assert [r.line for r in good] == [4, 9]
    if region == "UK":
        assert [r.caid_category for r in good] == ["A", "C"]


def test_v2_cases_shape_and_explicit_scheme_wins(tmp_path: Path) -> None:
    doc = {
        "@odata.context": V2.format("US", "Cases"),
        "value": [{"CaseID": 1, "Media": [media(1)]}],
    }
    good, _ = parse(write(tmp_path, doc), scheme=CAID)
    assert good[0].caid_category == "A"


def test_minified_file_reports_line_1_and_item_numbers(tmp_path: Path) -> None:
    doc = {"value": [media(1), media(2, MD5="zz"), media(3)]}
    good, bad = parse(write(tmp_path, doc, indent=None))
    assert [(r.line, r.item) for r in good] == [(1, 1), (1, 3)]
    assert [(b.line, b.item) for b in bad] == [(1, 2)]


@pytest.mark.parametrize(
    "value, ok", [("true", True), ("False", True), (True, True), (0, True), ("maybe", False)]
)
def test_string_booleans(tmp_path: Path, value: object, ok: bool) -> None:
    good, bad = parse(write(tmp_path, {"value": [media(1, IsPrecategorized=value)]}))
    assert (len(good), len(bad)) == ((1, 0) if ok else (0, 1))


@pytest.mark.parametrize(
    "item, reason",
    [
        ({"MediaID": 1, "Category": 1}, "Media record has no usable hash"),
        ({"MediaID": 1, "MD5": True}, "md5: expected text, got True"),
        ({"MediaID": 1, "MD5": MD5, "AlternativeHashes": {}}, "AlternativeHashes is not a list"),
        (
            {"MD5": MD5, "AlternativeHashes": [{"HashName": "PDQ", "HashValue": "ab" * 16}]},
            "pdq: expected 64 hex digits, got 32",
        ),
        (
            {"MD5": MD5, "AlternativeHashes": [{"HashName": "MD5", "HashValue": "0" * 32}]},
            "two different md5 hashes",
        ),
        (
            {
                "MD5": MD5,
                "AlternativeHashes": [{"HashName": "pdq", "HashValue": PDQ, "Quality": 101}],
            },
            "quality 101 out of range 0-100",
        ),
        ("just a string", "value item is not an object"),
    ],
)
def test_bad_media_records(tmp_path: Path, item: object, reason: str) -> None:
    good, bad = parse(write(tmp_path, {"value": [item]}))
    assert not good
    assert [b.reason for b in bad] == [reason]


def test_alternative_pdq_quality_kept(tmp_path: Path) -> None:
    alt = [{"HashName": "PDQ", "HashValue": PDQ, "Quality": 87}]
    good, _ = parse(write(tmp_path, {"value": [media(1, AlternativeHashes=alt)]}))
    assert good[0].quality == 87


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ('{"value": [\n{"MD5": "x",\n', 2, "invalid JSON"),
        ('{"value": [\n{"MD5" "x"}]}', 2, "invalid JSON"),
        ("[1, 2]", 1, "top level is not an object"),
        ('{"odata.metadata": "x"}', None, "no 'value' array"),
        ("", 1, "invalid JSON"),
    ],
)
def test_unreadable_documents_are_format_errors(
    tmp_path: Path, text: str, line: int | None, reason: str
) -> None:
    with pytest.raises(HashListFormatError, match=reason) as e:
        parse(write(tmp_path, text))
    assert e.value.line == line


def test_scheme_file_maps_codes(tmp_path: Path) -> None:
    scheme_path = tmp_path / "scheme.json"
    scheme_path.write_text(
        json.dumps(
            {"name": "partner", "categories": {"7": {"label": "partner-7", "vic_category": 1}}}
        )
    )
    scheme = load_scheme(str(scheme_path))
    good, bad = parse(
        write(tmp_path, {"value": [media(1, Category=7), media(2, Category=1)]}), scheme=scheme
    )
    assert [(r.category, r.vic_category) for r in good] == [("partner-7", 1)]
    assert [b.reason for b in bad] == ["unknown category 1 in scheme partner"]


def test_context_scheme() -> None:
    assert vics.context_scheme(V1) == ("1.3", "vic")
    assert vics.context_scheme(V2.format("UK", "Cases")) == ("2.0", "caid")
    assert vics.context_scheme("nonsense") == (None, "vic")
