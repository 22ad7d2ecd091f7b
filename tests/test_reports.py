"""report.html, the SVG plots, export.vics.json and summary.json, from a small built queue."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hashing.types import HashRecord
from triage.items import CaseItem
from triage.match import Reason
from triage.policy import Policy
from triage.queue import build_queue
from triage.reports.html import render_report
from triage.reports.summary import SummaryCounts, stable_view, write_summary
from triage.reports.svg import histogram_svg
from triage.reports.vics import VICS2_CONTEXT, media_id, write_vics


def _case():  # type: ignore[no-untyped-def]
    records = [
        HashRecord(path="/e/a.jpg", status="hashed", media_type="image/jpeg", size=10,
                   hashes={"md5": "ab" * 16, "sha1": "cd" * 20, "pdq": "00" * 32}),
        HashRecord(path="/e/<b>.png", status="hashed", media_type="image/png", size=11,
                   hashes={"md5": "12" * 16, "sha1": "34" * 20}),
        HashRecord(path="/e/c.png", status="hashed", media_type="image/png",
                   hashes={"md5": "56" * 16}),
        HashRecord(path="/e/x.zip!/bad.jpg", status="error", kind="archive_member",
                   error="encrypted member"),
    ]
    reasons = [
        (Reason("exact", "md5", "bad", "E1", 0, "1", vic_category=1),),
        (Reason("near", "pdq", "bad", "E2", 9, "2", vic_category=2),),
        (), (),
    ]
    policy = Policy()
    items = [CaseItem(k, r, reasons=why) for k, (r, why) in enumerate(zip(records, reasons, strict=True))]
    queue = build_queue(items, policy)
    counts = SummaryCounts(policy)
    for item in items:
        counts.add_item(item)
    for row in queue:
        counts.add_row(row)
    summary = counts.summary(0, {"hash_calls": 4}, {"match": 0.1})
    return items, queue, summary


def test_summary_counts() -> None:
    _, _, s = _case()
    assert s["files"] == 4
    assert s["counts"]["tier"] == {"1": 0, "2": 1, "3": 1, "4": 1}
    assert s["counts"]["status"] == {"error": 1, "hashed": 3}
    assert s["counts"]["bank"] == {"bad": 2} and s["counts"]["category"] == {"1": 1, "2": 1}
    assert s["attention"][0]["reason"] == "encrypted member"
    assert "timings" not in stable_view(s) and "run" not in stable_view(s)


CASE = {"name": "case-1", "evidence_roots": ["/e"], "started": "t0", "ended": "t1",
        "tool_version": "0.1", "banks": [{"name": "bad", "source": "org", "version": "3",
                                          "entries": 2}], "policy": Policy().to_dict()}


def test_report_is_self_contained_and_escaped() -> None:
    _, queue, summary = _case()
    page = render_report(summary, queue, CASE, bound=20_000)
    assert "<img" not in page.lower() and "data:" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "/e/<b>" not in page and "\\u003cb>.png" in page  # escaped in the data block
    assert 'id="count-tier-2">1<' in page and 'id="total-files">4<' in page
    assert "encrypted member" in page and page.count("<svg") == 3
    # the inline script and style may run only because the policy names their hashes
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy and "default-src 'none'" in policy.group(1)
    assert "'unsafe-inline'" not in policy.group(1)
    assert render_report(summary, queue, CASE, bound=20_000) == page  # deterministic


def test_report_accounts_for_every_row() -> None:
    _, queue, summary = _case()
    acc = summary["counts"]["accounting"]
    assert acc == {"queued": 3, "known_good": 0, "not_examined": 1, "other": 0}
    assert sum(acc.values()) == summary["files"]


def test_unmatched_tier_is_bounded() -> None:
    _, queue, summary = _case()
    page = render_report(summary, queue, CASE, bound=0)
    data = json.loads(re.search(r'id="queue-data">(.*?)</script>', page).group(1))
    assert [r[1] for r in data["rows"]] == [2, 3]  # tier 4's row left to queue.csv
    assert 'id="bound-note"' in page and "queue.csv" in page


def test_histogram_svg() -> None:
    svg = histogram_svg([0, 3, 3, 31], 0, 31, "t", "distance")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 3 and "<title>3: 2</title>" in svg
    assert histogram_svg([], 0, 31, "empty", "d").count("<rect") == 0


def test_vics_export(tmp_path: Path) -> None:
    _, queue, _ = _case()
    write_vics(tmp_path / "v.json", queue,
               {"name": "case-1", "tool_version": "0.1", "banks": [{"name": "bad", "version": "3"}]})
    doc = json.loads((tmp_path / "v.json").read_text())
    assert doc["@odata.context"] == VICS2_CONTEXT
    (case,) = doc["value"]
    assert case["CaseNumber"] == "case-1" and case["SourceApplicationName"] == "osec-triage"
    assert case["Comments"] == "banks: bad 3"
    media = case["Media"]
    # rank order: the exact match (tier 3) after the near one (tier 2)
    assert [(m["MD5"], m["Category"], m["IsPrecategorized"]) for m in media] == [
        ("12" * 16, 2, False), ("AB" * 16, 1, True)]
    assert media[1]["SHA1"] == "CD" * 20 and media[1]["MediaSize"] == 10
    assert media[0]["MediaFiles"] == [{"FileName": "<b>.png", "FilePath": "/e/<b>.png"}]
    # the right description per reason: an exact digest is not a "PDQ distance 0"
    assert media[1]["Comments"] == "exact MD5 digest match to bad:E1"
    assert media[0]["Comments"] == "near match to bad:E2, PDQ distance 9 of 256"
    # a stable id from the digests, not the queue rank
    assert media[1]["MediaID"] == media_id("ab" * 16, "cd" * 20, None)
    assert media[1]["AlternativeHashes"] == [{"HashName": "PDQ", "HashValue": "00" * 32}]


@pytest.mark.parametrize("n", [0, 1, 3])
def test_streamed_summary_text_equals_json_dumps(tmp_path: Path, n: int) -> None:
    _, _, s = _case()
    entries = [{"path": f"/e/{k}\n\"x\"", "kind": "file", "status": "error",
                "media_type": None, "reason": {"nested": [k, "ü"]}} for k in range(n)]
    write_summary(tmp_path / "s.json", {**s, "attention": []}, iter(entries))
    assert (tmp_path / "s.json").read_text() == json.dumps({**s, "attention": entries},
                                                          indent=2) + "\n"
