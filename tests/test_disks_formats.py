"""Disk formats at the edge of what can be generated here: Ex01 (EWF2) and classic HFS.

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
