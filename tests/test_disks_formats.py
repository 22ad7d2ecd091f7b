"""Disk formats at the edge of what can be generated here: Ex01 (EWF2), classic HFS, and a
deleted NTFS name whose MFT record was reused.

No Debian or PyPI tool on this machine writes Ex01 (`synthetic_fixtures.disks.ex01_image`
says why), so an Ex01 is at least recognised by its header, whatever its name, and a damaged
one is an attention row naming the format; a later segment is never opened on its own.
Where a real Ex01 can be written, it is read and its stored hashes verified. Classic HFS
(pre-HFS+, made by hfsutils without mounting) is recognised and listed as not examined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_disks import _require_tools

from synthetic_fixtures.disks import (
    MIN_PROBE,
    ex01_header_stub,
    ex01_image,
    fat_image,
    hfs_standard_image,
    ntfs_image,
    partitioned,
)
from triage.disks import image_kind, read_at_of
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


def test_ex01_acquired_where_a_writer_exists(tmp_path: Path) -> None:
    """Debian's ewfacquire 20140813 falls back to EnCase 6 for `-f encase7-v2`: then this
    says so; a newer one that writes Ex01 gets its image read and verified."""
    _require_tools()
    raw = tmp_path / "usb.fat"
    fat_image(raw, 2, {"a.txt": b"synthetic\n"}, fat=12)
    made = ex01_image(raw, tmp_path / "usb")
    if made is None:
        assert not list(tmp_path.glob("usb.E*"))
        return
    rows = _rows(made)
    assert rows[f"{made}!/a.txt"][0] == "pending"
    assert "verified" in (rows[f"{made}!/"][1] or "")


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
