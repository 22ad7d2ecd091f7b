"""In-case near-duplicate clusters of the case's own PDQ hashes, and what they suggest.

Every image PDQ hash and every video frame hash (above the quality floor) is a node; nodes
within the policy's cluster radius are joined (HammingIndex range search of the case against
itself) and connected components (scipy) become clusters of records. An unknown file in a
cluster that also holds known-bad material gets a `cluster` reason pointing at the nearest
known-bad member: it may be new material of a known series.
"""

from __future__ import annotations

from collections import Counter
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


def _min_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Smallest Hamming distance between any row of `a` and any row of `b`."""
    xor = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return int(np.unpackbits(xor, axis=2).sum(axis=2).min())


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
        for i in group:
            if known_bad(reasons[i]) or is_known_good(reasons[i]):
                continue
            mine = codes[node_rows[i]]
            dist, j = min((_min_distance(mine, codes[node_rows[b]]), b) for b in bad)
            strongest = known_bad(reasons[j])[0]
            # The suggested category is the cluster's most common known-bad category;
            # the nearest known-bad member is named so the suggestion can be checked.
            votes = Counter(known_bad(reasons[b])[0].category for b in bad)
            category = sorted(votes.items(), key=lambda kv: (-kv[1], str(kv[0])))[0][0]
            suggested[i] = Reason(
                kind="cluster", algo="pdq", bank=strongest.bank, entry=strongest.entry,
                distance=dist, category=category, vic_category=strongest.vic_category,
                series=strongest.series, via=records[j].path,
            )
    return Clusters(cluster_of, suggested, sizes)
