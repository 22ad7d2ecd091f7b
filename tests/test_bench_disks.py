"""Smoke run of the disk-image benchmark: it reads every file back from the raw image and the
E01 and the Ex01 (byte counts checked inside) and writes its three files with the documented keys."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import disks


def test_quick_run_writes_results(tmp_path: Path) -> None:
    disks.run(str(tmp_path), quick=True)
    for name in ("result.json", "disks.md", "disks.png"):
        assert (tmp_path / name).stat().st_size > 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["benchmark"] == "disks" and result["quick"] is True
    assert set(result["mb_per_s"]) == {"folder", "raw image", "E01", "Ex01"}
    assert result["ratio_vs_folder"]["folder"] == 1.0
    assert all(v > 0 for v in result["mb_per_s"].values())
    assert set(result["verify_mb_per_s"]) == {"E01", "Ex01"}
    assert all(v > 0 for v in result["verify_mb_per_s"].values())
    text = (tmp_path / "disks.md").read_text()
    assert "| E01 |" in text and "| Ex01 |" in text
