"""The review queue: which records need a decision, in which tier, in what order; and its
two renderings, queue.jsonl and queue.csv.

A record enters the queue when it is media (image or video) or when it hit a known-bad
entry (an exact match on any file counts). Known-good records are left out and counted.
Within a tier, closer matches rank first (score 100 = exact, falling with distance).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hashing.output import neutralise_cell
from hashing.registry import spec
from hashing.types import HashRecord, path_to_text
from triage.cluster import Clusters
from triage.match import Reason, is_known_good, known_bad
from triage.outputs import atomic_text
from triage.policy import Policy

COLUMNS = ("rank", "tier", "score", "path", "md5", "sha1", "sha256", "media_type",
           "category", "cluster", "reasons")


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


@dataclass(frozen=True, slots=True)
class Queue:
    rows: tuple[QueueRow, ...]
    known_good: tuple[int, ...]  # record indexes left out as known-good


def is_media(rec: HashRecord) -> bool:
    return bool(rec.media_type) and str(rec.media_type).split("/")[0] in ("image", "video")


def _score(r: Reason) -> float:
    if r.kind == "exact":
        return 100.0
    return round(100.0 * (1.0 - r.distance / spec(r.algo).bits), 2)


def build_queue(records: Sequence[HashRecord], reasons: Sequence[Sequence[Reason]],
                clusters: Clusters, policy: Policy) -> Queue:
    staged: list[tuple[int, float, str, QueueRow]] = []
    good: list[int] = []
    for i, rec in enumerate(records):
        mine = list(reasons[i])
        if is_known_good(mine):
            good.append(i)
            continue
        bad = known_bad(mine)
        # An undecodable file still has digests: a known-bad hit queues it; otherwise it is
        # in the attention list, not the queue.
        if not bad and (rec.status != "hashed" or not is_media(rec)):
            continue
        suggestion = clusters.suggested.get(i)
        if bad:
            tier = policy.tiers["exact" if bad[0].kind == "exact" else "near"]
            lead: Reason | None = bad[0]
        elif suggestion is not None:
            tier = policy.tiers["possible_new"]
            lead = suggestion
            mine.append(suggestion)
        else:
            tier = policy.tiers["unmatched"]
            lead = None
        score = _score(lead) if lead else 0.0
        row = QueueRow(
            rank=0, tier=tier, score=score, path=rec.path, md5=rec.hashes.get("md5"),
            sha1=rec.hashes.get("sha1"), sha256=rec.hashes.get("sha256"),
            media_type=rec.media_type, category=lead.category if lead else None,
            cluster=clusters.cluster_of.get(i),
            reasons=tuple(r for r in mine if not r.known_good),
            vic_category=lead.vic_category if lead else None, size=rec.size,
        )
        staged.append((tier, -score, rec.path, row))
    staged.sort(key=lambda s: s[:3])
    rows = tuple(replace(row, rank=n) for n, (_, _, _, row) in enumerate(staged, start=1))
    return Queue(rows, tuple(good))


def write_queue_jsonl(path: Path, queue: Queue) -> None:
    with atomic_text(path) as fh:
        for row in queue.rows:
            fh.write(json.dumps(row.to_dict()) + "\n")


def write_queue_csv(path: Path, queue: Queue) -> None:
    with atomic_text(path) as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for row in queue.rows:
            d = row.to_dict()
            d["reasons"] = json.dumps(d["reasons"])  # CSV keeps the printable path only
            writer.writerow(neutralise_cell("" if d[c] is None else str(d[c])) for c in COLUMNS)
