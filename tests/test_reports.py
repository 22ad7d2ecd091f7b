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
from triage.reports.vics import VICS2_CONTEXT, write_vics


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
    return records, queue, summary


def test_summary_counts() -> None:
    _, _, s = _case()
    assert s["files"] == 4
    assert s["counts"]["tier"] == {"1": 0, "2": 1, "3": 1, "4": 1}
    assert s["counts"]["status"] == {"error": 1, "hashed": 3}
    assert s["counts"]["bank"] == {"bad": 2} and s["counts"]["category"] == {"1": 1, "2": 1}
    assert s["attention"][0]["reason"] == "encrypted member"
    assert "timings" not in stable_view(s) and "run" not in stable_view(s)


def test_report_is_self_contained_and_escaped() -> None:
    _, queue, summary = _case()
    page = render_report(summary, queue, "case-1")
    assert "<img" not in page.lower() and "data:" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "/e/&lt;b&gt;.png" in page and "/e/<b>" not in page
    assert 'id="count-tier-2">1<' in page and 'id="total-files">4<' in page
    assert "encrypted member" in page and page.count("<svg") == 2
    assert render_report(summary, queue, "case-1") == page  # deterministic


def test_histogram_svg() -> None:
    svg = histogram_svg([0, 3, 3, 31], 0, 31, "t", "distance")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 3 and "<title>3: 2</title>" in svg
    assert histogram_svg([], 0, 31, "empty", "d").count("<rect") == 0


def test_vics_export(tmp_path: Path) -> None:
    _, queue, _ = _case()
    write_vics(tmp_path / "v.json", queue)
    doc = json.loads((tmp_path / "v.json").read_text())
    assert doc["@odata.context"] == VICS2_CONTEXT
    media = doc["value"]
    assert [(m["MD5"], m["Category"], m["IsPrecategorized"]) for m in media] == [
        ("12" * 16, 2, False), ("AB" * 16, 1, True)]
    assert media[1]["SHA1"] == "CD" * 20 and media[1]["MediaSize"] == 10
    assert all(isinstance(m["MediaID"], int) for m in media)
    assert not any("path" in json.dumps(m).lower() or "/e/" in json.dumps(m) for m in media)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_streamed_summary_text_equals_json_dumps(tmp_path: Path, n: int) -> None:
    _, _, s = _case()
    entries = [{"path": f"/e/{k}\n\"x\"", "kind": "file", "status": "error",
                "media_type": None, "reason": {"nested": [k, "ü"]}} for k in range(n)]
    write_summary(tmp_path / "s.json", {**s, "attention": []}, iter(entries))
    assert (tmp_path / "s.json").read_text() == json.dumps({**s, "attention": entries},
                                                          indent=2) + "\n"
