"""summary.json: counts per tier, category, media type, status and bank, plus stage timings,
and the attention list (errors an investigator needs to know about).

The counts are accumulated one item and one queue row at a time (`SummaryCounts`), so the
summary of a case costs the same memory whether it is read whole or in chunks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hashing.i18n import _, ngettext
from hashing.types import path_to_text
from triage.items import CaseItem
from triage.match import is_known_good
from triage.outputs import atomic_text, write_text_atomic
from triage.policy import TIER_KEYS, Policy
from triage.queue import QueueRow


def attention_entry(item: CaseItem) -> dict[str, Any] | None:
    """The attention-list entry of an error row (undecodable media, encrypted or corrupt
    archive member, unreadable file) or of an archive that could not be read completely."""
    rec = item.record
    if rec.status != "error" and not item.archive_error and not rec.unexamined:
        return None
    return {"path": path_to_text(rec.path)[0], "kind": rec.kind, "status": rec.status,
            "media_type": rec.media_type, "reason": rec.error or rec.unexamined or rec.reason}


def not_examined_line(summary: Mapping[str, Any]) -> str:
    """The line the CLI summary and the report open with."""
    # a summary.json written before the count existed still has its attention count
    n = summary.get("not_examined", summary["counts"]["attention"])
    if not n:
        return _("All recognised items were examined (0 could not be examined).")
    return ngettext("{n} item could not be examined (encrypted, unsupported, over a limit or "
                    "unreadable): see the attention list.",
                    "{n} items could not be examined (encrypted, unsupported, over a limit or "
                    "unreadable): see the attention list.", n).format(n=n)


def banks_line(summary: Mapping[str, Any]) -> str:
    """Which banks the scan matched against, or that it was a hashing-only inventory."""
    banks = summary.get("banks") or []
    if not banks:
        return _("banks used: none (hashing-only inventory: nothing was matched)")
    return _("banks used: {banks}").format(banks="; ".join(
        _("{name} (source {source}, version {version}, {entries} entries)").format(
            name=b["name"], source=b["source"] or "-", version=b["version"] or "-",
            entries=b["entries"]) for b in banks))


# Attention entries a summary holds in memory; summary.json gets all of them, streamed.
ATTENTION_KEPT = 1000


def _sorted(c: Counter[str]) -> dict[str, int]:
    return dict(sorted(c.items()))


class SummaryCounts:
    """The summary's counts, fed every item (manifest order) and every queue row (rank order)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.files = 0
        self.status: Counter[str] = Counter()
        self.kind: Counter[str] = Counter()
        self.media_type: Counter[str] = Counter()
        self.bank: Counter[str] = Counter()
        self.tier: Counter[str] = Counter()
        self.category: Counter[str] = Counter()  # confirmed (bank or analyst) only
        self.suggested: Counter[str] = Counter()  # cluster suggestions, counted apart
        self.decision: Counter[str] = Counter()
        # attention items not (yet) queued nor known-good: memory follows the attention list
        self.unexamined: set[int] = set()
        self.known_good = 0
        self.clustered = 0
        self.queue = 0
        self.attention = 0
        self.attention_kept: list[dict[str, Any]] = []
        # weak hash matches to media-bank items that their local features did not verify
        # (`triage.local_match`): dropped from the items, so counted here by the matcher
        self.refuted_weak_matches = 0

    def add_item(self, item: CaseItem) -> dict[str, Any] | None:
        """Count `item`; returns its attention entry, if it has one, for the caller to keep."""
        rec = item.record
        self.files += 1
        self.status[rec.status] += 1
        self.kind[rec.kind] += 1
        self.media_type[rec.media_type or "none"] += 1
        for bank in {r.bank for r in item.reasons if r.bank}:
            self.bank[bank] += 1
        self.known_good += is_known_good(item.reasons)
        self.clustered += item.cluster is not None
        entry = attention_entry(item)
        if entry is not None:
            self.attention += 1
            if len(self.attention_kept) < ATTENTION_KEPT:
                self.attention_kept.append(entry)
            if not is_known_good(item.reasons):  # each row in one bucket only
                self.unexamined.add(item.ordinal)
        return entry

    def add_row(self, row: QueueRow) -> None:
        self.queue += 1
        self.tier[str(row.tier)] += 1
        self.unexamined.discard(row.ordinal)  # a queued item counts as queued
        if row.category:
            self.category[row.category] += 1
        if row.suggested_category:
            self.suggested[row.suggested_category] += 1
        if row.decision:
            self.decision[row.decision] += 1

    def accounting(self) -> dict[str, int]:
        """Each manifest row in exactly one bucket, so the buckets add up to the manifest."""
        queued = self.queue
        unexamined = len(self.unexamined)
        return {"queued": queued, "known_good": self.known_good, "not_examined": unexamined,
                "other": self.files - queued - self.known_good - unexamined}

    def summary(self, clusters: int, run: Mapping[str, Any], timings: Mapping[str, float],
                banks: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """`not_examined` comes first on purpose: what could not be looked at is the first
        thing an analyst must read, since "unmatched" does not cover it."""
        tier_names = {n: k for k, n in self.policy.tiers.items()}
        return {
            "not_examined": self.attention,
            "files": self.files,
            "banks": [dict(b) for b in banks],
            "counts": {
                "status": _sorted(self.status),
                "kind": _sorted(self.kind),
                "media_type": _sorted(self.media_type),
                "tier": {str(n): self.tier.get(str(n), 0) for n in sorted(tier_names)},
                "category": _sorted(self.category),
                "suggested_category": _sorted(self.suggested),
                "decision": _sorted(self.decision),
                "bank": _sorted(self.bank),
                "queue": self.queue,
                "known_good": self.known_good,
                "attention": self.attention,
                "clusters": clusters,
                "clustered_files": self.clustered,
                "refuted_weak_matches": self.refuted_weak_matches,
                "accounting": self.accounting(),
            },
            "tier_names": {str(n): tier_names[n] for n in sorted(tier_names)},
            "tier_order": list(TIER_KEYS),
            "run": dict(run),
            "timings": {k: round(v, 4) for k, v in timings.items()},
            "attention": list(self.attention_kept),
        }


def stable_view(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary without what changes between identical scans (timings, run counters)."""
    return {k: v for k, v in summary.items() if k not in ("timings", "run")}


def write_summary(path: Path, summary: Mapping[str, Any],
                  attention: Iterable[Mapping[str, Any]] | None = None) -> None:
    """Write `summary` as indented JSON; with `attention`, that list (read once, streamed)
    replaces the summary's own, in the text `json.dumps(..., indent=2)` would give."""
    if attention is None:
        write_text_atomic(path, json.dumps(summary, indent=2) + "\n")
        return
    head = json.dumps({**summary, "attention": []}, indent=2)
    assert head.endswith('"attention": []\n}'), "attention must be the summary's last key"
    with atomic_text(path) as fh:
        fh.write(head[:-len("[]\n}")])
        n = 0
        for n, entry in enumerate(attention, start=1):
            fh.write(("[\n    " if n == 1 else ",\n    ")
                     + json.dumps(entry, indent=2).replace("\n", "\n    "))
        fh.write("\n  ]\n}\n" if n else "[]\n}\n")
