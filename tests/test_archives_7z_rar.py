"""7z and RAR are read like zip and tar: every member a row, the same limits, hostile cases.

7z fixtures come from py7zr and RAR fixtures from `synthetic_fixtures.rar` (stored RAR 4,
written from the format's structures: no RAR writer exists here); the reader is libarchive.
"""

from __future__ import annotations

import hashlib
import io
import time
import tracemalloc
import zipfile

import pytest

from synthetic_fixtures.rar import MARKER, MARKER5, RarMember, rar4_stored, rar5_stored
from synthetic_fixtures.sevenzip import make_7z
from triage.archives import archive_format, iter_archive
from triage.archives_7z_rar import ENCRYPTED
from triage.identity import fs_location
from triage.limits import MiB, WalkItem, WalkLimits

JPEG_LIKE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 12  # sniffs as a JPEG; content is noise
TEXT = b"synthetic text member\n" * 40


RAR = {"rar4": rar4_stored, "rar5": rar5_stored}


def rows(data: bytes, label: str = "ev/x", limits: WalkLimits | None = None) -> list[WalkItem]:
    return list(iter_archive(io.BytesIO(data), label, len(data), limits or WalkLimits(),
                             location=fs_location(b"/", b"/" + label.encode())))


def md5(data: bytes | None) -> str | None:
    return None if data is None else hashlib.md5(data).hexdigest()


def table(items: list[WalkItem]) -> list[tuple[str, str, str | None, bool]]:
    return [(i.path, i.status, i.reason, i.archive_error) for i in items]


def test_signatures_name_the_formats() -> None:
    assert archive_format(make_7z({"a": b"x"})[:512]) == "7z"
    assert archive_format(rar4_stored([RarMember("a", b"x")])[:512]) == "rar"
    assert archive_format(rar5_stored([RarMember("a", b"x")])[:512]) == "rar"


@pytest.mark.parametrize("fmt", ["7z", "rar4", "rar5"])
def test_members_are_rows_with_their_exact_bytes(fmt: str) -> None:
    members = {"pics/a.jpg": JPEG_LIKE, "notes/t.txt": TEXT}
    data = (make_7z(members) if fmt == "7z"
            else RAR[fmt]([RarMember(n, d) for n, d in members.items()]))
    got = rows(data)
    assert [(i.path, i.kind, i.status, i.size, md5(i.data)) for i in got] == [
        (f"ev/x!/{n}", "archive_member", "pending", len(d), md5(d)) for n, d in members.items()
    ]


def test_archives_nest_across_formats() -> None:
    inner_zip = io.BytesIO()
    with zipfile.ZipFile(inner_zip, "w") as zf:
        zf.writestr("deep.jpg", JPEG_LIKE)
    inner_rar = rar4_stored([RarMember("in.zip", inner_zip.getvalue())])
    got = rows(make_7z({"a.rar": inner_rar}))
    assert [i.path for i in got] == ["ev/x!/a.rar", "ev/x!/a.rar!/in.zip",
                                     "ev/x!/a.rar!/in.zip!/deep.jpg"]
    assert md5(got[-1].data) == md5(JPEG_LIKE)


def test_depth_limit_applies_to_7z() -> None:
    data = make_7z({"in.7z": make_7z({"a.txt": TEXT})})
    got = rows(data, limits=WalkLimits(max_archive_depth=1))
    assert table(got) == [
        ("ev/x!/in.7z", "pending", None, False),
        ("ev/x!/in.7z!/", "skipped", "archive depth limit 1 reached; members not read", True),
    ]


def test_encrypted_7z_member_is_an_attention_row() -> None:
    got = rows(make_7z({"secret.jpg": JPEG_LIKE}, password="synthetic"))
    assert table(got) == [("ev/x!/secret.jpg", "error", ENCRYPTED, True)]
    assert got[0].data is None


def test_7z_with_encrypted_headers_is_an_attention_row() -> None:
    got = rows(make_7z({"secret.jpg": JPEG_LIKE}, password="synthetic", header_encryption=True))
    assert table(got) == [("ev/x!/", "error", f"{ENCRYPTED} (archive headers are encrypted)",
                           True)]


@pytest.mark.parametrize("rar", ["rar4", "rar5"])
def test_encrypted_rar_member_is_an_attention_row_and_its_neighbour_is_read(rar: str) -> None:
    data = RAR[rar]([RarMember("secret.jpg", b"\x00" * 300, encrypted=True),
                        RarMember("plain.txt", TEXT)])
    got = rows(data)
    assert table(got) == [("ev/x!/secret.jpg", "error", ENCRYPTED, True),
                          ("ev/x!/plain.txt", "pending", None, False)]
    assert got[1].data == TEXT


def test_7z_bomb_is_refused_by_its_declared_size_and_its_neighbour_still_read() -> None:
    data = make_7z({"zeros.bin": b"\x00" * (48 * MiB), "after.jpg": JPEG_LIKE})
    assert len(data) < 64 * 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    got = rows(data)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [(i.path, i.status, i.archive_error) for i in got] == [
        ("ev/x!/zeros.bin", "error", True), ("ev/x!/after.jpg", "pending", False)]
    assert got[0].reason is not None and got[0].reason.startswith("expansion ratio")
    assert got[1].data == JPEG_LIKE
    assert peak < 16 * MiB  # the refused member is decompressed in blocks and dropped
    assert elapsed < 30


def test_7z_total_limit_stops_the_archive() -> None:
    data = make_7z({f"m{i}.bin": bytes([i]) * (2 * MiB) for i in range(4)})
    limits = WalkLimits(max_archive_total_bytes=3 * MiB, max_expansion_ratio=1e9)
    got = rows(data, limits=limits)
    assert got[0].status == "pending" and len(got[0].data or b"") == 2 * MiB
    assert all(i.status == "error" and i.archive_error for i in got[1:])
    assert "archive expansion exceeds the 3 MiB limit" in (got[1].reason or "")


@pytest.mark.parametrize("rar", ["rar4", "rar5"])
def test_rar_bomb_by_header_is_refused_before_reading(rar: str) -> None:
    data = RAR[rar]([RarMember("huge.bin", b"\x00" * 1000, declared_size=8 << 30),
                        RarMember("big.bin", b"\x00" * 1000, declared_size=200 * MiB),
                        RarMember("after.txt", TEXT)])
    got = rows(data)
    assert table(got)[0] == ("ev/x!/huge.bin", "error", "member exceeds the 256 MiB member "
                             f"limit (declares {8 << 30} bytes); not read", True)
    assert got[1].status == "error" and (got[1].reason or "").startswith("expansion ratio")
    assert table(got)[2] == ("ev/x!/after.txt", "pending", None, False)


@pytest.mark.parametrize("rar", ["rar4", "rar5"])
def test_rar_member_longer_than_its_header_says_is_an_error(rar: str) -> None:
    data = RAR[rar]([RarMember("liar.bin", b"\x01" * 5000, declared_size=10),
                        RarMember("after.txt", TEXT)])
    assert table(rows(data)) == [
        ("ev/x!/liar.bin", "error", "member larger than its declared size (lying header)", True),
        ("ev/x!/after.txt", "pending", None, False),
    ]


@pytest.mark.parametrize("fmt", ["7z", "rar4", "rar5"])
def test_member_limit(fmt: str) -> None:
    members = {f"m{i:02}.txt": TEXT for i in range(8)}
    data = (make_7z(members) if fmt == "7z"
            else RAR[fmt]([RarMember(n, d) for n, d in members.items()]))
    got = rows(data, limits=WalkLimits(max_members=5))
    assert [i.status for i in got] == ["pending"] * 5 + ["error"]
    assert table(got)[-1] == ("ev/x!/", "error", "more than 5 members; the rest were not read",
                              True)


@pytest.mark.parametrize("rar", ["rar4", "rar5"])
def test_truncated_rar_keeps_the_members_before_the_damage(rar: str) -> None:
    data = RAR[rar]([RarMember("a.txt", TEXT), RarMember("b.jpg", JPEG_LIKE)])
    got = rows(data[: len(data) - 1000])
    assert table(got)[0] == ("ev/x!/a.txt", "pending", None, False)
    assert got[0].data == TEXT
    assert all(i.status == "error" and i.archive_error for i in got[1:])
    assert got[-1].path == "ev/x!/" and (got[-1].reason or "").startswith("corrupt archive")


@pytest.mark.parametrize("cut", [12, 40, 100])
def test_truncated_7z_is_a_corrupt_archive_row(cut: int) -> None:
    data = make_7z({"a.txt": TEXT})
    got = rows(data[:cut])
    assert got[-1].path == "ev/x!/" and got[-1].status == "error" and got[-1].archive_error
    assert (got[-1].reason or "").startswith("corrupt archive: ")


@pytest.mark.parametrize("rar", ["rar4", "rar5"])
def test_hostile_names_are_labels_only(rar: str) -> None:
    data = RAR[rar]([RarMember("../../etc/passwd", TEXT), RarMember("/abs/x.jpg", JPEG_LIKE)])
    got = rows(data)
    assert [i.path for i in got] == ["ev/x!/../../etc/passwd", "ev/x!//abs/x.jpg"]
    assert all("path escapes archive root" in (i.reason or "") for i in got)


def test_a_repeated_rar_name_is_an_attention_row_not_a_silent_gap() -> None:
    data = rar4_stored([RarMember("a.txt", TEXT), RarMember("a.txt", JPEG_LIKE),
                        RarMember("b.txt", TEXT)])
    assert table(rows(data)) == [
        ("ev/x!/a.txt", "pending", None, False),
        ("ev/x!/(unnamed member)", "error",
         "member without a name (a repeated RAR name): not examined", True),
        ("ev/x!/b.txt", "pending", None, False),
    ]


def test_rar_writers_markers() -> None:
    assert rar4_stored([])[:7] == MARKER and rar5_stored([])[:8] == MARKER5


def test_rar5_with_encrypted_headers_is_an_attention_row() -> None:
    data = rar5_stored([RarMember("secret.jpg", JPEG_LIKE)], encrypt_headers=True)
    assert table(rows(data)) == [("ev/x!/", "error", f"{ENCRYPTED} (archive headers are encrypted)",
                                  True)]
