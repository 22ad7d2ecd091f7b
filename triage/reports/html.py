"""report.html: one self-contained page for the case (no external resources, no content).

Summary tables, the top of the queue with its reasons, the attention list and inline SVG
histograms of match distances. A Content-Security-Policy forbids loading anything, and the
page holds no <img>: only paths, hashes, counts and distances.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from hashing.registry import spec
from triage.outputs import write_text_atomic
from triage.queue import QueueRow
from triage.reports.summary import banks_line, not_examined_line
from triage.reports.svg import counts_svg

TOP_ROWS = 200
ATTENTION_ROWS = 500  # the full list is in summary.json
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:.2em .5em;text-align:left;font-size:13px;vertical-align:top}
th{background:#eee} td.n{text-align:right} code{font-size:12px;word-break:break-all}
.grid{display:flex;flex-wrap:wrap;gap:2em}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _count_table(title: str, key: str, counts: Mapping[str, int],
                 names: Mapping[str, str] | None = None) -> str:
    rows = "".join(
        f'<tr><td>{_e(k)}{" (" + _e(names[k]) + ")" if names and k in names else ""}</td>'
        f'<td class="n" id="count-{_e(key)}-{_e(k)}">{v}</td></tr>'
        for k, v in counts.items()
    )
    return (f"<div><h3>{_e(title)}</h3><table><tr><th>{_e(key)}</th><th>files</th></tr>"
            f"{rows or '<tr><td colspan=2>none</td></tr>'}</table></div>")


def _reasons(row_reasons: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for r in row_reasons:
        extra = f" {r['variant']}" if r.get("variant") else ""
        if r.get("query_frames_pct") is not None:
            extra += f" frames {r['query_frames_pct']}%/{r['bank_frames_pct']}%"
        if r.get("frame"):
            extra += f" at {r['frame']}"
        if r.get("via"):
            extra += f" near {r['via']}"
        parts.append(
            f"{_e(r['kind'])} {_e(r['algo'])} {_e(r['bank'])}:{_e(r['entry'])} "
            f"d={_e(r['distance'])} [{_e(r['category'])}]{_e(extra)}"
        )
    return "<br>".join(parts)


def render_report(summary: Mapping[str, Any], rows: Iterable[QueueRow], case_name: str) -> str:
    """The page for the ranked queue `rows`, read once: the top rows are kept, the rest only
    tallied into the distance histograms, so a long queue costs no more than a short one."""
    counts = summary["counts"]
    overview = {
        "files": summary["files"], "queue": counts["queue"], "known_good": counts["known_good"],
        "attention": counts["attention"], "clusters": counts["clusters"],
    }
    head = "".join(
        f'<tr><th>{_e(k)}</th><td class="n" id="total-{_e(k)}">{v}</td></tr>'
        for k, v in overview.items()
    )
    tables = "".join([
        _count_table("Queue tiers", "tier", counts["tier"], summary["tier_names"]),
        _count_table("Categories", "category", counts["category"]),
        _count_table("Status", "status", counts["status"]),
        _count_table("Media types", "media_type", counts["media_type"]),
        _count_table("Bank hits", "bank", counts["bank"]),
    ])
    top: list[QueueRow] = []
    near: Counter[int] = Counter()
    clustered: Counter[int] = Counter()
    total = 0
    for r in rows:
        total += 1
        if len(top) < TOP_ROWS:
            top.append(r)
        for x in r.reasons:
            if x.kind in ("near", "dihedral", "video", "frame") and x.algo == "pdq":
                near[x.distance] += 1
            elif x.kind == "cluster":
                clustered[x.distance] += 1
    qrows = "".join(
        f"<tr><td class=n>{r.rank}</td><td class=n>{r.tier}</td><td class=n>{r.score}</td>"
        f"<td><code>{_e(d['path'])}</code></td><td>{_e(r.category)}</td><td>{_e(r.cluster)}</td>"
        f"<td>{_reasons(d['reasons'])}</td></tr>"
        for r in top for d in (r.to_dict(),)
    )
    attention = "".join(
        f"<tr><td><code>{_e(a['path'])}</code></td><td>{_e(a['kind'])}</td>"
        f"<td>{_e(a['status'])}</td><td>{_e(a['reason'])}</td></tr>"
        for a in summary["attention"][:ATTENTION_ROWS]
    )
    more = counts["attention"] - min(ATTENTION_ROWS, len(summary["attention"]))
    if more > 0:
        attention += f"<tr><td colspan=4>{more} more in summary.json</td></tr>"
    bits = spec("pdq").bits
    plots = (
        counts_svg(near, 0, max([*near, 32]), "PDQ distance of near matches", "distance")
        + counts_svg(clustered, 0, min(bits, max([*clustered, 32])),
                     "PDQ distance to nearest known-bad cluster member", "distance")
    )
    shown = len(top)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Triage report: {_e(case_name)}</title><style>{_CSS}</style></head>
<body><h1>Triage report: {_e(case_name)}</h1>
<p id="not-examined"><strong>{_e(not_examined_line(summary))}</strong></p>
<p id="banks-used">{_e(banks_line(summary))}</p>
<p>Paths, hashes, distances and categories only: this report never shows content.</p>
<h2>Summary</h2><table>{head}</table><div class="grid">{tables}</div>
<h2>Queue (top {shown} of {total})</h2>
<table><tr><th>rank</th><th>tier</th><th>score</th><th>path</th><th>category</th>
<th>cluster</th><th>reasons</th></tr>{qrows}</table>
<h2>Attention ({counts['attention']})</h2>
<table><tr><th>path</th><th>kind</th><th>status</th><th>reason</th></tr>{attention}</table>
<h2>Match distances</h2><div class="grid">{plots}</div>
</body></html>
"""


def write_report(path: Path, summary: Mapping[str, Any], rows: Iterable[QueueRow],
                 case_name: str) -> None:
    write_text_atomic(path, render_report(summary, rows, case_name))
