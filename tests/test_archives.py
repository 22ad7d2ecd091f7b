"""Archives are read in memory with bounds: formats, nesting, bombs, lying headers, hostile names.

Every archive here is generated inside the test from seeded synthetic bytes.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import struct
import tarfile
import tracemalloc
import zipfile
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.archives import archive_format, iter_archive
from triage.identity import fs_location
from triage.limits import MiB, WalkItem, WalkLimits

RNG = random.Random(7)
PAYLOAD_A = bytes(RNG.getrandbits(8) for _ in range(3000))
PAYLOAD_B = b"synthetic text member\n" * 50


def rows(data: bytes, label: str = "ev/x", limits: WalkLimits | None = None) -> list[WalkItem]:
    loc = fs_location(b"/", b"/" + label.encode("utf-8", "surrogateescape"))
    return list(iter_archive(io.BytesIO(data), label, len(data), limits or WalkLimits(),
                             location=loc))


def summary(items: list[WalkItem]) -> list[tuple[str, str, str | None]]:
    return [(i.path, i.status, i.reason) for i in items]


def make_zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def add_dir(data: bytes, kind: str) -> bytes:
    """Append a directory entry, which must not become a row."""
    if kind == "zip":
        buf = io.BytesIO(data)
        with zipfile.ZipFile(buf, "a") as zf:
            zf.writestr(zipfile.ZipInfo("dir/"), b"")
        return buf.getvalue()
    raise AssertionError(kind)


MEMBERS = {"a.bin": PAYLOAD_A, "dir/b.txt": PAYLOAD_B}


@pytest.mark.parametrize(
    ("fmt", "build"),
    [
        ("zip", lambda: add_dir(make_zip(MEMBERS), "zip")),
        ("zip", lambda: make_zip(MEMBERS, zipfile.ZIP_STORED)),
        ("zip", lambda: make_zip(MEMBERS, zipfile.ZIP_BZIP2)),
        ("zip", lambda: make_zip(MEMBERS, zipfile.ZIP_LZMA)),
        ("tar", lambda: make_tar(MEMBERS)),
        ("gzip", lambda: make_tar(MEMBERS, "w:gz")),
        ("bzip2", lambda: make_tar(MEMBERS, "w:bz2")),
        ("xz", lambda: make_tar(MEMBERS, "w:xz")),
    ],
)
def test_formats_yield_members_with_bytes(fmt: str, build) -> None:
    data = build()
    assert archive_format(data[:512]) == fmt
    got = rows(data)
    assert [(i.path, i.kind, i.status, i.data) for i in got] == [
        ("ev/x!/a.bin", "archive_member", "pending", PAYLOAD_A),
        ("ev/x!/dir/b.txt", "archive_member", "pending", PAYLOAD_B),
    ]
    assert all(i.size == len(i.data or b"") and i.mtime is not None for i in got)


def test_tar_directories_are_not_rows() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        f = tarfile.TarInfo("dir/f")
        f.size = 3
        tf.addfile(f, io.BytesIO(b"abc"))
    assert summary(rows(buf.getvalue())) == [("ev/x!/dir/f", "pending", None)]


@pytest.mark.parametrize(
    ("compress", "label", "member"),
    [
        (gzip.compress, "ev/photo.jpg.gz", "ev/photo.jpg.gz!/photo.jpg"),
        (bz2.compress, "ev/photo.jpg.bz2", "ev/photo.jpg.bz2!/photo.jpg"),
        (lzma.compress, "ev/photo.jpg.xz", "ev/photo.jpg.xz!/photo.jpg"),
        (gzip.compress, "ev/noext", "ev/noext!/noext"),
    ],
)
def test_single_file_streams(compress, label: str, member: str) -> None:
    got = rows(compress(PAYLOAD_A), label)
    assert [(i.path, i.data) for i in got] == [(member, PAYLOAD_A)]


def test_text_starting_like_bzip2_is_not_an_archive() -> None:
    assert archive_format(b"BZh is how this note starts") is None
    assert rows(b"BZh is how this note starts") == []


def test_not_an_archive_yields_nothing() -> None:
    assert rows(PAYLOAD_B) == []


def nested(depth_names: list[str], leaf: bytes) -> bytes:
    """Build e.g. zip(tar(zip(leaf))): the first name is the outermost container."""
    data = leaf
    inner_name = "leaf.bin"
    for kind in reversed(depth_names):
        if kind == "zip":
            data = make_zip({inner_name: data})
            inner_name = "inner.zip"
        else:
            data = make_tar({inner_name: data})
            inner_name = "inner.tar"
    return data


def test_nested_archives_recurse_until_depth_limit() -> None:
    data = nested(["zip", "tar", "zip"], PAYLOAD_A)
    got = rows(data, "ev/o.zip")
    assert summary(got) == [
        ("ev/o.zip!/inner.tar", "pending", None),
        ("ev/o.zip!/inner.tar!/inner.zip", "pending", None),
        ("ev/o.zip!/inner.tar!/inner.zip!/leaf.bin", "pending", None),
    ]
    assert got[-1].data == PAYLOAD_A
    limited = rows(data, "ev/o.zip", WalkLimits(max_archive_depth=2))
    assert summary(limited) == [
        ("ev/o.zip!/inner.tar", "pending", None),
        ("ev/o.zip!/inner.tar!/inner.zip", "pending", None),
        (
            "ev/o.zip!/inner.tar!/inner.zip!/",
            "skipped",
            "archive depth limit 2 reached; members not read",
        ),
    ]


def deflated_zeros_zip(n: int, name: str = "zeros.bin") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name, "w") as out:
            chunk = bytes(MiB)
            for _ in range(n // MiB):
                out.write(chunk)
    return buf.getvalue()


def peak_alloc(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    return deflated_zeros_zip(50 * MiB)


def test_zip_bomb_refused_from_declared_sizes(zip_bomb: bytes) -> None:
    got, peak = peak_alloc(lambda: rows(zip_bomb, "ev/bomb.zip"))
    assert len(zip_bomb) < 200_000
    assert [(i.path, i.status, i.archive_error, i.data) for i in got] == [
        ("ev/bomb.zip!/zeros.bin", "error", True, None)
    ]
    assert got[0].reason is not None and got[0].reason.startswith("expansion ratio ")
    assert got[0].reason.endswith(" exceeds 200")
    assert peak < 10 * MiB


def test_bomb_member_does_not_hide_its_neighbours(zip_bomb: bytes) -> None:
    """Refusing the whole archive for one bomb member would let a bomb hide real files."""
    buf = io.BytesIO(zip_bomb)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("photo.bin", PAYLOAD_A)
    got = rows(buf.getvalue(), "ev/mixed.zip")
    assert [(i.path, i.status) for i in got] == [
        ("ev/mixed.zip!/zeros.bin", "error"),
        ("ev/mixed.zip!/photo.bin", "pending"),
    ]
    assert got[1].data == PAYLOAD_A


def patch_zip_sizes(data: bytes, file_size: int) -> bytes:
    """Rewrite the uncompressed size in every local and central header (a lying header)."""
    out = bytearray(data)
    pos = 0
    while (pos := out.find(b"PK\x03\x04", pos)) != -1:
        struct.pack_into("<I", out, pos + 22, file_size)
        pos += 4
    pos = 0
    while (pos := out.find(b"PK\x01\x02", pos)) != -1:
        struct.pack_into("<I", out, pos + 24, file_size)
        pos += 4
    return bytes(out)


def test_lying_deflate_header_is_a_member_error(zip_bomb: bytes) -> None:
    liar = patch_zip_sizes(zip_bomb, 1000)
    got, peak = peak_alloc(lambda: rows(liar, "ev/liar.zip"))
    assert [(i.path, i.status, i.archive_error) for i in got] == [
        ("ev/liar.zip!/zeros.bin", "error", True)
    ]
    assert got[0].reason is not None and got[0].reason.startswith("corrupt member: Bad CRC-32")
    assert peak < 10 * MiB


def test_lying_bzip2_header_stops_at_declared_size() -> None:
    # bzip2 reaches ratios far beyond deflate's; zipfile alone would inflate it unbounded
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_BZIP2) as zf:
        with zf.open("zeros.bin", "w") as out:
            for _ in range(16):
                out.write(bytes(MiB))
    liar = patch_zip_sizes(buf.getvalue(), 10)
    assert len(liar) < 10_000
    got, peak = peak_alloc(lambda: rows(liar, "ev/liar.zip"))
    assert summary(got) == [
        ("ev/liar.zip!/zeros.bin", "error", "member larger than its declared size (lying header)")
    ]
    assert peak < 20 * MiB


def test_gzip_bomb_stopped_while_reading() -> None:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    parts = [comp.compress(bytes(MiB)) for _ in range(50)]
    assert_stream_bomb_stopped(b"".join(parts) + comp.flush(), "ev/bomb.gz")


def assert_stream_bomb_stopped(bomb: bytes, label: str) -> None:
    """A compressed stream of zeros is one error row, stopped by the expansion ratio while it
    is read (bounded memory), and by the total-expansion limit once the ratio is lifted."""
    got, peak = peak_alloc(lambda: rows(bomb, label))
    assert [(i.path, i.status, i.archive_error) for i in got] == [(f"{label}!/", "error", True)]
    assert got[0].reason is not None and "exceeds 200" in got[0].reason
    assert peak < 20 * MiB
    limits = WalkLimits(max_expansion_ratio=1e9, max_archive_total_bytes=4 * MiB)
    assert summary(rows(bomb, label, limits)) == [
        (f"{label}!/", "error", "archive expansion exceeds the 4 MiB limit")
    ]


def test_member_over_size_limit_is_an_error_for_attention_not_loaded() -> None:
    big = bytes(RNG.getrandbits(8) for _ in range(5000))
    limits = WalkLimits(max_member_bytes=4096)
    over = "member exceeds the 4096 bytes member limit (declares 5000 bytes); not read"
    for data in (make_zip({"big": big, "small": PAYLOAD_B[:100]}), make_tar({"big": big})):
        got = rows(data, "ev/a", limits)
        assert summary(got)[0] == ("ev/a!/big", "error", over)
        assert got[0].data is None and got[0].size == 5000 and got[0].archive_error
    assert summary(rows(gzip.compress(big), "ev/big.gz", limits)) == [
        ("ev/big.gz!/big", "error", "member exceeds the 4096 bytes member limit; not read")
    ]


def test_member_count_limit() -> None:
    limits = WalkLimits(max_members=3)
    tar = make_tar({f"m{i}": b"x" for i in range(5)})
    got = rows(tar, "ev/many.tar", limits)
    assert [i.path for i in got[:3]] == ["ev/many.tar!/m0", "ev/many.tar!/m1", "ev/many.tar!/m2"]
    assert summary(got[3:]) == [
        ("ev/many.tar!/", "error", "more than 3 members; the rest were not read")
    ]
    # zipfile would parse the whole central directory first, so a zip is refused up front
    zipped = make_zip({f"m{i}": b"x" for i in range(5)})
    refused = [("ev/many.zip!/", "error", "zip declares more than 3 members; not read")]
    assert summary(rows(zipped, "ev/many.zip", limits)) == refused
    # ... also when the end record lies about the count
    eocd = zipped.rfind(b"PK\x05\x06")
    liar = bytearray(zipped)
    struct.pack_into("<HH", liar, eocd + 8, 1, 1)
    assert summary(rows(bytes(liar), "ev/many.zip", limits)) == refused


def test_oversized_central_directory_is_refused() -> None:
    data = make_zip({f"member-{i:04d}": b"x" for i in range(20)})
    got = rows(data, "ev/cd.zip", WalkLimits(max_member_bytes=512))
    assert [(i.path, i.status) for i in got] == [("ev/cd.zip!/", "error")]
    assert got[0].reason is not None and "central directory" in got[0].reason


def test_escaping_member_names_stay_labels() -> None:
    members = {"../../x": b"1", "/etc/passwd": b"2", "ok/../../y": b"3", "fine": b"4"}
    note = "path escapes archive root (label only)"
    for data in (make_zip(members), make_tar(members)):
        got = {i.path: i.reason for i in rows(data, "ev/h")}
        assert got == {
            "ev/h!/../../x": note,
            "ev/h!//etc/passwd": note,
            "ev/h!/ok/../../y": note,
            "ev/h!/fine": None,
        }


def set_encrypted_flag(data: bytes, name: bytes) -> bytes:
    """Set general-purpose bit 0 (encrypted) for one member in both headers."""
    out = bytearray(data)
    for sig, flag_at, name_len_at, name_at in (
        (b"PK\x03\x04", 6, 26, 30),
        (b"PK\x01\x02", 8, 28, 46),
    ):
        pos = 0
        while (pos := out.find(sig, pos)) != -1:
            (n,) = struct.unpack_from("<H", out, pos + name_len_at)
            if bytes(out[pos + name_at : pos + name_at + n]) == name:
                (flags,) = struct.unpack_from("<H", out, pos + flag_at)
                struct.pack_into("<H", out, pos + flag_at, flags | 1)
            pos += 4
    return bytes(out)


def test_encrypted_member_is_an_error_the_investigator_sees() -> None:
    data = set_encrypted_flag(
        make_zip({"secret.jpg": PAYLOAD_A, "plain.txt": PAYLOAD_B}), b"secret.jpg"
    )
    got = rows(data, "ev/e.zip")
    assert [(i.path, i.status, i.reason, i.archive_error) for i in got] == [
        ("ev/e.zip!/secret.jpg", "error", "encrypted: not examined", True),
        ("ev/e.zip!/plain.txt", "pending", None, False),
    ]
    assert got[0].data is None and got[1].data == PAYLOAD_B


def test_truncated_zip_members_are_recovered_from_local_headers() -> None:
    data = make_zip({"a.bin": PAYLOAD_A, "b.txt": PAYLOAD_B})
    cd = data.find(b"PK\x01\x02")
    got = rows(data[:cd], "ev/t.zip")  # every member intact, the directory lost
    assert [(i.path, i.status, i.data) for i in got[:2]] == [
        ("ev/t.zip!/a.bin", "pending", PAYLOAD_A),
        ("ev/t.zip!/b.txt", "pending", PAYLOAD_B),
    ]
    assert summary(got[2:]) == [
        (
            "ev/t.zip!/",
            "error",
            "corrupt archive: File is not a zip file; 2 members read from local headers",
        )
    ]
    assert got[2].archive_error
    cut = rows(data[:1000], "ev/t.zip")  # inside a.bin's compressed bytes
    assert [(i.path, i.status, i.archive_error) for i in cut] == [
        ("ev/t.zip!/a.bin", "error", True),
        ("ev/t.zip!/", "error", True),
    ]
    assert cut[0].reason is not None and cut[0].reason.startswith("corrupt member: ")


def test_truncated_streamed_zip_stops_at_data_descriptor() -> None:
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.buf = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:  # type: ignore[override]
            self.buf += b
            return len(b)

    out = Unseekable()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:  # type: ignore[arg-type]
        zf.writestr("streamed.txt", PAYLOAD_B)
    data = bytes(out.buf)
    assert data[6] & 0x8  # sizes in a data descriptor after the member
    got = rows(data[: data.find(b"PK\x01\x02")], "ev/s.zip")
    assert summary(got) == [
        (
            "ev/s.zip!/",
            "error",
            "corrupt archive: File is not a zip file; 0 members read from local headers; "
            "sizes of the next member are not in its local header",
        )
    ]


def test_corrupt_zip_member_does_not_stop_the_rest() -> None:
    data = bytearray(make_zip({"a.bin": PAYLOAD_A, "b.txt": PAYLOAD_B}))
    data[30 + len("a.bin") + 100] ^= 0xFF  # inside a.bin's deflate data
    got = rows(bytes(data), "ev/c.zip")
    assert got[0].path == "ev/c.zip!/a.bin" and got[0].status == "error" and got[0].archive_error
    assert got[0].reason is not None and got[0].reason.startswith("corrupt member: ")
    assert (got[1].path, got[1].data) == ("ev/c.zip!/b.txt", PAYLOAD_B)


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (512 + 1000, "corrupt archive: unexpected end of data"),  # inside a.bin's data
        (512 + 3072, "corrupt archive: truncated at offset 3584"),  # after a.bin's padding
        (512 + 3072 + 100, "corrupt archive: truncated at offset 3584"),  # inside a header
    ],
)
def test_truncated_tar_keeps_readable_members(cut: int, reason: str) -> None:
    data = make_tar({"a.bin": PAYLOAD_A, "b.txt": PAYLOAD_B})
    got = rows(data[:cut], "ev/t.tar")
    expected_members = [] if cut < 512 + 3000 else [("ev/t.tar!/a.bin", "pending", None)]
    assert summary(got) == [*expected_members, ("ev/t.tar!/", "error", reason)]
    assert got[-1].archive_error


def test_garbage_after_tar_member_is_reported() -> None:
    data = make_tar({"a.bin": PAYLOAD_A})
    end = 512 + 3072
    garbage = data[:end] + b"\x01" * 512 + data[end:]
    assert summary(rows(garbage, "ev/g.tar"))[-1] == (
        "ev/g.tar!/",
        "error",
        "corrupt archive: invalid header at offset 3584",
    )


@pytest.mark.parametrize(
    ("mode", "kept"),
    [("w:gz", 2), ("w:xz", 2), ("w:bz2", 0)],  # bzip2 compresses in 900 kB blocks: all or none
)
def test_truncated_compressed_tar_keeps_members_before_the_cut(mode: str, kept: int) -> None:
    rng = random.Random(11)
    members = {f"m{i}.bin": rng.randbytes(20_000) for i in range(4)}
    data = make_tar(members, mode)
    got = rows(data[: int(len(data) * 0.7)], "ev/t.tgz")
    assert [(i.path, i.data) for i in got[:-1]] == [
        (f"ev/t.tgz!/m{i}.bin", members[f"m{i}.bin"]) for i in range(kept)
    ]
    assert summary(got[-1:]) == [
        (
            "ev/t.tgz!/",
            "error",
            "corrupt archive: Compressed file ended before the end-of-stream marker was reached",
        )
    ]
    assert got[-1].archive_error


def test_tar_links_and_devices_are_skipped_with_reasons() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, target in (
            ("sym", tarfile.SYMTYPE, "/etc/shadow"),
            ("hard", tarfile.LNKTYPE, "sym"),
            ("dev", tarfile.CHRTYPE, ""),
            ("blk", tarfile.BLKTYPE, ""),
            ("pipe", tarfile.FIFOTYPE, ""),
        ):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tf.addfile(info)
    got = rows(buf.getvalue(), "ev/l.tar")
    assert [(i.path, i.status, i.reason, i.link_target) for i in got] == [
        ("ev/l.tar!/sym", "skipped", "symlink member not followed", "/etc/shadow"),
        ("ev/l.tar!/hard", "skipped", "hardlink member not followed", "sym"),
        ("ev/l.tar!/dev", "skipped", "device member not read", None),
        ("ev/l.tar!/blk", "skipped", "device member not read", None),
        ("ev/l.tar!/pipe", "skipped", "fifo member not read", None),
    ]


def test_zip_symlink_member_is_skipped() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        zf.writestr(info, b"../../target")
    assert [(i.path, i.status, i.reason, i.link_target) for i in rows(buf.getvalue())] == [
        ("ev/x!/link", "skipped", "symlink member not followed", "../../target")
    ]


@pytest.mark.parametrize("magic", [b"7z\xbc\xaf'\x1c\x00\x04", b"Rar!\x1a\x07\x01\x00",
                                   b"Rar!\x1a\x07\x00", b"(\xb5/\xfd"])
def test_garbage_after_a_7z_or_rar_signature_is_a_corrupt_archive(magic: bytes) -> None:
    [row] = rows(magic + PAYLOAD_A)
    assert (row.path, row.status, row.archive_error) == ("ev/x!/", "error", True)
    assert row.reason is not None and row.reason.startswith("corrupt archive: ")


MAGICS = [b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b\x08", b"BZh91AY&SY", b"\xfd7zXZ\x00", b""]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(magic=st.sampled_from(MAGICS), body=st.binary(max_size=2048), tar=st.booleans())
def test_random_bytes_never_crash(magic: bytes, body: bytes, tar: bool) -> None:
    data = magic + body
    if tar:
        data = data.ljust(262, b"\x00")
        data = data[:257] + b"ustar" + data[262:]
    for item in rows(data, "ev/r.zip"):
        assert isinstance(item, WalkItem)
        assert item.path.startswith("ev/r.zip!/")
        assert item.status in ("pending", "skipped", "error")


VALID = [
    make_zip(MEMBERS),
    make_tar(MEMBERS),
    make_tar(MEMBERS, "w:gz"),
    make_tar(MEMBERS, "w:bz2"),
    make_tar(MEMBERS, "w:xz"),
]


@settings(max_examples=150, deadline=None)
@given(
    which=st.integers(0, len(VALID) - 1),
    flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), max_size=8),
    cut=st.integers(0, 1 << 20),
)
def test_mutated_archives_never_crash(which: int, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID[which])
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    data = data[: max(1, cut % (len(data) + 1))]
    for item in rows(bytes(data), "ev/m"):
        assert item.path.startswith("ev/m!/")
        if item.status == "pending":
            assert item.data is not None


def test_nested_bomb_is_bounded_by_the_shared_total() -> None:
    """A 42.zip-style bomb: each level holds copies of the level below. Every level looks
    harmless on its own (ratio lifted here), so only the total summed over the nesting stops it."""
    data = make_zip({"zeros.bin": bytes(2 * MiB)})
    for level in range(3):
        data = make_zip({f"copy{i}-{level}.zip": data for i in range(4)}, zipfile.ZIP_STORED)
    limits = WalkLimits(
        max_archive_depth=5, max_expansion_ratio=1e9, max_archive_total_bytes=16 * MiB
    )
    got = rows(data, "ev/42.zip", limits)
    loaded = [i for i in got if i.path.endswith("zeros.bin") and i.status == "pending"]
    stopped = [i for i in got if i.reason == "archive expansion exceeds the 16 MiB limit"]
    assert 1 <= len(loaded) <= 9  # 64 copies of 2 MiB sit in the bomb; at most 16 MiB + one
    assert stopped and all(i.status == "error" and i.archive_error for i in stopped)
    # with the default ratio limit the innermost zips are refused from their declared sizes
    default = rows(data, "ev/42.zip", WalkLimits(max_archive_depth=5))
    zeros = [i for i in default if i.path.endswith("zeros.bin")]
    assert len(zeros) == 64
    assert all(
        i.status == "error" and (i.reason or "").startswith("expansion ratio") for i in zeros
    )


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_repeated_member_names_get_unique_labels() -> None:
    """tar appends newer copies under the same name; every copy is a row of its own."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for content in (b"v1", b"v2", b"v3"):
            info = tarfile.TarInfo("notes.txt")
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    got = rows(buf.getvalue(), "ev/a.tar")
    assert [(i.path, i.data, i.reason) for i in got] == [
        ("ev/a.tar!/notes.txt", b"v1", None),
        ("ev/a.tar!/notes.txt (duplicate 2)", b"v2", "duplicate member name (occurrence 2)"),
        ("ev/a.tar!/notes.txt (duplicate 3)", b"v3", "duplicate member name (occurrence 3)"),
    ]
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("../x", b"1")
        zf.writestr("../x", b"2")
    note = "path escapes archive root (label only)"
    assert [(i.path, i.reason) for i in rows(zbuf.getvalue(), "ev/z.zip")] == [
        ("ev/z.zip!/../x", note),
        ("ev/z.zip!/../x (duplicate 2)", f"{note}; duplicate member name (occurrence 2)"),
    ]


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_members"):
        WalkLimits(max_members=-1)
    with pytest.raises(ValueError, match="max_expansion_ratio"):
        WalkLimits(max_expansion_ratio=0)
