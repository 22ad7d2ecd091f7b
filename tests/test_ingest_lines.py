"""Line-based list parsers (hashlist, pdq, csv, nsrl) and format detection: exact lines and reasons."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from index.categories import VIC
from index.errors import HashListFormatError
from index.ingest import csv as csv_list
from index.ingest import fastlines, hashlist, nsrl, pdq
from index.ingest.detect import detect_format
from index.ingest.records import Batch, ParsedRecord, ParseOptions, RejectedRecord, batched

MD5 = "0123456789abcdef0123456789abcdef"
SHA1 = "0123456789abcdef0123456789abcdef01234567"
PDQ = "f" * 16 + "0" * 48
OPTS = ParseOptions()


def write(tmp_path: Path, name: str, data: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def split(records: list) -> tuple[list[ParsedRecord], list[tuple[int, str]]]:
    good = [r for r in records if isinstance(r, ParsedRecord)]
    bad = [(r.line, r.reason) for r in records if isinstance(r, RejectedRecord)]
    return good, bad


def test_hashlist_bom_crlf_comments_and_exact_lines(tmp_path: Path) -> None:
    text = f"\ufeff# list v1\r\n{MD5.upper()}\r\n\r\n{SHA1}\r\nxyz{MD5[3:]}\r\n{MD5[:31]}\r\n"
    good, bad = split(list(hashlist.parse(write(tmp_path, "h.txt", text), OPTS)))
    assert [(r.line, r.hashes) for r in good] == [(2, (("md5", MD5),)), (4, (("sha1", SHA1),))]
    assert bad == [(5, "md5: not hexadecimal"), (6, "no hash algorithm has 31 hex digits")]


def test_hashlist_ambiguous_length_needs_algo(tmp_path: Path) -> None:
    path = write(tmp_path, "h.txt", f"{MD5}\n\n{PDQ}\n")
    with pytest.raises(HashListFormatError) as e:
        list(hashlist.parse(path, OPTS))
    assert e.value.line == 3 and "--algo" in e.value.reason
    good, bad = split(list(hashlist.parse(path, ParseOptions(algo="pdq"))))
    assert [r.hashes for r in good] == [(("pdq", PDQ),)]
    assert bad == [(1, "pdq: expected 64 hex digits, got 32")]


def test_hashlist_invalid_utf8_and_two_tokens(tmp_path: Path) -> None:
    path = write(tmp_path, "h.txt", b"\xff\xfe\n" + f"{MD5} {MD5}\n{MD5}\n".encode())
    good, bad = split(list(hashlist.parse(path, OPTS)))
    assert [r.line for r in good] == [3]
    assert bad == [(1, "not valid UTF-8"), (2, "expected one hash per line")]


def test_pdq_reference_lines(tmp_path: Path) -> None:
    text = f"{PDQ},100,img1.jpg\n{PDQ.upper()},49\n# c\n{PDQ},101\n{PDQ[:-1]},50\n{PDQ},x\n{PDQ}\n"
    good, bad = split(list(pdq.parse(write(tmp_path, "p.txt", text), OPTS)))
    assert [(r.line, r.quality, r.hashes[0][1]) for r in good] == [
        (1, 100, PDQ),
        (2, 49, PDQ),
        (7, None, PDQ),
    ]
    assert bad == [
        (4, "quality '101' out of range 0-100"),
        (5, "pdq: expected 64 hex digits, got 63"),
        (6, "quality 'x' is not an integer"),
    ]


def test_csv_several_hashes_labels_and_errors(tmp_path: Path) -> None:
    text = (
        "\ufeff# exported 2024\r\n"
        "MediaID,MD5,SHA-1,PDQ,Quality,Category,Series,VIC_Category,caid category\r\n"
        "\r\n"
        f"m1,{MD5},{SHA1},{PDQ},90,abuse,s1,1,A\r\n"
        f"m2,,,{PDQ},101,,,,\r\n"
        f"m3,{MD5}0,,,,,,,\r\n"
        f'm4,"{MD5}",,,,"a, quoted label",,6,\r\n'
        f"m5,{MD5},,,,,,,D\r\n"
        "m6,,,,,,,,\r\n"
        f"m7,{MD5}\r\n"
    )
    good, bad = split(list(csv_list.parse(write(tmp_path, "l.csv", text), OPTS)))
    assert len(good) == 1
    r = good[0]
    assert (r.line, r.entry_id, r.quality, r.category, r.series) == (4, "m1", 90, "abuse", "s1")
    assert r.hashes == (("md5", MD5), ("sha1", SHA1), ("pdq", PDQ))
    assert (r.vic_category, r.caid_category) == (1, "A")
    assert bad == [
        (5, "quality '101' out of range 0-100"),
        (6, "md5: expected 32 hex digits, got 33"),
        (7, "vic_category '6' not in 0-5"),
        (8, "caid_category 'D' not one of A, B, C"),
        (9, "no hash in row"),
        (10, "expected 9 fields, got 2"),
    ]


def test_csv_unknown_column_is_a_rejection_on_the_header_line(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", f"# c\nmd5,notes\n{MD5},hello\n")
    good, bad = split(list(csv_list.parse(path, OPTS)))
    assert len(bad) == 1 and bad[0][0] == 2 and bad[0][1].startswith("unknown column 'notes': accepted")
    assert [r.hashes for r in good] == [(("md5", MD5),)]


def test_csv_tsv_and_scheme_codes(tmp_path: Path) -> None:
    path = write(tmp_path, "l.tsv", f"md5\tcategory\n{MD5}\t1\n{MD5}\t9\n")
    good, bad = split(list(csv_list.parse(path, ParseOptions(scheme=VIC))))
    assert [(r.category, r.vic_category) for r in good] == [(VIC.codes["1"].label, 1)]
    assert bad == [(3, "unknown category '9' in scheme vic")]


def test_csv_multiline_quoted_field_reports_start_line(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", f'md5,category\n"{MD5}","two\nlines"\nab,x\n')
    good, bad = split(list(csv_list.parse(path, OPTS)))
    assert [(r.line, r.category) for r in good] == [(2, "two\nlines")]
    assert bad == [(4, "md5: expected 32 hex digits, got 2")]


@pytest.mark.parametrize(
    "text, reason",
    [("", "no header row"), ("# only\n\n", "no header row"), ("a,b\n1,2\n", "no hash column")],
)
def test_csv_unreadable_files_are_format_errors(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(HashListFormatError, match=reason):
        list(csv_list.parse(write(tmp_path, "l.csv", text), OPTS))


def test_nsrl_rds_quoted_known_good(tmp_path: Path) -> None:
    text = (
        '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'
        f'"{SHA1.upper()}","{MD5.upper()}","0A0B0C0D","a, b.dll",1024,1,"WIN",""\r\n'
        f'"{SHA1.upper()}","{MD5.upper()}","0A0B0C0D","a, b.dll",1024,2,"WIN",""\r\n'
        f'"{SHA1[:-2]}","{MD5}","0","x",1,1,"WIN",""\r\n'
    )
    good, bad = split(list(nsrl.parse(write(tmp_path, "NSRLFile.txt", text), OPTS)))
    assert [(r.line, r.hashes, r.known_good) for r in good] == [
        (2, (("sha1", SHA1), ("md5", MD5)), True),
        (3, (("sha1", SHA1), ("md5", MD5)), True),
    ]
    assert bad == [(4, "sha1: expected 40 hex digits, got 38")]


@pytest.mark.parametrize(
    "text, fmt",
    [
        (f"\ufeff# c\n{MD5}\n", "hashlist"),
        (f"{PDQ},100,a.jpg\n", "pdq"),
        (f"id,md5\n1,{MD5}\n", "csv"),
        ('"SHA-1","MD5","FileName","ProductCode"\n', "nsrl"),
        ('\ufeff  {"value": []}', "vics"),
    ],
)
def test_detect(tmp_path: Path, text: str, fmt: str) -> None:
    assert detect_format(write(tmp_path, "f", text)) == fmt


def test_detect_refuses_what_it_cannot_tell(tmp_path: Path) -> None:
    with pytest.raises(HashListFormatError):
        detect_format(write(tmp_path, "f", "hello world\n"))
    with pytest.raises(HashListFormatError):
        detect_format(write(tmp_path, "g", "# only a comment\n"))


def _staged(batches: list[Batch]) -> tuple[Counter[tuple[object, ...]], int]:
    """Each staged row as (line, algorithm, hash, id or None, labels), whatever its shape."""
    rows: Counter[tuple[object, ...]] = Counter()
    for b in batches:
        assert not b.rejected
        for (algo, labels, shape), group in b.groups.items():
            assert shape in ("line", "keyed")  # "line": the hash is its own id
            rows.update((r[0], algo, r[1], r[2] if shape == "keyed" else None, labels)
                        for r in group)
    return rows, sum(b.records for b in batches)


@pytest.mark.parametrize("header", ["id,md5,category", "md5,series", "id,sha1,md5,known_good"])
def test_csv_bulk_blocks_with_one_label_column_stage_what_the_reference_does(
    tmp_path: Path, header: str
) -> None:
    values = {"category": ["cam", "", " cgi ", "cam"], "series": ["s1", "s 2", "", "s1"],
              "known_good": ["true", "0", "", "yes"]}[header.split(",")[-1]]
    lines = [header]
    for i in range(40):
        md5 = f"{i:032x}"
        cells = {"id": f"m{i}", "md5": md5.upper() if i % 2 else md5, "sha1": f"{i:040x}"}
        lines.append(",".join([cells[c] for c in header.split(",")[:-1]] + [values[i % 4]]))
    path = write(tmp_path, "one-label.csv", "\n".join(lines) + "\n")
    options = ParseOptions(category="default")
    fast = _staged(list(csv_list.batches(path, options)))
    assert fast == _staged(list(batched(csv_list.parse(path, options))))
    assert fast[1] == 40


@given(data=st.binary(max_size=300).map(lambda b: b.replace(b"x", b"\n")),
       block=st.sampled_from([1, 2, 7, 64]))
def test_whole_line_blocks_cut_as_readlines_does(data: bytes, block: int) -> None:
    """Every block ends after a b"\\n" and together they are the lines `readlines` gives
    (a last line without a line ending gets one), whatever the block size."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fastlines, "BLOCK", block)
        blocks = list(fastlines.whole_line_blocks(io.BytesIO(data)))
    assert all(b.endswith(b"\n") and b for b in blocks)
    expected = io.BytesIO(data).readlines()
    if expected and not expected[-1].endswith(b"\n"):
        expected[-1] += b"\n"
    assert [line for b in blocks for line in fastlines.block_lines(b)] == expected


@given(st.lists(st.text(st.characters(blacklist_characters="\n"), max_size=4), max_size=6))
def test_plain_ids_is_the_regex(cells: list[str]) -> None:
    """The bytes check of ASCII ids says what `_PLAIN_ID` says (Unicode spaces included)."""
    expected = csv_list._PLAIN_ID.fullmatch("\n".join(cells)) is not None
    assert csv_list.plain_ids(cells) == expected
    assert csv_list.plain_ids([*cells, "id\x1c"]) is False  # a separator `\\s` matches
