"""In-case near-duplicate clusters of the case's own PDQ hashes, and what they suggest.

Every image PDQ hash and every video frame hash (above the quality floor) is a node; nodes
within the policy's cluster radius are joined (HammingIndex range search of the case against
itself) and connected components (scipy) become clusters of records. An unknown file in a
cluster that also holds known-bad material gets a `cluster` reason pointing at its nearest
known-bad member, whose category becomes the suggested one: it may be new material of a
known series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hashing.codec import pack
from hashing.types import HashRecord
from index.hamming import HammingIndex
from triage.match import Reason, is_known_good, known_bad
from triage.policy import Policy


@dataclass(frozen=True, slots=True)
class Clusters:
    cluster_of: dict[int, str]  # record index -> cluster id (only clusters of 2+ records)
    suggested: dict[int, Reason]  # record index -> cluster reason for unknown members
    sizes: dict[str, int]


def _nodes(records: Sequence[HashRecord], policy: Policy) -> tuple[list[int], list[str]]:
    owners: list[int] = []
    hexes: list[str] = []
    for i, rec in enumerate(records):
        pdq = rec.hashes.get("pdq")
        if pdq and (rec.pdq_quality is None or rec.pdq_quality >= policy.min_quality):
            owners.append(i)
            hexes.append(pdq)
        for f in rec.pdq_frames or ():
            if f.quality >= policy.min_quality:
                owners.append(i)
                hexes.append(f.pdq)
    return owners, hexes


def _distances(mine: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each row of `others`, its smallest Hamming distance to any row of `mine`."""
    xor = np.bitwise_xor(mine[:, None, :], others[None, :, :])
    dist: np.ndarray = np.bitwise_count(xor).sum(axis=2, dtype=np.int64).min(axis=0)
    return dist


def cluster_records(records: Sequence[HashRecord], reasons: Sequence[Sequence[Reason]],
                    policy: Policy) -> Clusters:
    """Cluster ids are numbered by each cluster's first record, so they are stable per input."""
    empty = Clusters({}, {}, {})
    if not policy.cluster_enabled:
        return empty
    owners, hexes = _nodes(records, policy)
    if len(hexes) < 2:
        return empty
    codes = pack("pdq", hexes)
    lims, _, ids = HammingIndex(codes).range_search(codes, policy.cluster_radius)
    src = np.repeat(np.asarray(owners), np.diff(lims))
    dst = np.asarray(owners)[ids]
    n = len(records)
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for i in sorted(set(owners)):
        members.setdefault(int(labels[i]), []).append(i)
    groups = sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])
    cluster_of: dict[int, str] = {}
    sizes: dict[str, int] = {}
    node_rows: dict[int, list[int]] = {}
    for row, i in enumerate(owners):
        node_rows.setdefault(i, []).append(row)
    suggested: dict[int, Reason] = {}
    for k, group in enumerate(groups, start=1):
        cid = f"C{k:05d}"
        sizes[cid] = len(group)
        for i in group:
            cluster_of[i] = cid
        bad = [i for i in group if known_bad(reasons[i])]
        if not bad:
            continue
        bad_rows = np.asarray([r for b in bad for r in node_rows[b]])
        bad_owner = np.asarray([b for b in bad for _ in node_rows[b]])
        for i in group:
            if known_bad(reasons[i]) or is_known_good(reasons[i]):
                continue
            # The nearest known-bad member names the suggestion, so it can be checked.
            dist = _distances(codes[node_rows[i]], codes[bad_rows])
            best = int(np.argmin(dist))
            j = int(bad_owner[best])
            lead = known_bad(reasons[j])[0]
            suggested[i] = Reason(
                kind="cluster", algo="pdq", bank=lead.bank, entry=lead.entry,
                distance=int(dist[best]), category=lead.category, vic_category=lead.vic_category,
                series=lead.series, via=records[j].path,
            )
    return Clusters(cluster_of, suggested, sizes)
