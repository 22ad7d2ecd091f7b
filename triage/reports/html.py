"""report.html: the one self-contained page an analyst works from (no content, no network).

Case header (evidence, scan time, tool, banks with source and version, policy), a legend for
tiers, score, severity and reasons, counts that account for every manifest row, then the
queue per tier with sort, filters and search run by an inline script, the cluster view, the
attention list and titled histograms. Every row of the matched tiers is in the page; the
unmatched tier is cut at the policy's bound with a pointer to queue.csv, so a 10^6-item case
stays a page a browser opens in seconds.

The Content-Security-Policy allows nothing to load and only this script and style to run,
named by their SHA-256. Rows travel as one JSON data block (directories stored once); the
labels block carries the page's language, so switching language changes no data.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from hashing.i18n import N_, _, language
from hashing.registry import spec
from hashing.types import path_to_text
from index.categories import MAX_SEVERITY, builtin_labels
from triage.outputs import write_text_atomic
from triage.queue import QueueRow
from triage.reports.summary import banks_line, not_examined_line
from triage.reports.svg import counts_svg

ATTENTION_ROWS = 500  # the full list is in summary.json
CLUSTER_ROWS = 500
CLUSTER_MEMBERS = 8
COLUMNS = ("rank", "tier", "severity", "score", "dir", "name", "md5", "sha1", "category",
           "category_source", "suggested", "decision", "cluster", "reasons")
_JS = resources.files("triage.reports").joinpath("report.js").read_text(encoding="utf-8")
_CSS = resources.files("triage.reports").joinpath("report.css").read_text(encoding="utf-8")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


# Page text used inside f-strings (which the catalog extractor cannot read), marked here.
_PAGE_TEXT = (
    N_('Attention'),
    N_('Banks matched against'),
    N_('Case'),
    N_('Clusters'),
    N_('Counts'),
    N_('Every manifest row is counted once:'),
    N_('Histograms'),
    N_('In-case near-duplicate groups: members in the queue and the closest bank match among them.'),
    N_('Legend'),
    N_('Paths, hashes, distances and categories only: this report never shows content.'),
    N_('Queue'),
    N_('Recognised but not examined (encrypted, unreadable, unsupported or over a limit): never counted as clean.'),
    N_('Tier'),
    N_('all manifest rows'),
    N_('bank'),
    N_('category'),
    N_('next'),
    N_('of'),
    N_('other reason fields'),
    N_('path contains'),
    N_('path, hash, entry, category, cluster'),
    N_('previous'),
    N_('reason'),
    N_('reasons'),
    N_('reset'),
    N_('rows'),
    N_('rows matching'),
    N_('score'),
    N_('search'),
    N_('severity'),
    N_('tier'),
)


def _t(message: str) -> str:
    """A page text in the current language, HTML-escaped."""
    return _e(_(message))


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def csp() -> str:
    """Nothing may load; only this page's own script and style, named by hash, may run."""
    return (f"default-src 'none'; script-src 'sha256-{_sha256(_JS)}'; "
            f"style-src 'sha256-{_sha256(_CSS)}'; img-src 'none'; connect-src 'none'; "
            "base-uri 'none'; form-action 'none'")


def _json_block(element_id: str, value: Any) -> str:
    # "<" escaped so no value can close the block or open a tag
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


class _Pass:
    """One read of the ranked rows: the rows the page holds (the unmatched tier cut at the
    bound), per-cluster members and best bank match, and the histogram tallies, so a long
    queue costs the page no more than its bound."""

    def __init__(self, rows: Iterable[QueueRow], unmatched_tier: int, bound: int) -> None:
        self.shown: list[QueueRow] = []
        self.clusters: dict[str, _Cluster] = {}
        self.near: Counter[int] = Counter()
        self.clustered: Counter[int] = Counter()
        self.scores: Counter[int] = Counter()
        unmatched = 0
        for row in rows:
            if row.tier == unmatched_tier:
                unmatched += 1
            if row.tier != unmatched_tier or unmatched <= bound:
                self.shown.append(row)
            if row.score > 0:
                self.scores[int(row.score)] += 1
            for x in row.reasons:
                if x.kind == "cluster":
                    self.clustered[x.distance] += 1
                elif x.kind != "exact" and x.algo == "pdq" and x.bank:
                    self.near[x.distance] += 1
            if row.cluster is not None:
                self.clusters.setdefault(row.cluster, _Cluster()).add(row)


class _Cluster:
    def __init__(self) -> None:
        self.size = 0
        self.paths: list[str] = []
        self.best: tuple[int, int, str] | None = None

    def add(self, row: QueueRow) -> None:
        self.size += 1
        if len(self.paths) < CLUSTER_MEMBERS:
            self.paths.append(path_to_text(row.path)[0])
        for x in row.reasons:
            if x.kind != "cluster" and x.bank:
                found = (0 if x.kind == "exact" else 1, x.distance,
                         f"{x.bank}:{x.entry} {x.kind} {x.algo} d={x.distance} "
                         f"[{x.category or '-'}]")
                if self.best is None or found < self.best:
                    self.best = found


def row_data(rows: Sequence[QueueRow]) -> dict[str, Any]:
    """The JSON the script reads: one array per row (COLUMNS), directories stored once."""
    dirs: dict[str, int] = {}
    packed = []
    for r in rows:
        text = path_to_text(r.path)[0]
        cut = max(text.rfind("/"), text.rfind("!")) + 1
        d = dirs.setdefault(text[:cut], len(dirs))
        packed.append([r.rank, r.tier, r.severity, r.score, d, text[cut:], r.md5, r.sha1,
                       r.category, r.category_source, r.suggested_category, r.decision,
                       r.cluster, [x.to_dict() for x in r.reasons]])
    return {"columns": list(COLUMNS), "dirs": list(dirs), "rows": packed}


def _labels() -> dict[str, Any]:
    return {
        # built-in category labels in the page's language (the data keeps the canonical ones)
        "categories": {label: _(label) for label in builtin_labels()},
        "distance": _("distance"), "suggested": _("suggested"),
        "source": {"bank": _("bank"), "analyst": _("analyst")},
        "decision": {"category": _("graded by an analyst"),
                     "not-pertinent": _("graded not pertinent"),
                     "false-positive": _("bank match graded false positive")},
    }


def _table(headers: Sequence[str], body: str, empty: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    filler = f'<tr><td colspan="{len(headers)}">{_e(empty)}</td></tr>'
    return f"<table><tr>{head}</tr>{body or filler}</table>"


def _kv(pairs: Sequence[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                               for k, v in pairs) + "</table>"


def _header(case: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    policy = case.get("policy") or {}
    match = policy.get("match", {})
    good, bad, yes, no = _t("known-good"), _t("known-bad"), _t("yes"), _t("no")
    banks = "".join(
        f"<tr><td>{_e(b.get('name'))}</td><td>{_e(b.get('source') or '-')}</td>"
        f"<td>{_e(b.get('version') or '-')}</td><td class=n>{_e(b.get('entries'))}</td>"
        f"<td>{good if b.get('known_good') else bad}</td>"
        f"<td>{yes if b.get('enabled', True) else no}</td>"
        f"<td class=n>{_e(b.get('false_positives', 0))}</td></tr>"
        for b in case.get("banks", [])
    )
    facts = [
        (_("case"), case.get("name")),
        (_("evidence"), "; ".join(case.get("evidence_roots") or []) or "-"),
        (_("scan started"), case.get("started") or "-"),
        (_("scan finished"), case.get("ended") or "-"),
        (_("tool version"), f"osec-triage {case.get('tool_version') or '-'}"),
        (_("match radius"), ", ".join(f"{k} {v}" for k, v in match.get("radius", {}).items())),
        (_("PDQ quality floor"), match.get("min_quality")),
        (_("dihedral variants"), _("yes") if match.get("dihedral") else _("no")),
        (_("cluster radius"), (policy.get("cluster") or {}).get("radius")),
        (_("quarantine after false positives"),
         (policy.get("review") or {}).get("quarantine_false_positives")),
    ]
    return (f"<h2 id=\"case\">{_t('Case')}</h2>" + _kv(facts)
            + f"<h3>{_t('Banks matched against')}</h3>"
            + _table([_("bank"), _("source"), _("version"), _("entries"), _("kind"),
                      _("enabled"), _("false positives")], banks, _("none")))


def _legend(summary: Mapping[str, Any]) -> str:
    names = summary["tier_names"]
    meaning = {
        "possible_new": _("unknown media in a cluster with known-bad material: possibly new "
                          "material of a known series (the category is only a suggestion)"),
        "near": _("perceptual near match to a known-bad bank entry"),
        "exact": _("exact digest match to a known-bad bank entry"),
        "unmatched": _("other media that matched nothing"),
    }
    tiers = "".join(f"<dt>{_t('tier')} {_e(t)} ({_e(k)})</dt><dd>{_e(meaning.get(k, ''))}</dd>"
                    for t, k in names.items())
    reasons = [
        ("exact", _("the file's digest (MD5, SHA-1, SHA-256) equals a bank entry's")),
        ("near", _("the perceptual hash is within the match radius of a bank hash")),
        ("dihedral", _("a rotated or mirrored version of the file matched (the variant says which)")),
        ("video", _("enough of the video's frames matched a bank item's frames")),
        ("frame", _("one frame or page of the file matched (the frame field says which)")),
        ("cluster", _("near a known-bad file of this case (via names it): a lead, not a match")),
    ]
    rs = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in reasons)
    severity = _("0 (not pertinent) to {max} (most severe), from the normalised category; "
                 "within a tier rows rank by severity, then score").format(max=MAX_SEVERITY)
    score = _("match strength: 100 for an exact digest match, else 100 x (1 - distance / hash "
              "bits); for PDQ, {bits} bits").format(bits=spec("pdq").bits)
    category = _("confirmed by a bank entry or an analyst (source in brackets); a cluster "
                 "suggestion is shown apart, in italics, and counted apart")
    other = _("shown as name=value as the match recorded them (variant, frames, transforms)")
    return f"""<h2 id="legend">{_t('Legend')}</h2><dl class="legend">{tiers}
<dt>{_t('severity')}</dt><dd>{_e(severity)}</dd>
<dt>{_t('score')}</dt><dd>{_e(score)}</dd>
<dt>{_t('category')}</dt><dd>{_e(category)}</dd>
{rs}<dt>{_t('other reason fields')}</dt><dd>{_e(other)}</dd></dl>"""


def _accounting(summary: Mapping[str, Any]) -> str:
    acc = summary["counts"].get("accounting", {})
    labels = {
        "queued": _("in the queue"), "known_good": _("known-good (left out)"),
        "not_examined": _("not examined (see the attention list)"),
        "other": _("not media, or skipped (links, special files)"),
    }
    body = "".join(f'<tr><td>{_e(labels.get(k, k))}</td><td class="n" id="acc-{_e(k)}">{v}</td></tr>'
                   for k, v in acc.items())
    body += (f'<tr><th>{_t("all manifest rows")}</th>'
             f'<th class="n" id="total-files">{summary["files"]}</th></tr>')
    return f"<table>{body}</table>"


def _count_table(title: str, key: str, counts: Mapping[str, int],
                 names: Mapping[str, str] | None = None) -> str:
    rows = "".join(
        f'<tr><td>{_e(_(k) if key in ("category", "suggested_category") else k)}'
        f'{" (" + _e(names[k]) + ")" if names and k in names else ""}</td>'
        f'<td class="n" id="count-{_e(key)}-{_e(k)}">{v}</td></tr>'
        for k, v in counts.items()
    )
    return f"<div><h3>{_e(title)}</h3>" + _table([title, _("files")], rows, _("none")) + "</div>"


def _filters(summary: Mapping[str, Any]) -> str:
    tiers = "".join(f'<option value="{_e(t)}">{_e(t)} ({_e(k)})</option>'
                    for t, k in summary["tier_names"].items())
    everything = _e(_("all"))
    return f"""<div class="filters" role="search">
<label>{_t('tier')}<select id="f-tier"><option value="">{everything}</option>{tiers}</select></label>
<label>{_t('category')}<select id="f-category"><option value="">{everything}</option></select></label>
<label>{_t('bank')}<select id="f-bank"><option value="">{everything}</option></select></label>
<label>{_t('reason')}<select id="f-reason"><option value="">{everything}</option></select></label>
<label>{_t('path contains')}<input id="f-path" type="text" autocomplete="off"></label>
<label>{_t('search')}<input id="f-search" type="search" autocomplete="off"
 placeholder="{_t('path, hash, entry, category, cluster')}"></label>
<button type="button" id="f-reset">{_t('reset')}</button>
<span>{_t('rows matching')}: <b id="filtered-total"></b></span></div>"""


def _tier_sections(summary: Mapping[str, Any], shown: Sequence[QueueRow],
                   unmatched_tier: int, bound: int) -> str:
    totals = summary["counts"]["tier"]
    in_page: dict[str, int] = {}
    for r in shown:
        in_page[str(r.tier)] = in_page.get(str(r.tier), 0) + 1
    sort = [("rank", _("rank")), ("severity", _("severity")), ("score", _("score")),
            ("path", _("path")), ("category", _("category")), ("cluster", _("cluster"))]
    head = "".join(f'<th><button type="button" class="sort" data-sort="{k}" '
                   f'data-label="{_e(v)}">{_e(v)}</button></th>' for k, v in sort)
    head += f"<th>{_t('reasons')}</th><th>MD5</th>"
    out = []
    for tier, key in summary["tier_names"].items():
        total = totals.get(tier, 0)
        note = ""
        if int(tier) == unmatched_tier and total > in_page.get(tier, 0):
            note = ('<p class="note" id="bound-note">' + _e(_(
                "This page holds the first {shown} of {total} rows of this tier (the bound is "
                "{bound}); every row is in queue.csv and queue.jsonl.").format(
                    shown=in_page.get(tier, 0), total=total, bound=bound)) + "</p>")
        out.append(f"""<section class="tier" data-tier="{_e(tier)}" id="tier-{_e(tier)}">
<h3>{_t('Tier')} {_e(tier)}: {_e(key)} ({total})</h3>{note}
<p class="pager">{_t('rows')} <span class="range"></span> {_t('of')} <span class="shown"></span>
<button type="button" class="prev">&lsaquo; {_t('previous')}</button>
<button type="button" class="next">{_t('next')} &rsaquo;</button></p>
<table class="queue"><thead><tr>{head}</tr></thead><tbody></tbody></table></section>""")
    return "".join(out)


def _clusters(clusters: Mapping[str, _Cluster]) -> str:
    ranked = sorted(clusters.items(),
                    key=lambda kv: (kv[1].best is None, -kv[1].size, kv[0]))
    body = []
    for cid, c in ranked[:CLUSTER_ROWS]:
        listed = "<br>".join(f"<code>{_e(p)}</code>" for p in c.paths)
        if c.size > len(c.paths):
            listed += "<br>" + _e(_("and {n} more").format(n=c.size - len(c.paths)))
        body.append(f'<tr><td><button type="button" class="linkish" data-cluster="{_e(cid)}">'
                    f"{_e(cid)}</button></td><td class=n>{c.size}</td>"
                    f"<td>{_e(c.best[2] if c.best else '-')}</td><td>{listed}</td></tr>")
    more = len(ranked) - CLUSTER_ROWS
    if more > 0:
        text = _("{n} more clusters in queue.csv").format(n=more)
        body.append(f'<tr><td colspan="4">{_e(text)}</td></tr>')
    return _table([_("cluster"), _("members in the queue"), _("best bank match"), _("members")],
                  "".join(body), _("none"))


def _attention(summary: Mapping[str, Any]) -> str:
    items = summary["attention"]
    body = "".join(
        f"<tr><td><code>{_e(a['path'])}</code></td><td>{_e(a['kind'])}</td>"
        f"<td>{_e(a['status'])}</td><td>{_e(a['reason'])}</td></tr>"
        for a in items[:ATTENTION_ROWS]
    )
    more = len(items) - ATTENTION_ROWS
    if more > 0:
        text = _("{n} more in summary.json").format(n=more)
        body += f'<tr><td colspan="4">{_e(text)}</td></tr>'
    return _table([_("path"), _("kind"), _("status"), _("reason")], body, _("none"))


def _figure(svg: str, title: str) -> str:
    return f"<figure><figcaption>{_e(title)}</figcaption>{svg}</figure>"


def _plots(p: _Pass) -> str:
    bits = spec("pdq").bits
    t1 = _("PDQ distance of near matches to bank entries")
    t2 = _("PDQ distance to the nearest known-bad member of the cluster")
    t3 = _("Match score of queued files")
    files = _("files")
    return "".join([
        _figure(counts_svg(p.near, 0, max([*p.near, 32]), t1, _("PDQ distance (bits)"),
                           ylabel=files), t1),
        _figure(counts_svg(p.clustered, 0, min(bits, max([*p.clustered, 32])), t2,
                           _("PDQ distance (bits)"), ylabel=files), t2),
        _figure(counts_svg(p.scores, 0, 100, t3, _("score"), ylabel=files), t3),
    ])


def render_report(summary: Mapping[str, Any], rows: Iterable[QueueRow],
                  case: Mapping[str, Any], bound: int) -> str:
    """The page for the ranked `rows`, read once; `bound` caps the unmatched tier's rows in
    it (all rows are in queue.csv)."""
    counts = summary["counts"]
    unmatched_tier = int(next((t for t, k in summary["tier_names"].items()
                               if k == "unmatched"), -1))
    one = _Pass(rows, unmatched_tier, bound)
    shown = one.shown
    overview = [("queue", _("queued"), counts["queue"]),
                ("known_good", _("known-good"), counts["known_good"]),
                ("attention", _("attention"), counts["attention"]),
                ("clusters", _("clusters"), counts["clusters"]),
                ("refuted", _("weak matches refuted by local features"),
                 counts.get("refuted_weak_matches", 0))]
    head = "".join(f'<tr><th>{_e(label)}</th><td class="n" id="total-{_e(k)}">{v}</td></tr>'
                   for k, label, v in overview)
    tables = "".join([
        _count_table(_("Queue tiers"), "tier", counts["tier"], summary["tier_names"]),
        _count_table(_("Confirmed categories"), "category", counts["category"]),
        _count_table(_("Suggested categories (clusters)"), "suggested_category",
                     counts.get("suggested_category", {})),
        _count_table(_("Analysts' decisions"), "decision", counts.get("decision", {})),
        _count_table(_("Status"), "status", counts["status"]),
        _count_table(_("Media types"), "media_type", counts["media_type"]),
        _count_table(_("Bank hits"), "bank", counts["bank"]),
    ])
    title = _("Triage report: {case}").format(case=case.get("name"))
    return f"""<!DOCTYPE html>
<html lang="{language()}"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp()}">
<meta name="referrer" content="no-referrer">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body><h1>{_e(title)}</h1>
<p id="not-examined"><strong>{_e(not_examined_line(summary))}</strong></p>
<p id="banks-used">{_e(banks_line(summary))}</p>
<p class="note">{_t('Paths, hashes, distances and categories only: this report never shows content.')}</p>
<nav><a href="#case">{_t('Case')}</a> · <a href="#legend">{_t('Legend')}</a> ·
<a href="#counts">{_t('Counts')}</a> · <a href="#queue">{_t('Queue')}</a> ·
<a href="#clusters">{_t('Clusters')}</a> · <a href="#attention">{_t('Attention')}</a> ·
<a href="#plots">{_t('Histograms')}</a></nav>
{_header(case, summary)}
{_legend(summary)}
<h2 id="counts">{_t('Counts')}</h2>
<p>{_t('Every manifest row is counted once:')}</p>{_accounting(summary)}
<table>{head}</table><div class="grid">{tables}</div>
<h2 id="queue">{_t('Queue')}</h2>{_filters(summary)}
{_tier_sections(summary, shown, unmatched_tier, bound)}
<h2 id="clusters">{_t('Clusters')}</h2>
<p class="note">{_t('In-case near-duplicate groups: members in the queue and the closest bank match among them.')}</p>
{_clusters(one.clusters)}
<h2 id="attention">{_t('Attention')} ({counts['attention']})</h2>
<p class="note">{_t('Recognised but not examined (encrypted, unreadable, unsupported or over a limit): never counted as clean.')}</p>
{_attention(summary)}
<h2 id="plots">{_t('Histograms')}</h2><div class="grid">{_plots(one)}</div>
{_json_block("queue-data", row_data(shown))}
{_json_block("labels", _labels())}
<script>{_JS}</script>
</body></html>
"""


def write_report(path: Path, summary: Mapping[str, Any], rows: Iterable[QueueRow],
                 case: Mapping[str, Any], bound: int) -> None:
    write_text_atomic(path, render_report(summary, rows, case, bound))
