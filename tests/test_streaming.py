"""Streaming derive stages: a scan whose memory budget allows only a few items per chunk writes
the same outputs, byte for byte, as a scan that holds the case in one chunk, and both equal the
in-memory composition of the stage functions over the whole case."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from index.banks import BankStore
from index.media_bank import MediaMatcher
from triage import derive
from triage.audit import tool_version
from triage.casedb import CaseDB
from triage.cluster import cluster_items
from triage.cluster_spill import ClusterSpill
from triage.demo import run_demo
from triage.items import CaseItem
from triage.local_match import media_match
from triage.match import match_records, matching_notes
from triage.pipeline import ScanConfig, run_scan
from triage.policy import Policy
from triage.queue import build_queue
from triage.reports.html import write_report
from triage.reports.queue import write_queue_csv, write_queue_jsonl
from triage.reports.summary import SummaryCounts, stable_view
from triage.reports.vics import write_vics
from triage.scratch import SCRATCH_NAME

SAME_BYTES = ("manifest.jsonl", "queue.jsonl", "queue.csv", "export.vics.json")
TINY_BUDGET = 2 << 10  # 1 item per chunk, clustering spilled in blocks of 4 nodes


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(evidence, store, a one-chunk case); the demo covers every kind of match and cluster."""
    demo = run_demo(tmp_path_factory.mktemp("demo") / "out", workers=0)
    return demo.evidence_dir, demo.store_dir, demo.scan.case_dir


def _in_memory(case: Path, out: Path, store: Path) -> None:
    """The derive stages over the whole case in memory, written like a scan writes them."""
    policy = Policy()
    with CaseDB(case / "case.sqlite") as db:
        run = max(r for (r,) in db._db.execute("SELECT id FROM runs"))
        items = [CaseItem.from_row(n, row.record, f) for n, (row, f)
                 in enumerate(zip(db.rows(run), db.features(run), strict=True))]
    with BankStore(store) as bank_store:
        banks = [{"name": b.name, "source": b.source, "version": b.version, "entries": b.entries}
                 for b in bank_store.list_banks() if b.enabled]
        matcher = bank_store.open_matcher()
        media = MediaMatcher(bank_store.db_path, bank_store.dir)
        try:
            reasons = match_records([i.record for i in items], matcher, policy)
            items = [replace(i, reasons=r) for i, r in zip(items, reasons, strict=True)]
            matched = media_match(items, media, policy)
            items = matched.items
            matching = matching_notes(matcher.held_algorithms(), policy)
        finally:
            matcher.close()
            media.close()
    items = cluster_items(items, policy)
    queue = build_queue(items, policy)
    out.mkdir()
    write_queue_jsonl(out / "queue.jsonl", queue)
    write_queue_csv(out / "queue.csv", queue)
    info = {"name": out.name, "tool_version": tool_version(), "banks": banks,
            "policy": policy.to_dict()}
    write_vics(out / "export.vics.json", queue, info)
    counts = SummaryCounts(policy)
    counts.refuted_weak_matches = matched.refuted
    for item in items:
        counts.add_item(item)
    for row in queue:
        counts.add_row(row)
    summary = counts.summary(len({i.cluster for i in items if i.cluster}), {}, {}, banks)
    attention = summary.pop("attention")
    summary.update(matching=matching, attention=attention)  # as the scan lays it out
    (out / "summary.json").write_text(json.dumps(summary))
    write_report(out / "report.html", summary, queue, info, policy.report_unmatched_rows)


def _page(path: Path, header: bool = True) -> str:
    """The report without what differs between two scans of the same case: the scan times
    (and, for a composition that is no scan, the whole case header)."""
    text = path.read_text()
    if not header:
        return re.sub(r'<h2 id="case">.*?<h2 id="legend">', "", text, flags=re.S)
    return re.sub(r"(<tr><th>scan (?:started|finished)</th><td>)[^<]*", r"\1", text)


def test_streaming_equals_one_chunk_and_in_memory(cases: tuple[Path, Path, Path],
                                                  tmp_path: Path) -> None:
    evidence, store, whole = cases
    files = json.loads((whole / "summary.json").read_text())["files"]
    assert derive.chunk_rows(TINY_BUDGET) * 5 < files  # many chunks
    rows = [json.loads(line) for line in (whole / "manifest.jsonl").open()]
    nodes = sum(bool(r.get("pdq")) + len(r.get("pdq_frames") or ()) for r in rows)
    assert ClusterSpill.for_budget(whole, TINY_BUDGET).block_nodes * 3 < nodes  # spilled
    streamed = tmp_path / "streamed" / "case"
    result = run_scan(ScanConfig(evidence=(evidence,), case_dir=streamed, store_dir=store,
                                 workers=0, memory_budget=TINY_BUDGET))
    assert result.summary["counts"]["clusters"] > 0 and result.summary["counts"]["queue"] > 0
    for name in SAME_BYTES:
        assert (streamed / name).read_bytes() == (whole / name).read_bytes(), name
    s_streamed = json.loads((streamed / "summary.json").read_text())
    s_whole = json.loads((whole / "summary.json").read_text())
    assert stable_view(s_streamed) == stable_view(s_whole)
    assert _page(streamed / "report.html") == _page(whole / "report.html")
    assert not list(streamed.glob(".*.tmp")) and not (streamed / SCRATCH_NAME).exists()

    memory = tmp_path / "memory" / "case"
    memory.parent.mkdir()
    _in_memory(whole, memory, store)
    for name in ("queue.jsonl", "queue.csv", "export.vics.json"):
        assert (memory / name).read_bytes() == (streamed / name).read_bytes(), name
    assert stable_view(json.loads((memory / "summary.json").read_text())) == stable_view(s_streamed)
    assert _page(memory / "report.html", False) == _page(streamed / "report.html", False)
