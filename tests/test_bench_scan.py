"""The scan benchmark: generators are deterministic and a tiny end-to-end run writes sane results."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from benchmarks import scan


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_small_files_are_deterministic_and_counted(tmp_path: Path) -> None:
    scan.write_small_files(tmp_path / "a", 30, seed=5)
    scan.write_small_files(tmp_path / "b", 30, seed=5)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    n, size, files = scan.tree_stats(tmp_path / "a")
    assert n == 30 == len(files)
    assert size == sum(p.stat().st_size for p in files)
    images = [p for p in files if p.suffix in (".jpg", ".png")]
    assert len(images) == 15  # half tiny images, half small non-media
    assert len({p.read_bytes() for p in files}) == 30  # no accidental duplicates


def test_tree_stats_skips_links(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    n, size, _ = scan.tree_stats(tmp_path)
    assert (n, size) == (1, 5)


@pytest.mark.slow
def test_tiny_run_writes_sane_results(tmp_path: Path) -> None:
    # One mixed scan and two small ones: enough to exercise every number the report derives.
    cfg = scan.Config(n_files=40, n_scenes=4, n_videos=1, n_archives=1, mixed_images=4,
                      small=(10, 30), workers=(1,), baseline_files=20)
    result = scan.run(tmp_path, quick=True, config=cfg)
    for name in ("result.json", "scan.md", "scan.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "result.json").read_text())
    for key in ("runs", "wall_stage_names", "small_files_scaling", "hashing_baseline",
                "scan_vs_hashing", "machine", "config"):
        assert key in saved, key
    runs = saved["runs"]
    assert [r["workers"] for r in runs] == [1, 1, 1]
    mixed, small = runs[:1], runs[1:]
    assert mixed[0]["files_on_disk"] == 40
    # Every file is a manifest row, and archive members and links are rows of their own.
    assert mixed[0]["records"] >= mixed[0]["files_on_disk"] + 10
    assert [r["files_on_disk"] for r in small] == [10, 30]
    assert [r["records"] for r in small] == [10, 30]
    for r in runs:
        assert r["seconds"] > 0 and r["files_per_s"] > 0 and r["mb_per_s"] > 0
        assert r["cpu_seconds"] > 0
        assert r["peak_rss_mb"] >= r["peak_process_rss_mb"] > 10
        assert r["stages"], r["label"]
        # The wall-time partition adds back up to the measured wall time (no stage overlaps).
        assert sum(r["wall_stages"].values()) == pytest.approx(r["seconds"], rel=0.05)
    assert saved["small_files_scaling"]["count_ratio"] == 3
    assert saved["hashing_baseline"]["files"] == 20
    assert result["scan_vs_hashing"] > 0 and result["hash_stage_vs_hashing"] > 0
    assert result["scan_cpu_vs_hashing_cpu"] > 0
    assert "Quick mode" in (tmp_path / "scan.md").read_text()
