"""Decisions kept in the case: CASE_DIR/decisions.jsonl, one line per decision with who/when.

An import replaces the file atomically with the old lines plus its own, so a crash leaves
either all of an import's decisions or none; the audit log gets one line per import. The
latest decision for an item wins; nothing is ever deleted, so the history stays readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hashing.types import HashRecord, path_to_text
from triage.audit import append_audit, tool_version, who
from triage.outputs import sha256_file, write_text_atomic
from triage.review.decisions import Decision

DECISIONS_NAME = "decisions.jsonl"


@dataclass(frozen=True, slots=True)
class StoredDecision:
    decision: Decision
    who: str
    at: str
    source: str  # the decisions file it came from
    source_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.decision.to_dict(), "who": self.who, "at": self.at,
                "source": self.source, "source_sha256": self.source_sha256}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoredDecision:
        return cls(Decision.from_dict(dict(d)), d["who"], d["at"], d["source"],
                   d["source_sha256"])


def load_decisions(case: Path) -> list[StoredDecision]:
    path = case / DECISIONS_NAME
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [StoredDecision.from_dict(json.loads(line)) for line in fh if line.strip()]


def decisions_digest(case: Path) -> str | None:
    """What regenerated outputs depend on (part of the scan's no-op fingerprint)."""
    path = case / DECISIONS_NAME
    return sha256_file(path) if path.exists() else None


def store_decisions(case: Path, decisions: Sequence[Decision], source: Path,
                    extra: Mapping[str, Any]) -> list[StoredDecision]:
    """Append `decisions` (all or none) and write the audit line; returns what was stored."""
    ident = who()
    at = datetime.now(UTC).isoformat(timespec="seconds")
    digest = sha256_file(source)
    user = f"{ident['user']}@{ident['host']}"
    new = [StoredDecision(d, user, at, str(source.resolve()), digest) for d in decisions]
    old = load_decisions(case)
    write_text_atomic(case / DECISIONS_NAME, "".join(
        json.dumps(s.to_dict(), sort_keys=True) + "\n" for s in [*old, *new]))
    counts: dict[str, int] = {}
    for d in decisions:
        counts[d.kind] = counts.get(d.kind, 0) + 1
    append_audit(case / "audit.jsonl", {
        "event": "review_import", "tool": "osec-triage", "version": tool_version(), **ident,
        "at": at, "file": str(source.resolve()), "file_sha256": digest,
        "decisions": len(decisions), "by_decision": dict(sorted(counts.items())), **extra,
    })
    return new


class DecisionIndex:
    """The latest decision naming each record, by its path or any of its digests."""

    def __init__(self, stored: Iterable[StoredDecision]) -> None:
        self._by: dict[tuple[str, str], tuple[int, StoredDecision]] = {}
        for order, s in enumerate(stored):
            self._by[(s.decision.key, s.decision.value)] = (order, s)

    def __bool__(self) -> bool:
        return bool(self._by)

    def find(self, rec: HashRecord) -> StoredDecision | None:
        hits = [self._by[k] for k in record_keys(rec) if k in self._by]
        return max(hits, key=lambda h: h[0])[1] if hits else None

    def for_records(self, records: Sequence[HashRecord]) -> dict[int, StoredDecision]:
        if not self._by:
            return {}
        return {i: s for i, rec in enumerate(records) if (s := self.find(rec)) is not None}


def record_keys(rec: HashRecord) -> list[tuple[str, str]]:
    keys = [("path", path_to_text(rec.path)[0])]
    keys += [(a, rec.hashes[a]) for a in ("md5", "sha1", "sha256") if rec.hashes.get(a)]
    return keys
