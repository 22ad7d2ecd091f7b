"""The scale benchmark's generated case: rows the record stage would write, a bank drawn from
them, and the derive stages over them finding the planted exact and near matches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.scale import derive_rows, fill_case, write_bank, write_small_files


def test_generated_rows_match_their_bank(tmp_path: Path) -> None:
    picks = fill_case(tmp_path / "bank_case", 10_000, 11)
    assert [("pdq" in p.hashes) for p in picks] == [True, False, False]
    write_bank(tmp_path / "store", tmp_path / "bank", picks)
    case = tmp_path / "case"
    fill_case(case, 10_000, 11)  # same seed: the same rows, so the picks are in it
    out = derive_rows(case, tmp_path / "store")
    counts = out["counts"]
    # every pick matches itself exactly; the image also matches its series near (160 images
    # 0-12 bits from one base, so within 24 bits of each other)
    assert counts["bank"] == {"scale": 160 + 2}
    assert (counts["tier"]["3"], counts["tier"]["2"]) == (3, 159) and counts["clusters"] == 5
    manifest = (case / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 10_000
    assert sum(1 for line in manifest if json.loads(line)["media_type"] == "image/jpeg") == 800


def test_small_files_mix(tmp_path: Path) -> None:
    write_small_files(tmp_path / "ev", 200, 3)
    names = sorted(p.name for p in (tmp_path / "ev").rglob("f*"))
    assert len(names) == 200 and sum(n.endswith(".jpg") for n in names) == 16


def test_scan_scale_rejects_rows_with_unexpected_attention() -> None:
    from benchmarks.scan_scale import InvalidRow, check_counts, expected_clusters

    n = 100_000
    good = {"attention": 0, "clusters": expected_clusters(n)}
    check_counts(n, good, {})
    summary = {"attention": [{"reason": "decode failed"}] * 3}
    with pytest.raises(InvalidRow, match="3 attention rows.*decode failed"):
        check_counts(n, {**good, "attention": 3}, summary)
    with pytest.raises(InvalidRow, match="0 clusters"):
        check_counts(n, {**good, "clusters": 0}, {})


def test_scan_scale_loop_image_is_read_only_and_removed(tmp_path: Path) -> None:
    from benchmarks import scan_scale

    image, mount, n = tmp_path / "ev.img", tmp_path / "ev", 300
    try:
        with scan_scale.loop_image(image, mount, n) as root:
            bodies, bases = scan_scale.generate(root, n, processes=1)
            scan_scale.remount_read_only(root)
            scan_scale.read_back(root, n, bodies, bases)
            assert sum(1 for p in root.rglob("f*") if p.suffix == ".jpg") == n * 2 // 25
            with pytest.raises(OSError):
                scan_scale.file_path(root, 0).write_bytes(b"changed")
    except scan_scale.LoopUnavailable as exc:  # not root, no loop device, no mkfs.ext4
        pytest.skip(f"no loop-mounted ext4 here: {exc}")
    assert not image.exists() and not mount.exists()
