"""summary.json: counts per tier, category, media type, status and bank, plus stage timings,
and the attention list (errors an investigator needs to know about)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hashing.types import HashRecord, path_to_text
from triage.cluster import Clusters
from triage.match import Reason
from triage.outputs import write_text_atomic
from triage.policy import TIER_KEYS, Policy
from triage.queue import Queue


def attention_items(records: Sequence[HashRecord], archive_errors: set[int]) -> list[dict[str, Any]]:
    """Error rows (undecodable media, encrypted or corrupt archive members, unreadable files)
    and archives that could not be read completely."""
    out = []
    for i, rec in enumerate(records):
        if rec.status == "error" or i in archive_errors:
            out.append({
                "path": path_to_text(rec.path)[0], "kind": rec.kind, "status": rec.status,
                "media_type": rec.media_type, "reason": rec.error or rec.reason,
            })
    return out


def _sorted(c: Counter[str]) -> dict[str, int]:
    return dict(sorted(c.items()))


def build_summary(
    records: Sequence[HashRecord], reasons: Sequence[Sequence[Reason]], queue: Queue,
    clusters: Clusters, attention: Sequence[Mapping[str, Any]], policy: Policy,
    run: Mapping[str, Any], timings: Mapping[str, float],
) -> dict[str, Any]:
    tier_names = {n: k for k, n in policy.tiers.items()}
    bank_hits: Counter[str] = Counter()
    for rs in reasons:
        for bank in {r.bank for r in rs if r.bank}:
            bank_hits[bank] += 1
    tiers = Counter(str(r.tier) for r in queue.rows)
    return {
        "files": len(records),
        "counts": {
            "status": _sorted(Counter(r.status for r in records)),
            "kind": _sorted(Counter(r.kind for r in records)),
            "media_type": _sorted(Counter(r.media_type or "none" for r in records)),
            "tier": {str(n): tiers.get(str(n), 0) for n in sorted(tier_names)},
            "category": _sorted(Counter(r.category for r in queue.rows if r.category)),
            "bank": _sorted(bank_hits),
            "queue": len(queue.rows),
            "known_good": len(queue.known_good),
            "attention": len(attention),
            "clusters": len(clusters.sizes),
            "clustered_files": len(clusters.cluster_of),
        },
        "tier_names": {str(n): tier_names[n] for n in sorted(tier_names)},
        "tier_order": list(TIER_KEYS),
        "run": dict(run),
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "attention": list(attention),
    }


def stable_view(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary without what changes between identical scans (timings, run counters)."""
    return {k: v for k, v in summary.items() if k not in ("timings", "run")}


def write_summary(path: Path, summary: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(summary, indent=2, sort_keys=False) + "\n")
