"""The review queue: which items need a decision, in which tier, in what order.

A record enters the queue when it is media (image or video) or when it hit a known-bad
entry (an exact match on any file counts). Known-good records are left out and counted.
Within a tier, the more severe category ranks first (index.categories), then the closer match
(score 100 = exact digest, else 100 x (1 - distance / hash bits)). Cluster suggestions are
kept apart from confirmed categories; analysts' decisions (triage.review) override both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from hashing.registry import spec
from hashing.types import HashRecord, path_to_text
from index.categories import VIC
from triage.items import CaseItem
from triage.match import Reason, is_known_good, known_bad
from triage.policy import Policy
from triage.review.decisions import CATEGORY, NOT_PERTINENT

BANK, ANALYST = "bank", "analyst"
# the label a not-pertinent grade gives (Project VIC's, so exports carry code 5)
NOT_PERTINENT_LABEL = VIC.codes["5"].label


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
    severity: int | None = None  # of the confirmed or suggested category: ranks within a tier
    category_source: str | None = None  # BANK | ANALYST, for a confirmed category
    suggested_category: str | None = None  # from clustering: a lead, not a confirmation
    decision: str | None = None  # the analyst's decision kind, when graded
    ordinal: int = -1  # the item's position in the manifest
    score_basis: str | None = None  # how the score was computed, in words
    pdq: str | None = None  # the item's own PDQ hash and quality, for exports (not in to_dict)
    pdq_quality: int | None = None

    def to_dict(self) -> dict[str, Any]:
        text, raw_hex = path_to_text(self.path)
        out: dict[str, Any] = {
            "rank": self.rank, "tier": self.tier, "severity": self.severity,
            "score": self.score, "score_basis": self.score_basis, "path": text,
            "md5": self.md5, "sha1": self.sha1, "sha256": self.sha256,
            "media_type": self.media_type, "category": self.category,
            "category_source": self.category_source,
            "suggested_category": self.suggested_category, "decision": self.decision,
            "cluster": self.cluster, "reasons": [r.to_dict() for r in self.reasons],
        }
        if raw_hex is not None:  # a non-UTF-8 name, kept lossless as in the manifest
            out["path_bytes_hex"] = raw_hex
        return out


def is_media(rec: HashRecord) -> bool:
    return bool(rec.media_type) and str(rec.media_type).split("/")[0] in ("image", "video")


def score_basis(r: Reason) -> str:
    """The score's computation for one lead reason, e.g. `pdq distance 9 of 256: 96.48`."""
    if r.kind == "exact":
        return f"exact {r.algo} digest: 100"
    bits = spec(r.algo).bits
    return f"{r.kind} {r.algo} distance {r.distance} of {bits}: {_score(r)}"


def _score(r: Reason) -> float:
    """Match strength: 100 for an exact digest match, else 100 x (1 - distance / hash bits)."""
    if r.kind == "exact":
        return 100.0
    # a low-quality hash is low-confidence evidence: it ranks below near matches in its tier
    top = 50.0 if r.kind == "low_quality" else 100.0
    return round(top * (1.0 - r.distance / spec(r.algo).bits), 2)


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
    confirmed = bool(bad)
    category = lead.category if lead and confirmed else None
    vic = lead.vic_category if lead and confirmed else None
    severity = lead.severity if lead else None
    source = BANK if category is not None else None
    decision = item.decision.decision if item.decision else None
    if decision is not None and decision.kind == CATEGORY and decision.category is not None:
        category, severity, source = (decision.category.label, decision.category.severity,
                                      ANALYST)
        vic = decision.category.vic_category
    elif decision is not None and decision.kind == NOT_PERTINENT:
        category, severity, source, vic = NOT_PERTINENT_LABEL, 0, ANALYST, 5
    return QueueRow(
        rank=0, tier=tier, score=_score(lead) if lead else 0.0, path=rec.path,
        md5=rec.hashes.get("md5"), sha1=rec.hashes.get("sha1"), sha256=rec.hashes.get("sha256"),
        media_type=rec.media_type, category=category, cluster=item.cluster,
        reasons=tuple(r for r in (*mine, *item.discarded) if not r.known_good),
        vic_category=vic, size=rec.size, severity=severity, category_source=source,
        suggested_category=lead.category if lead and not confirmed else None,
        decision=decision.kind if decision else None, ordinal=item.ordinal,
        score_basis=score_basis(lead) if lead else None,
        pdq=rec.hashes.get("pdq"), pdq_quality=rec.pdq_quality,
    )


def rank_key(row: QueueRow) -> tuple[int, int, float, str]:
    """Queue order: tier, then the more severe category, then the closer match, then path."""
    return (row.tier, -(row.severity if row.severity is not None else -1), -row.score, row.path)


def build_queue(items: Iterable[CaseItem], policy: Policy) -> tuple[QueueRow, ...]:
    """The ranked queue of `items` (rank 1 first)."""
    rows = sorted((r for i in items if (r := queue_row(i, policy)) is not None), key=rank_key)
    return tuple(replace(row, rank=n) for n, row in enumerate(rows, start=1))
