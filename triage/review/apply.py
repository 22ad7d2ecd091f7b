"""What stored decisions change in regenerated outputs (no re-hashing, only derive stages).

- a category decision is the item's confirmed category (source "analyst"), overriding the
  bank's and any suggestion, and is suggested to the unmatched members of its cluster;
- not-pertinent gives the item the lowest severity, so it sinks to the end of its tier;
- false-positive takes the item's bank matches (all, or the named entry) out of its reasons
  before clustering and scoring: they stay listed on its queue row (`discarded`), but no
  longer make it known-bad.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from triage.items import CaseItem
from triage.match import Reason, known_bad
from triage.review.casefile import DecisionIndex, StoredDecision
from triage.review.decisions import CATEGORY, FALSE_POSITIVE


def discarded(reason: Reason, decision: StoredDecision | None) -> bool:
    """Whether a false-positive decision takes this bank match out of the item's tier."""
    if decision is None or decision.decision.kind != FALSE_POSITIVE or reason.kind == "cluster":
        return False
    d = decision.decision
    return (d.bank is None or d.bank == reason.bank) and (d.entry is None or d.entry == reason.entry)


def apply_decision(item: CaseItem, decisions: DecisionIndex) -> CaseItem:
    """The item with its latest decision attached and falsely matched bank hits set aside."""
    s = decisions.find(item.record) if decisions else None
    if s is None:
        return item
    gone = tuple(r for r in item.reasons if discarded(r, s))
    return replace(item, decision=s, discarded=gone,
                   reasons=tuple(r for r in item.reasons if r not in gone))


def apply_decisions(items: Sequence[CaseItem], decisions: DecisionIndex) -> list[CaseItem]:
    return [apply_decision(i, decisions) for i in items]


@dataclass(frozen=True, slots=True)
class Graded:
    """An analyst-confirmed item, as propagation needs it."""

    ordinal: int
    path: str
    label: str
    severity: int
    vic_category: int | None


def graded_of(item: CaseItem) -> Graded | None:
    s = item.decision
    if s is None or s.decision.kind != CATEGORY or s.decision.category is None:
        return None
    c = s.decision.category
    return Graded(item.ordinal, item.record.path, c.label, c.severity, c.vic_category)


class _Nodes:
    """Node rows (PDQ codes) per owner ordinal, over the clustering arrays."""

    def __init__(self, owners: np.ndarray, codes: np.ndarray) -> None:
        self.order = np.argsort(owners, kind="stable")
        self.sorted = owners[self.order]
        self.codes = codes

    def of(self, ordinal: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.sorted, [ordinal, ordinal + 1])
        return np.asarray(self.codes[self.order[lo:hi]])

    def distance(self, a: int, b: int) -> int | None:
        ca, cb = self.of(a), self.of(b)
        if not len(ca) or not len(cb):
            return None
        xor = np.bitwise_xor(ca[:, None, :], cb[None, :, :])
        return int(np.unpackbits(xor, axis=-1).sum(axis=-1).min())


def analyst_suggestions(members: Sequence[Sequence[int] | np.ndarray], graded: Mapping[int, Graded],
                        skip: set[int], owners: np.ndarray,
                        codes: np.ndarray) -> dict[int, Reason]:
    """For each cluster holding analyst-confirmed items, a `cluster` reason for its other
    members (not graded, not known-bad: `skip`) naming the nearest confirmed one."""
    nodes: _Nodes | None = None
    out: dict[int, Reason] = {}
    for group in members:
        mine = [graded[int(o)] for o in group if int(o) in graded]
        if not mine:
            continue
        nodes = nodes or _Nodes(owners, codes)
        for o in (int(x) for x in group):
            if o in skip:
                continue
            found = [(d, g.ordinal, g) for g in mine if (d := nodes.distance(o, g.ordinal))
                     is not None]
            if not found:
                continue
            d, _, g = min(found, key=lambda f: f[:2])
            out[o] = Reason(kind="cluster", algo="pdq", bank=None, entry=None, distance=d,
                            category=g.label, vic_category=g.vic_category, via=g.path,
                            severity=g.severity)
    return out


def propagate(items: Sequence[CaseItem], owners: np.ndarray, codes: np.ndarray,
              members: Sequence[Sequence[int] | np.ndarray]) -> list[CaseItem]:
    """In-memory composition of `analyst_suggestions` (tests, small cases)."""
    graded = {g.ordinal: g for i in items if (g := graded_of(i)) is not None}
    skip = {i.ordinal for i in items if i.decision is not None or known_bad(i.reasons)}
    found = analyst_suggestions(members, graded, skip, owners, codes)
    return [replace(i, suggestion=found[i.ordinal]) if i.ordinal in found else i for i in items]
