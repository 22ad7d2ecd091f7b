"""The review queue: which items need a decision, in which tier, in what order.

A record enters the queue when it is media (image or video) or when it hit a known-bad
entry (an exact match on any file counts). Known-good records are left out and counted.
Within a tier, closer matches rank first (score 100 = exact, falling with distance).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from hashing.registry import spec
from hashing.types import HashRecord, path_to_text
from triage.items import CaseItem
from triage.match import Reason, is_known_good, known_bad
from triage.policy import Policy


@dataclass(frozen=True, slots=True)
class QueueRow:
    rank: int
    tier: int
    score: float
    path: str
    md5: str | None
    sha1: str | None
    sha256: str | None
    media_type: str | None
    category: str | None
    cluster: str | None
    reasons: tuple[Reason, ...]
    vic_category: int | None = None
    size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        text, raw_hex = path_to_text(self.path)
        out: dict[str, Any] = {
            "rank": self.rank, "tier": self.tier, "score": self.score, "path": text,
            "md5": self.md5, "sha1": self.sha1, "sha256": self.sha256,
            "media_type": self.media_type, "category": self.category, "cluster": self.cluster,
            "reasons": [r.to_dict() for r in self.reasons],
        }
        if raw_hex is not None:  # a non-UTF-8 name, kept lossless as in the manifest
            out["path_bytes_hex"] = raw_hex
        return out


def is_media(rec: HashRecord) -> bool:
    return bool(rec.media_type) and str(rec.media_type).split("/")[0] in ("image", "video")


def _score(r: Reason) -> float:
    if r.kind == "exact":
        return 100.0
    return round(100.0 * (1.0 - r.distance / spec(r.algo).bits), 2)


def queue_row(item: CaseItem, policy: Policy) -> QueueRow | None:
    """The item's unranked queue row, or None when it stays out of the queue."""
    rec = item.record
    mine = list(item.reasons)
    if is_known_good(mine):
        return None
    bad = known_bad(mine)
    # An undecodable file still has digests: a known-bad hit queues it; otherwise it is
    # in the attention list, not the queue.
    if not bad and (rec.status != "hashed" or not is_media(rec)):
        return None
    if bad:
        tier = policy.tiers["exact" if bad[0].kind == "exact" else "near"]
        lead: Reason | None = bad[0]
    elif item.suggestion is not None:
        tier = policy.tiers["possible_new"]
        lead = item.suggestion
        mine.append(item.suggestion)
    else:
        tier = policy.tiers["unmatched"]
        lead = None
    return QueueRow(
        rank=0, tier=tier, score=_score(lead) if lead else 0.0, path=rec.path,
        md5=rec.hashes.get("md5"), sha1=rec.hashes.get("sha1"), sha256=rec.hashes.get("sha256"),
        media_type=rec.media_type, category=lead.category if lead else None,
        cluster=item.cluster, reasons=tuple(r for r in mine if not r.known_good),
        vic_category=lead.vic_category if lead else None, size=rec.size,
    )


def rank_key(row: QueueRow) -> tuple[int, float, str]:
    """Queue order: tier, then closer matches first, then path."""
    return (row.tier, -row.score, row.path)


def build_queue(items: Iterable[CaseItem], policy: Policy) -> tuple[QueueRow, ...]:
    """The ranked queue of `items` (rank 1 first)."""
    rows = sorted((r for i in items if (r := queue_row(i, policy)) is not None), key=rank_key)
    return tuple(replace(row, rank=n) for n, row in enumerate(rows, start=1))
