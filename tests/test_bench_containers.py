"""Smoke run of the container benchmark: quick mode reads every planted picture from every
container byte-identical and writes its three result files."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import containers


def test_quick_run_writes_results(tmp_path: Path) -> None:
    containers.run(tmp_path, quick=True)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["benchmark"] == "containers" and result["quick"] is True
    assert set(result["by_reader"]) == {"folder", "tar", "zip (stored)", "zip (deflate)",
                                        "7z (LZMA2, solid)", "RAR 4 (stored)", "RAR 5 (stored)",
                                        "PDF (JPEG streams)"}
    assert all(v["mb_per_s"] > 0 for v in result["by_reader"].values())
    assert (tmp_path / "containers.md").exists() and (tmp_path / "containers.png").exists()
