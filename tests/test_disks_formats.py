"""Disk formats at the edge of what can be generated here: Ex01 (EWF2), classic HFS, and a
deleted NTFS name whose MFT record was reused.

No Debian or PyPI tool writes Ex01, so `synthetic_fixtures.ewf2` writes it from the format
description; pyewf (libewf, which reads EWF2) is the oracle: it must read back the exact
media bytes, compressed and uncompressed chunks, split in segments, with the stored MD5 and
SHA-1. A scan reads the file system inside in place and verifies the stored hashes; an Ex01
header over damaged sections is an attention row naming the format; a later segment is never
opened on its own. Classic HFS (pre-HFS+, made by hfsutils without mounting) is recognised
and listed as not examined.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np
import pyewf
import pytest
from test_disks import _require_tools

from hashing.hasher import HashOptions
from synthetic_fixtures.disks import (
    MIN_PROBE,
    ex01_header_stub,
    ex01_image,
    fat_image,
    hfs_standard_image,
    ntfs_image,
    partitioned,
)
from synthetic_fixtures.ewf2 import write_ex01
from triage.disks import hash_located, image_kind, read_at_of
from triage.walk import walk


def _rows(path: Path) -> dict[str, tuple[str, str | None, bool]]:
    return {r.path: (r.status, r.reason, r.archive_error) for r in walk([str(path)])}


def test_ex01_is_recognised_and_never_passes_silently(tmp_path: Path) -> None:
    _require_tools()
    body = np.random.default_rng(1).bytes(MIN_PROBE)
    first, later = tmp_path / "laptop.Ex01", tmp_path / "laptop.Ex02"
    ex01_header_stub(first, 1, body)
    ex01_header_stub(later, 2, body)
    with open(first, "rb") as fh:
        assert image_kind(read_at_of(fh)) == "ewf"
    with open(later, "rb") as fh:
        assert image_kind(read_at_of(fh)) is None  # opened only through its first segment
    rows = {**_rows(first), **_rows(later)}
    status, reason, attention = rows[f"{first}!/"]
    assert status == "error" and attention
    assert reason is not None and reason.startswith(
        "corrupt or truncated EWF2 (Ex01) image; not examined")
    assert not any(p.startswith(f"{later}!") for p in rows)


def _media(seed: int = 7) -> bytes:
    """4 MiB: zeros (chunks zlib shrinks) with incompressible runs (chunks stored as is)."""
    rng = np.random.default_rng(seed)
    media = bytearray(4 << 20)
    for at in (0, 300_000, 2_500_000):
        media[at : at + 200_000] = rng.bytes(200_000)
    return bytes(media)


def _pyewf_read(paths: list[Path]) -> tuple[bytes, dict[str, str], pyewf.handle]:
    handle = pyewf.handle()
    files = [open(p, "rb") for p in paths]  # noqa: SIM115  # closed below
    try:
        handle.open_file_objects(files)
        data = handle.read_buffer_at_offset(handle.get_media_size(), 0)
        return bytes(data), handle.get_hash_values(), handle
    finally:
        for f in files:
            f.close()


@pytest.mark.parametrize("compress", ["auto", "always", "never"])
@pytest.mark.parametrize("per_segment", [None, 37])
def test_ex01_is_read_back_byte_exact_by_libewf(tmp_path: Path, compress: str,
                                                per_segment: int | None) -> None:
    media = _media()
    paths = write_ex01(media, tmp_path / "img", compress=compress,
                       chunks_per_segment=per_segment)
    assert [p.name for p in paths][:2] == (["img.Ex01", "img.Ex02"] if per_segment
                                           else ["img.Ex01"])
    assert all(p.read_bytes()[:8] == b"EVF2\r\n\x81\x00" for p in paths)
    assert [Path(p).name for p in pyewf.glob(str(paths[0]))] == [p.name for p in paths]
    data, hashes, handle = _pyewf_read(paths)
    assert data == media
    assert hashes == {"MD5": hashlib.md5(media).hexdigest(),
                      "SHA1": hashlib.sha1(media).hexdigest()}
    assert handle.get_sectors_per_chunk() == 64 and handle.get_bytes_per_sector() == 512
    assert handle.get_header_value("case_number") == "case-1"
    stored = sum(p.stat().st_size for p in paths)
    if compress == "never":
        assert stored > len(media)
    else:  # the zero chunks shrink; "auto" keeps incompressible ones as they are
        assert stored < len(media) // 2


def _sections(path: Path) -> list[tuple[int, int, int]]:
    """(type, data size, padding) of each section, walked from the file's end as the format
    lays them out: each 64-byte descriptor names the previous one's offset."""
    data = path.read_bytes()
    out, at = [], len(data) - 64
    while True:
        d = data[at : at + 64]
        assert int.from_bytes(d[60:64], "little") == zlib.adler32(d[:60])
        kind, prev, size, dsize, pad = (int.from_bytes(d[a:b], "little") for a, b in
                                        ((0, 4), (8, 16), (16, 24), (24, 28), (28, 32)))
        assert dsize == 64 and (at - size) % 16 == 0
        out.append((kind, size, pad))
        if prev == 0:
            assert at - size == 32  # the first section follows the 32-byte file header
            return out[::-1]
        assert prev == at - size - 64
        at = prev


def test_ex01_layout_is_pinned(tmp_path: Path) -> None:
    """The sections in the order and sizes the format description gives, independently of
    libewf: device information, case data, sector data, sector table (32-byte header, 16
    bytes per chunk, 16-byte footer), then next, or MD5 and SHA-1 (32 bytes each) and done."""
    paths = write_ex01(_media(), tmp_path / "img", chunks_per_segment=50, compress="never")
    # a chunk stored as is is followed by its Adler-32, and the next one 16-byte aligned
    aligned = 64 * 512 + 4 + 12
    layouts = [_sections(p) for p in paths]
    assert [[k for k, _, _ in lay] for lay in layouts] == \
        [[1, 2, 3, 4, 0x0D], [1, 2, 3, 4, 0x0D], [1, 2, 3, 4, 8, 9, 0x0F]]
    chunks = [50, 50, 28]
    for lay, n in zip(layouts, chunks, strict=True):
        assert lay[2] == (3, n * aligned, 12)
        assert lay[3][1] == 32 + 16 * n + 16
    assert layouts[-1][4:6] == [(8, 32, 12), (9, 32, 8)]
    assert layouts[-1][6] == (0x0F, 0, 0)


def test_ex01_is_scanned_in_place_and_verified(tmp_path: Path) -> None:
    """A FAT volume inside an Ex01, split in segments: its files are rows read in place
    through their locator, the root row says the stored MD5 and SHA-1 were verified; stored
    hashes that do not match, none, or a missing last segment make the image an attention row."""
    _require_tools()
    raw = tmp_path / "usb.fat"
    pic = np.random.default_rng(3).bytes(150_000)
    fat_image(raw, 2, {"DCIM/a.jpg": pic, "a.txt": b"synthetic\n"}, fat=12)
    made = ex01_image(raw, tmp_path / "usb", chunks_per_segment=10)
    assert len(made) > 2
    rows = {r.path: r for r in walk([str(made[0])])}
    member = rows[f"{made[0]}!/DCIM/a.jpg"]
    assert member.status == "pending" and member.locator is not None
    assert member.locator[0] == ("ewf", tuple(str(p) for p in made))
    rec = hash_located(member.locator, member.path, HashOptions())
    assert rec.hashes["md5"] == hashlib.md5(pic).hexdigest()
    root = rows[f"{made[0]}!/"]
    assert root.reason == "EWF image: stored MD5 and SHA1 verified" and not root.archive_error
    assert not any(p.startswith(f"{made[1]}!") for p in _rows(made[1]))

    wrong = ex01_image(raw, tmp_path / "wrong", stored_hashes=("1" * 32, "1" * 40))
    status, reason, attention = _rows(wrong[0])[f"{wrong[0]}!/"]
    assert status == "error" and attention and reason is not None
    assert reason.startswith("EWF image: computed hash differs from the stored")
    none = ex01_image(raw, tmp_path / "none", store_hashes=False)
    status, reason, attention = _rows(none[0])[f"{none[0]}!/"]
    assert attention and reason is not None and "no acquisition MD5 or SHA-1 found" in reason
    cut = ex01_image(raw, tmp_path / "cut", chunks_per_segment=10)
    cut[-1].unlink()  # the last segment, which holds the stored hashes
    status, reason, attention = _rows(cut[0])[f"{cut[0]}!/"]
    assert status == "error" and attention and reason is not None
    assert "missing segment file" in reason and "stores no" not in reason


def test_classic_hfs_is_listed_as_not_examined(tmp_path: Path) -> None:
    _require_tools()
    vol = tmp_path / "old.hfs"
    hfs_standard_image(vol, 2, {"Pictures/a.jpg": b"\xff\xd8synthetic"})
    assert _rows(vol)[f"{vol}!/"] == (
        "skipped", "classic HFS volume (pre-HFS+): not examined (The Sleuth Kit reads HFS+ "
        "and HFSX, not HFS)", True)
    disk = tmp_path / "mac.img"
    partitioned(disk, [vol], "gpt")
    status, reason, attention = _rows(disk)[f"{disk}!/p1"]
    assert status == "skipped" and attention and reason is not None
    assert reason.startswith("classic HFS volume")


def _patch_mft_record(vol: Path, record: int, *, in_use: bool, seq: int,
                      rename: tuple[str, str] | None = None) -> None:
    """Set an MFT record's in-use flag and sequence number, and rename the file it names, in
    place (the $MFT of a fresh mkntfs volume is contiguous; offsets from the NTFS boot sector
    and record header)."""
    data = bytearray(vol.read_bytes())
    cluster = int.from_bytes(data[11:13], "little") * data[13]
    mft = int.from_bytes(data[0x30:0x38], "little") * cluster
    raw = int.from_bytes(data[0x40:0x41], "little", signed=True)
    size = 1 << -raw if raw < 0 else raw * cluster
    at = mft + record * size
    assert data[at : at + 4] == b"FILE"
    data[at + 0x10 : at + 0x12] = seq.to_bytes(2, "little")
    flags = int.from_bytes(data[at + 0x16 : at + 0x18], "little")
    data[at + 0x16 : at + 0x18] = ((flags | 1) if in_use else (flags & ~1)).to_bytes(2, "little")
    if rename is not None:
        old, new = (n.encode("utf-16-le") for n in rename)
        data[at : at + size] = bytes(data[at : at + size]).replace(old, new)
    vol.write_bytes(bytes(data))


def test_deleted_ntfs_name_is_recovered_only_from_its_own_freed_record(tmp_path: Path) -> None:
    """A deleted NTFS name is hashed from its MFT record only while that record is free and
    exactly one sequence number on (the deletion's bump): a record in use again, or freed
    again later, holds some other file, and the name's row says it is not recoverable."""
    _require_tools()
    vol = tmp_path / "del.ntfs"
    old = b"\xff\xd8old picture" * 500
    ntfs_image(vol, 8, {"dir/gone.jpg": old}, deleted=["dir/gone.jpg"])
    rows = {r.path: r for r in walk([str(vol)])}
    gone = rows[f"{vol}!/dir/gone.jpg"]
    assert gone.locator is not None and gone.size == len(old)
    assert gone.extra is not None and gone.extra["deleted"] is True
    record = gone.locator[-1][1]
    # the record taken by another file; then that file deleted too (one more bump)
    for in_use, seq in ((True, 2), (False, 3)):
        _patch_mft_record(vol, record, in_use=in_use, seq=seq, rename=("gone.jpg", "else.jpg"))
        rows = {r.path: r for r in walk([str(vol)])}
        # TSK may drop the stale name once the record names another file; if it is listed,
        # it is never read through the record
        again = rows.get(f"{vol}!/dir/gone.jpg")
        assert again is None or (again.locator is None and again.size is None
                                 and "not recoverable" in (again.reason or "")), (in_use, seq)


def test_apfs_writer_agrees_with_mkapfs(tmp_path: Path) -> None:
    """`synthetic_fixtures.apfs` checks out against what mkapfs itself wrote: the Fletcher-64
    of every object mkapfs made, and the name hashes of its two directory records (root and
    private-dir, pinned); after files are added the rewritten node is still valid."""
    _require_tools()
    import struct

    from synthetic_fixtures.apfs import _fs_tree_root, _records, add_files, fletcher64, name_hash
    from synthetic_fixtures.disks import apfs_container

    img = tmp_path / "c.apfs"
    apfs_container(img)
    data = bytearray(img.read_bytes())
    objects = [data[i : i + 4096] for i in range(0, len(data), 4096)
               if struct.unpack_from("<Q", data, i + 8)[0] not in (0, 2**64 - 1)]
    assert len(objects) > 10
    assert all(int.from_bytes(b[:8], "little") == fletcher64(bytes(b)) for b in objects)
    assert name_hash("root") == 0x2D9C79 and name_hash("private-dir") == 0x2B29A3
    names = {r.key[12:-1].decode(): int.from_bytes(r.key[8:12], "little") >> 10
             for r in _records(bytes(data[_fs_tree_root(data, 4096):][:4096]), 4096)
             if r.key[7] >> 4 == 9}
    assert names == {"root": name_hash("root"), "private-dir": name_hash("private-dir")}
    add_files(img, {"A/b.jpg": b"\xff\xd8" * 5000}, 0)
    data = bytearray(img.read_bytes())
    at = _fs_tree_root(data, 4096)  # found again: its checksum is valid
    assert len(_records(bytes(data[at : at + 4096]), 4096)) == 4 + 2 + 4
    with pytest.raises(ValueError, match="do not fit"):
        add_files(img, {f"f{i}.jpg": b"x" for i in range(200)}, 0)
