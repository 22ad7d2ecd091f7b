"""The per-item value the derive stages carry: one manifest row and what was found about it.

A scan's manifest rows are read back from the case database in manifest order; each becomes a
`CaseItem` whose `ordinal` is its position in that order. Matching fills `reasons`,
clustering `cluster` and `suggestion`, analysts' grades `decision`; scoring and the reports read the item as a whole, so
no stage keeps a list that must stay aligned with another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hashing.registry import SPECS
from hashing.types import HashRecord
from triage.match import Reason
from triage.review.casefile import StoredDecision

ALL_ALGORITHMS = tuple(SPECS)  # a scan hashes whatever the banks hold


@dataclass(frozen=True, slots=True)
class CaseItem:
    ordinal: int  # position in manifest order within this scan
    record: HashRecord
    archive_error: bool = False  # an archive the walk could not read completely
    reasons: tuple[Reason, ...] = ()  # bank hits, strongest first
    cluster: str | None = None  # in-case near-duplicate cluster of 2+ items
    suggestion: Reason | None = None  # a `cluster` reason for an unknown item near known-bad
    # serialised local features of an image (sensitive: read by matching, never written out)
    features: bytes | None = field(default=None, repr=False, compare=False)
    decision: StoredDecision | None = None  # an analyst's latest grade of this item
    discarded: tuple[Reason, ...] = ()  # bank hits the analyst graded false positive

    @classmethod
    def from_row(cls, ordinal: int, row: Mapping[str, Any],
                 features: bytes | None = None) -> CaseItem:
        """The item of one stored manifest row (`HashRecord.to_dict()` plus scan flags)."""
        return cls(ordinal, HashRecord.from_dict(row, ALL_ALGORITHMS),
                   archive_error=bool(row.get("archive_error")), features=features)
