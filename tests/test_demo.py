"""`triage demo`: synthetic evidence and banks through a whole scan; every expected outcome of
the demo fixtures shows up in the queue, the summary and the attention list."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli
from index.categories import VIC
from triage.demo import DemoResult, run_demo

TIER_OF = {"exact": 3, "near": 2, "dihedral": 2, "video": 2, "cluster": 1, "unmatched": 4}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("demo") / "out", workers=0)


def _queue(demo: DemoResult) -> dict[str, dict[str, Any]]:
    root = str(demo.evidence_dir) + "/"
    rows = [json.loads(x) for x in (demo.scan.case_dir / "queue.jsonl").read_text().splitlines()]
    return {r["path"][len(root):]: r for r in rows}


def test_expected_outcomes(demo: DemoResult) -> None:
    queue = _queue(demo)
    attention = {a["path"][len(str(demo.evidence_dir)) + 1:] for a in demo.scan.summary["attention"]}
    files: dict[str, dict[str, Any]] = demo.spec.expected["files"]  # type: ignore[assignment]
    assert files
    for path, exp in files.items():
        outcome = exp["expect"]
        if outcome in ("known_good", "non_media"):
            assert path not in queue, (path, exp)
            continue
        if outcome == "error":
            assert path in attention and path not in queue, path
            continue
        row = queue[path]
        assert row["tier"] == TIER_OF[outcome], (path, exp, row)
        if outcome == "unmatched":
            assert row["reasons"] == []
            continue
        lead = row["reasons"][0]
        assert lead["kind"] == outcome, (path, exp, lead)
        assert lead["entry"] == exp["entry"] and lead["bank"] == exp["bank"], (path, exp, lead)
        if outcome == "near":
            assert abs(lead["distance"] - exp["distance"]) <= 4, (path, exp, lead)
        if outcome == "cluster":  # distance to the nearest known-bad file of the case
            assert lead["via"] and lead["distance"] <= 31 < exp["distance"], (path, exp, lead)
        if outcome == "video":
            assert lead["query_frames_pct"] is not None
        # every demo list is read through the VIC scheme: one label per code, whatever the format
        assert lead["vic_category"] == exp["category"], row
        label = VIC.lookup(exp["category"]).label
        if outcome == "cluster":  # a suggestion, kept apart from confirmed categories
            assert row["category"] is None and row["suggested_category"] == label, row
        else:
            assert row["category"] == label and row["category_source"] == "bank", row


def test_summary_matches_expectations(demo: DemoResult) -> None:
    counts = demo.spec.expected["counts"]  # type: ignore[index]
    s = demo.scan.summary["counts"]
    assert s["known_good"] == counts["known_good"]  # type: ignore[index]
    tier1 = counts.get("cluster", 0)  # type: ignore[union-attr]
    assert s["tier"]["1"] == tier1
    assert s["tier"]["3"] == counts["exact"]  # type: ignore[index]
    assert s["tier"]["4"] == counts["unmatched"]  # type: ignore[index]
    for name in ("manifest.jsonl", "queue.jsonl", "queue.csv", "summary.json", "report.html",
                 "export.vics.json", "audit.jsonl"):
        assert (demo.scan.case_dir / name).is_file()


def test_cli_demo_rerun_is_a_noop(demo: DemoResult) -> None:
    out = demo.store_dir.parent
    res = CliRunner().invoke(cli, ["demo", "--out", str(out), "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "no change since the last scan" in res.output
    assert "tier 1 possible_new" in res.output and "queue.jsonl" in res.output
