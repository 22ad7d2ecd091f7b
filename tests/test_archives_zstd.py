"""Zstandard: `.zst` streams, `tar.zst` and zip members with method 93 are read with the same
bounds as gzip/bzip2/xz and deflate: bombs stop at the ratio and total limits with bounded
memory, a lying zip header stops at its declared size, damage is an error row."""

from __future__ import annotations

import io
import random
import struct
import tarfile
import zipfile

from backports import zstd
from backports.zstd import tarfile as zstd_tarfile
from backports.zstd import zipfile as zstd_zipfile
from test_archives import (
    MEMBERS,
    PAYLOAD_A,
    PAYLOAD_B,
    assert_stream_bomb_stopped,
    patch_zip_sizes,
    peak_alloc,
    rows,
    summary,
)

from triage.limits import MiB


def tar_zst(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zstd_tarfile.open(fileobj=buf, mode="w:zst") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_zst(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zstd_zipfile.ZipFile(buf, "w", compression=zstd_zipfile.ZIP_ZSTANDARD) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zeros_zst(n_mib: int) -> bytes:
    comp = zstd.ZstdCompressor(level=19)
    return b"".join(comp.compress(bytes(MiB)) for _ in range(n_mib)) + comp.flush()


def test_tar_zst_members_are_read() -> None:
    got = rows(tar_zst(MEMBERS), "ev/x.tar.zst")
    assert [(i.path, i.status, i.data, i.mtime) for i in got] == [
        ("ev/x.tar.zst!/a.bin", "pending", PAYLOAD_A, 1_700_000_000.0),
        ("ev/x.tar.zst!/dir/b.txt", "pending", PAYLOAD_B, 1_700_000_000.0),
    ]
    # the chain names both layers: member 1 of the tar that is the zstd stream's content
    assert [s.type for s in got[1].location[-2:]] == ["zstd", "tar"]


def test_single_file_zst_stream() -> None:
    got = rows(zstd.compress(PAYLOAD_A), "ev/photo.jpg.zst")
    assert [(i.path, i.data) for i in got] == [("ev/photo.jpg.zst!/photo.jpg", PAYLOAD_A)]
    assert [i.path for i in rows(tar_zst(MEMBERS), "ev/y.tzst")][0] == "ev/y.tzst!/a.bin"


def test_zip_zstandard_members_are_read_and_crc_checked() -> None:
    data = zip_zst(MEMBERS)
    assert {i.compress_type for i in zipfile.ZipFile(io.BytesIO(data)).infolist()} == {93}
    assert [(i.path, i.data) for i in rows(data, "ev/z.zip")] == [
        ("ev/z.zip!/a.bin", PAYLOAD_A), ("ev/z.zip!/dir/b.txt", PAYLOAD_B)]
    # a flipped CRC in both headers: decompressed fine, but not what was stored
    bad = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        pos = bad.find(sig)
        struct.pack_into("<I", bad, pos + off, struct.unpack_from("<I", bad, pos + off)[0] ^ 1)
    [first, second] = rows(bytes(bad), "ev/z.zip")
    assert first.status == "error" and first.reason is not None
    assert first.reason.startswith("corrupt member: Bad CRC-32")
    assert second.data == PAYLOAD_B  # the damage does not hide the next member


def test_zstd_stream_bomb_is_stopped_while_reading() -> None:
    bomb = zeros_zst(64)
    assert len(bomb) < 50_000
    assert_stream_bomb_stopped(bomb, "ev/bomb.zst")


def test_zip_zstandard_bomb_refused_and_lying_header_stopped() -> None:
    buf = io.BytesIO()
    with zstd_zipfile.ZipFile(buf, "w", compression=zstd_zipfile.ZIP_ZSTANDARD) as zf:
        with zf.open("zeros.bin", "w") as out:
            for _ in range(32):
                out.write(bytes(MiB))
        zf.writestr("photo.bin", PAYLOAD_A)
    bomb = buf.getvalue()
    assert len(bomb) < 50_000
    got, peak = peak_alloc(lambda: rows(bomb, "ev/bomb.zip"))
    assert [(i.path, i.status) for i in got] == [("ev/bomb.zip!/zeros.bin", "error"),
                                                 ("ev/bomb.zip!/photo.bin", "pending")]
    assert got[0].reason is not None and got[0].reason.startswith("expansion ratio ")
    assert peak < 10 * MiB
    liar = patch_zip_sizes(bomb, 10)  # every member now claims 10 bytes
    got, peak = peak_alloc(lambda: rows(liar, "ev/liar.zip"))
    assert summary(got)[0] == ("ev/liar.zip!/zeros.bin", "error",
                               "member larger than its declared size (lying header)")
    assert peak < 20 * MiB


def test_damaged_zstd_is_an_error_row_keeping_what_came_before() -> None:
    [row] = rows(b"(\xb5/\xfd" + PAYLOAD_A, "ev/x.zst")
    assert (row.path, row.status, row.archive_error) == ("ev/x.zst!/", "error", True)
    assert row.reason is not None and row.reason.startswith("corrupt archive: ")
    rng = random.Random(5)  # incompressible members, so the cut falls after two of them
    big = {f"m{i}.bin": rng.randbytes(200_000) for i in range(4)}
    data = tar_zst(big)
    got = rows(data[: len(data) * 3 // 4], "ev/cut.tar.zst")
    assert got[-1].path == "ev/cut.tar.zst!/" and got[-1].status == "error"
    assert [i.data for i in got[:-1]] == list(big.values())[: len(got) - 1] and len(got) >= 2
