"""Smoke run of the hashing benchmark: it writes its three files with the documented keys."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import hashing


def test_quick_run_writes_results(tmp_path: Path) -> None:
    hashing.run(tmp_path, quick=True)
    for name in ("result.json", "hashing.md", "hashing.png"):
        assert (tmp_path / name).stat().st_size > 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["benchmark"] == "hashing" and result["quick"] is True
    small = result["sets"]["small"]
    assert set(small["images_per_s"]) == set(hashing.METHODS)
    assert small["ratio_vs_baseline"][hashing.BASELINE] == 1.0
    dev = small["deviation_fast_vs_exact"]
    assert {
        "mean_bits",
        "p99_bits",
        "max_bits",
        "scaled_mean_bits",
        "exact_equals_pdqhash",
        "n",
    } <= set(dev)
    # under 1 MP the fast path is the exact path, and the exact path is pdqhash's hash
    assert dev["max_bits"] == 0 and dev["exact_equals_pdqhash"] == dev["n"]
    assert {"fast_ratio", "exact_ratio", "fast_mean_deviation_bits", "met"} <= set(
        result["targets"]
    )
    assert "| small | ours fast |" in (tmp_path / "hashing.md").read_text()
