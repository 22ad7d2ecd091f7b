"""Smoke run of the matching benchmark: quick mode writes its three files and agrees everywhere."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import matching


def test_quick_run_writes_results(tmp_path: Path) -> None:
    matching.run(tmp_path, quick=True)
    for name in ("result.json", "matching.md", "matching.png"):
        assert (tmp_path / name).stat().st_size > 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["benchmark"] == "matching" and result["quick"] is True
    assert result["identical"] is True and result["radius"] == 31
    assert [(s["kind"], s["n"]) for s in result["sizes"]] == list(matching.QUICK.sizes)
    for size in result["sizes"]:
        # forced multi-index hashing is shown beside auto only where auto does something else
        assert set(size["methods"]) == set(matching.METHODS) - (
            {"ours mih"} if size["kind"] == "uniform" else set())
        assert size["numpy_prefix_check"]["ok"] is True
        for row in size["methods"].values():
            assert row["identical"] is True and row["boundary_ok"] is True
            assert row["queries"] == matching.QUICK.queries and row["queries_per_s"] > 0
            # a quarter of the queries carry 6 plants inside the radius (the 7th is outside)
            assert row["matches"] >= matching.QUICK.queries // 4 * 6
        want = "mih" if size["kind"] == "uniform" else "series"
        assert size["methods"]["ours auto"]["plan"]["method"] == want
    assert {"uniform largest_n_build_s", "clustered largest_n_memory_bytes"} <= set(
        result["targets"])
    assert "| clustered | 100,000 | ours auto | series |" in (
        tmp_path / "matching.md").read_text()
