"""match -> cluster -> score over the case database in bounded chunks, then the writers.

The case's rows are read back from `case.sqlite` in manifest order, `chunk_rows` at a time,
as `CaseItem`s numbered by ordinal. Each stage keeps its findings in the scan's `Scratch`
store rather than in memory, so what is held at once is one chunk plus clustering's working
state, which gets half the budget: up to `ClusterSpill.block_nodes` unique PDQ nodes in memory
(about 175 bytes a node; documents contribute none), beyond that spilled to files in the case
directory (`triage.cluster_spill`). The results
are the same, byte for byte, as running each stage over the whole case in memory
(`tests/test_streaming.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from hashing.algorithms.local_features import DESCRIPTOR_BYTES, KEYPOINT_BYTES, QUERY_KEYPOINTS
from hashing.registry import spec
from index.media_bank import MediaMatcher
from triage.casedb import CaseDB
from triage.cluster import cluster_id, cluster_nodes, node_rows, suggestion
from triage.cluster_spill import ClusterSpill
from triage.items import CaseItem
from triage.local_match import (
    CaseLinker,
    link_reason,
    links_enabled,
    local_features_needed,
    media_match,
    merge_links,
)
from triage.match import Banks, Reason, is_known_good, known_bad, match_records
from triage.policy import Policy
from triage.queue import queue_row
from triage.reports.html import write_report
from triage.reports.queue import write_queue_csv, write_queue_jsonl
from triage.reports.summary import SummaryCounts, write_summary
from triage.reports.vics import write_vics
from triage.review.apply import Graded, analyst_suggestions, apply_decision, graded_of
from triage.review.casefile import DecisionIndex, load_decisions
from triage.scratch import Scratch
from triage.stages import StageTimer

DEFAULT_MEMORY_BUDGET = 256 << 20
ITEM_BYTES = 8 << 10  # a generous bound on one item in a chunk (record, reasons, queue row)
# What an image's local features add while the match stage holds its chunk: the bytes read
# back from the case and the arrays decoded from them, at QUERY_KEYPOINTS keypoints of 48
# bytes each, and 1 KiB for the blob's header and the objects. Sized at ITEM_BYTES alone, a
# 10^4-image scan held 8,192 images' features at once: 840 MB of the 1,047 MB its process
# reached, against a 256 MB budget.
FEATURE_ITEM_BYTES = 2 * QUERY_KEYPOINTS * (DESCRIPTOR_BYTES + KEYPOINT_BYTES) + 1024
MIN_CHUNK, MAX_CHUNK = 1, 50_000


def chunk_rows(memory_budget: int, features: bool = False) -> int:
    """Items per chunk: a quarter of the budget, leaving the rest to clustering and SQLite
    (`features`: the chunk carries the items' local features)."""
    per_item = ITEM_BYTES + (FEATURE_ITEM_BYTES if features else 0)
    return max(MIN_CHUNK, min(MAX_CHUNK, memory_budget // 4 // per_item))


def _chunks(db: CaseDB, run: int, size: int,
            features: bool = False) -> Iterator[list[CaseItem]]:
    """The run's items in manifest order, `size` at a time (with their local features when
    asked: only matching reads them)."""
    if features:
        rows = (CaseItem.from_row(n, row.record, f) for n, (row, f)
                in enumerate(zip(db.rows(run), db.features(run), strict=True)))
    else:
        rows = (CaseItem.from_row(n, row.record) for n, row in enumerate(db.rows(run)))
    while chunk := list(islice(rows, size)):
        yield chunk


@dataclass(slots=True)
class _Reviewed:
    """What the analysts' decisions tell the cluster stage: confirmed items (to propagate)
    and every decided item (never given a suggestion over its own grade)."""

    graded: dict[int, Graded] = field(default_factory=dict)
    decided: set[int] = field(default_factory=set)


def _match(db: CaseDB, run: int, memory_budget: int, banks: Banks, policy: Policy,
           scratch: Scratch, media: MediaMatcher | None, linker: CaseLinker,
           decisions: DecisionIndex, reviewed: _Reviewed
           ) -> tuple[np.ndarray, np.ndarray, int]:
    """Reasons and known-bad leads into the scratch store, PDQ nodes into its spill, image
    features into `linker`; returns the ordinals of known-bad and of known-good items (what
    clustering needs of the hits) and the count of weak matches local features refuted. Bank
    hits an analyst graded false positive do not make an item known-bad."""
    bad: list[int] = []
    good: list[int] = []
    refuted = 0
    linking = links_enabled(policy)
    features = local_features_needed(policy, media)
    size = chunk_rows(memory_budget, features)
    for chunk in _chunks(db, run, size, features=features):
        reasons = match_records([i.record for i in chunk], banks, policy)
        if media is not None:
            matched = media_match([replace(i, reasons=rs) for i, rs in
                                   zip(chunk, reasons, strict=True)], media, policy)
            chunk, refuted = matched.items, refuted + matched.refuted
            reasons = [i.reasons for i in chunk]
        if linking:
            linker.add(chunk)
        hits = [(i.ordinal, rs) for i, rs in zip(chunk, reasons, strict=True) if rs]
        scratch.put_reasons(hits)  # as matched: scoring sets the false ones aside again
        if decisions:
            effective = dict(hits)
            for item, rs in zip(chunk, reasons, strict=True):
                decided = apply_decision(replace(item, reasons=rs), decisions)
                if decided.decision is not None:
                    reviewed.decided.add(item.ordinal)
                    if (g := graded_of(decided)) is not None:
                        reviewed.graded[item.ordinal] = g
                    if rs:
                        effective[item.ordinal] = decided.reasons
            hits = list(effective.items())
        leads = []
        for ordinal, rs in hits:
            strongest = known_bad(rs)
            if strongest:
                bad.append(ordinal)
                leads.append((ordinal, strongest[0], chunk[ordinal - chunk[0].ordinal].record.path))
            elif is_known_good(rs):
                good.append(ordinal)
        scratch.put_leads(leads)
        if policy.cluster_enabled:
            scratch.nodes.add(*node_rows(chunk, policy.min_quality))
    return np.asarray(bad, dtype=np.int64), np.asarray(good, dtype=np.int64), refuted


def _cluster(policy: Policy, scratch: Scratch, bad: np.ndarray, good: np.ndarray,
             linker: CaseLinker, reviewed: _Reviewed, spill: ClusterSpill) -> int:
    """Cluster membership and suggestions into the scratch store; returns the cluster count.
    An analyst's confirmed category is suggested to its cluster's unmatched members, ahead of
    a bank-based suggestion.

    PDQ near-duplicate clusters first; then the case's images are linked by local features
    (`triage.local_match`), which merges clusters and suggests unknown items that contain or
    are contained in a known-bad one."""
    if not policy.cluster_enabled:
        return 0
    owners, codes = scratch.nodes.arrays(spec("pdq").nbytes)
    found = cluster_nodes(owners, codes, bad, good, policy.cluster_radius, spill)
    pairs = linker.pairs(set(bad.tolist())) if links_enabled(policy) else []
    groups, linked = merge_links([m.tolist() for m in found.members], pairs,
                                 set(bad.tolist()), set(good.tolist()), set(found.nearest))
    scratch.put_clusters((int(i), k) for k, members in enumerate(groups, start=1)
                         for i in members)
    suggested: dict[int, Reason] = {}
    for i, (d, j) in found.nearest.items():
        lead, via = scratch.lead(j)
        suggested[i] = suggestion(lead, d, via)
    for i, (j, t) in linked.items():
        lead, via = scratch.lead(j)
        suggested[i] = link_reason(lead, via, t)
    if reviewed.graded:
        skip = reviewed.decided | {int(o) for o in bad}
        suggested.update(analyst_suggestions(groups, reviewed.graded, skip, owners, codes))
    scratch.put_suggestions(sorted(suggested.items(), key=lambda kv: kv[0]))
    return len(groups)


def _score(db: CaseDB, run: int, size: int, policy: Policy, scratch: Scratch,
           decisions: DecisionIndex) -> SummaryCounts:
    """Each item whole again (record + findings): counted, and its queue row and attention
    entry into the scratch store."""
    counts = SummaryCounts(policy)
    for chunk in _chunks(db, run, size):
        lo = chunk[0].ordinal
        reasons, clusters, suggestions = scratch.findings(lo, lo + len(chunk))
        rows = []
        attention = []
        for item in chunk:
            o = item.ordinal
            c = clusters.get(o)
            item = replace(item, reasons=reasons.get(o, ()), suggestion=suggestions.get(o),
                           cluster=cluster_id(c) if c is not None else None)
            item = apply_decision(item, decisions)
            entry = counts.add_item(item)
            if entry is not None:
                attention.append((o, entry))
            row = queue_row(item, policy)
            if row is not None:
                counts.add_row(row)
                rows.append((o, row))
        scratch.put_queue(rows)
        scratch.put_attention(attention)
    return counts


def derive_and_write(case: Path, db: CaseDB, run: int, banks: Banks, policy: Policy,
                     run_info: dict[str, Any], timer: StageTimer,
                     memory_budget: int = DEFAULT_MEMORY_BUDGET,
                     used_banks: Sequence[Mapping[str, Any]] = (),
                     media: MediaMatcher | None = None,
                     case_info: Mapping[str, Any] | None = None,
                     extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """match -> cluster -> score -> write, with the analysts' decisions stored in the case
    applied; returns the summary (its attention list cut to `ATTENTION_KEPT` entries;
    summary.json holds them all). `used_banks` (name, source, version, entries) are listed
    in the summary and the report; `case_info` is the report header and VICS provenance;
    `extra` adds top-level summary keys (the scan's `matching` notes)."""
    size = chunk_rows(memory_budget)
    info = dict(case_info or {"name": case.name, "policy": policy.to_dict()})
    decisions = DecisionIndex(load_decisions(case))
    reviewed = _Reviewed()
    with Scratch(case) as scratch, CaseLinker(case) as linker:
        with timer.stage("match"):
            bad, good, refuted = _match(db, run, memory_budget, banks, policy, scratch, media, linker,
                               decisions, reviewed)
        with timer.stage("cluster"):
            clusters = _cluster(policy, scratch, bad, good, linker, reviewed,
                                ClusterSpill.for_budget(case, memory_budget))
        with timer.stage("score"):
            counts = _score(db, run, size, policy, scratch, decisions)
        with timer.stage("write"):
            write_queue_jsonl(case / "queue.jsonl", scratch.ranked())
            write_queue_csv(case / "queue.csv", scratch.ranked())
            write_vics(case / "export.vics.json", scratch.ranked(), info)
        timer.add("total", timer.elapsed())
        counts.refuted_weak_matches = refuted
        summary = counts.summary(clusters, run_info, timer.seconds, used_banks)
        if extra:  # the attention list stays last (write_summary streams it there)
            tail = {"attention": summary.pop("attention")} if "attention" in summary else {}
            summary = {**summary, **extra, **tail}
        write_summary(case / "summary.json", summary, scratch.attention())
        write_report(case / "report.html", summary, scratch.ranked(), info,
                     policy.report_unmatched_rows)
    return summary

