"""In-case near-duplicate clusters of the case's own PDQ hashes, and what they suggest.

Every image PDQ hash and every video frame hash (above the quality floor) is a node; nodes
within the policy's cluster radius are joined, and so are the nodes of one record (a video's
frames); the connected components become clusters of records. An unknown file in a cluster that
also holds known-bad material gets a `cluster` reason pointing at its nearest known-bad member,
whose category becomes the suggested one: it may be new material of a known series.

Identical hashes are one node (their pairs are all within any radius), and the range search of
the case against itself runs in blocks whose pairs are merged into a union-find forest and
dropped, so memory stays at one block even when thousands of files are near-duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from hashing.codec import pack
from index.hamming import HammingIndex
from triage.cluster_kernels import assign_leaders, join_via_leaders, roots, union_pairs
from triage.cluster_spill import ClusterSpill, SpilledGraph
from triage.items import CaseItem
from triage.match import Reason, is_known_good, known_bad
from triage.policy import Policy

# Unique hashes queried per range search: bounds the pairs held at once to this many times the
# largest group of near-duplicates.
QUERY_BLOCK = 2048
# Above this share of unique hashes leading their own group, the leader scheme saves nothing.
LEADER_SHARE = 0.5
# Unassigned hashes searched per leader-assignment step: small, because a query that a leader
# found earlier in the same step is searched for nothing.
ASSIGN_BLOCK = 256
# Hashes given leaders before judging whether the case has enough near-duplicates to pay.
PROBE_NODES = 4096


@dataclass(frozen=True, slots=True)
class NodeClusters:
    """Clusters over item ordinals: `members[k]` are the sorted ordinals of cluster k + 1
    (numbered by first ordinal, only clusters of 2+ items), and `nearest` maps each unknown
    member of a cluster holding known-bad items to `(distance, nearest known-bad ordinal)`."""

    members: tuple[np.ndarray, ...]
    nearest: dict[int, tuple[int, int]]


def cluster_id(number: int) -> str:
    return f"C{number:05d}"


def pdq_nodes(item: CaseItem, min_quality: int) -> list[str]:
    """The PDQ hashes an item contributes as nodes: its image hash and its video frames."""
    rec = item.record
    out = []
    pdq = rec.hashes.get("pdq")
    if pdq and (rec.pdq_quality is None or rec.pdq_quality >= min_quality):
        out.append(pdq)
    out.extend(f.pdq for f in rec.pdq_frames or () if f.quality >= min_quality)
    return out


def node_rows(items: Iterable[CaseItem], min_quality: int) -> tuple[list[int], list[str]]:
    """`(owners, hexes)`: every node of `items` (`pdq_nodes`) with the ordinal of its item."""
    owners: list[int] = []
    hexes: list[str] = []
    for item in items:
        for h in pdq_nodes(item, min_quality):
            owners.append(item.ordinal)
            hexes.append(h)
    return owners, hexes


def unique_components(codes: np.ndarray, radius: int,
                      block: int = QUERY_BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse identical rows of `codes` (uint8[n, nbytes]) and join unique rows within
    `radius`: `(unique uint8[u, nbytes], inverse int64[n], parent int64[u])`, row r being
    unique node `inverse[r]`, and `parent` a union-find forest whose components are those of
    the graph "distance <= radius".

    Near-duplicates first get leaders: every node lies within `radius // 2` of its leader (a
    real edge), so a leader's group is joined without a pairwise search. An edge (u, v)
    between groups puts u within `radius + radius // 2` of v's leader, so each node is
    searched against the leaders only and checked against the members of the groups found,
    skipping groups already in its component. A dense group of k near-duplicates then costs
    about k checks instead of k^2 pairs. When near-duplicates are few (most nodes lead), the
    plain search of every node at `radius` is cheaper and is used instead.
    """
    uniq, inverse = np.unique(codes, axis=0, return_inverse=True)
    n = uniq.shape[0]
    parent = np.arange(n, dtype=np.int64)
    index = HammingIndex(uniq)
    cover = radius // 2
    leader = np.full(n, -1, dtype=np.int64)
    led = 0
    distinct = False
    for lo in range(0, n, ASSIGN_BLOCK):
        todo = np.flatnonzero(leader[lo:lo + ASSIGN_BLOCK] < 0) + lo
        if todo.size:
            lims, _, ids = index.range_search(uniq[todo], cover)
            assign_leaders(leader, todo, lims, ids)
            led += int(np.count_nonzero(leader[todo] == todo))
        # Mostly distinct hashes so far: leaders would save nothing, so stop paying for them.
        hi = min(n, lo + ASSIGN_BLOCK)
        if hi >= PROBE_NODES and led > hi * LEADER_SHARE:
            distinct = True
            break
    nodes = np.arange(n, dtype=np.int64)
    leaders = np.flatnonzero(leader == nodes)
    if distinct or leaders.size > n * LEADER_SHARE:
        for lo in range(0, n, block):
            lims, _, ids = index.range_search(uniq[lo:lo + block], radius)
            src = np.repeat(nodes[lo:lo + lims.size - 1], np.diff(lims))
            union_pairs(parent, src, ids)
    else:
        union_pairs(parent, nodes, leader)
        members = np.lexsort((nodes != leader, leader)).astype(np.int64)  # each leader first
        member_start = np.r_[np.searchsorted(leader[members], leaders), n].astype(np.int64)
        lead_index = HammingIndex(uniq[leaders])
        words = np.ascontiguousarray(uniq).view(np.uint64)
        for lo in range(0, n, block):
            lims, _, ids = lead_index.range_search(uniq[lo:lo + block], radius + cover)
            join_via_leaders(parent, words, nodes[lo:lo + lims.size - 1], lims, ids,
                             member_start, members, np.int64(radius))
    return uniq, inverse.reshape(-1).astype(np.int64), parent


def _nearest_bad(codes: np.ndarray, comp: np.ndarray, bad_owner: np.ndarray,
                 queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query node, its nearest known-bad node in its own component: `(distance,
    owner)` where `bad_owner[u]` is the smallest known-bad record holding node u (-1 if none).
    Ties go to the smaller owner, as the record-order scan this replaces did."""
    dist = np.zeros(queries.size, dtype=np.int64)
    owner = np.zeros(queries.size, dtype=np.int64)
    bad = np.flatnonzero(bad_owner >= 0)
    # By component, then owner: knn orders equal distances by index id, so within a
    # component's slice the ids follow the owners' record order.
    bad = bad[np.lexsort((bad_owner[bad], comp[bad]))]
    bad_comp = comp[bad]
    q_order = np.argsort(comp[queries], kind="stable")
    q_comp = comp[queries][q_order]
    comps, q_starts = np.unique(q_comp, return_index=True)
    q_ends = np.r_[q_starts[1:], q_comp.size]
    b_lo = np.searchsorted(bad_comp, comps, side="left")
    b_hi = np.searchsorted(bad_comp, comps, side="right")
    for k in range(comps.size):
        mine = bad[b_lo[k]:b_hi[k]]
        at = q_order[q_starts[k]:q_ends[k]]
        d, ids = HammingIndex(codes[mine]).knn(codes[queries[at]], 1)
        dist[at] = d[:, 0]
        owner[at] = bad_owner[mine[ids[:, 0]]]
    return dist, owner


def cluster_nodes(owners: np.ndarray, codes: np.ndarray, bad: np.ndarray, good: np.ndarray,
                  radius: int, spill: ClusterSpill | None = None) -> NodeClusters:
    """Cluster nodes (`codes[r]` belonging to item `owners[r]`, owners nondecreasing): the
    components of "distance <= radius" joined with "same item", over items. `bad` and `good`
    hold the ordinals of known-bad and known-good items; an unknown item sharing a cluster
    with a known-bad one gets its nearest known-bad member, ties to the smaller ordinal.

    With `spill`, more nodes than `spill.block_nodes` are deduplicated and searched through
    files in `spill.folder` (`triage.cluster_spill`): the same clusters, bounded memory."""
    if codes.shape[0] < 2:
        return NodeClusters((), {})
    if spill is not None and codes.shape[0] > spill.block_nodes:
        with SpilledGraph(spill) as graph:
            return _clusters(owners, *graph.components(codes, radius, QUERY_BLOCK), bad, good)
    return _clusters(owners, *unique_components(codes, radius), bad, good)


def _clusters(owners: np.ndarray, uniq_codes: np.ndarray, inverse: np.ndarray,
              parent: np.ndarray, bad: np.ndarray, good: np.ndarray) -> NodeClusters:
    """`cluster_nodes` from the components of the unique nodes (`parent`, a forest)."""
    # A record's own nodes (a video's frames) belong together.
    first_row = np.unique(owners, return_index=True)[1]
    union_pairs(parent, inverse, inverse[first_row[np.searchsorted(owners[first_row], owners)]])
    comp = roots(parent)
    rec_ids = owners[first_row]
    rec_comp = comp[inverse[first_row]]
    order = np.lexsort((rec_ids, rec_comp))
    rec_ids, rec_comp = rec_ids[order], rec_comp[order]
    starts = np.flatnonzero(np.r_[True, rec_comp[1:] != rec_comp[:-1]])
    groups = [g for g in np.split(rec_ids, starts[1:]) if g.size > 1]
    groups.sort(key=lambda g: int(g[0]))
    bad_members: list[np.ndarray] = []
    asking: list[np.ndarray] = []
    for group in groups:
        is_bad = np.isin(group, bad)
        if is_bad.any():
            bad_members.append(group[is_bad])
            asking.append(group[~is_bad & ~np.isin(group, good)])
    ask = np.concatenate(asking) if asking else np.zeros(0, np.int64)
    if not ask.size:
        return NodeClusters(tuple(groups), {})
    bad_owner = np.full(parent.size, np.iinfo(np.int64).max, dtype=np.int64)
    is_bad_row = np.isin(owners, np.concatenate(bad_members))
    np.minimum.at(bad_owner, inverse[is_bad_row], owners[is_bad_row])
    bad_owner[bad_owner == np.iinfo(np.int64).max] = -1
    ask_rows = np.flatnonzero(np.isin(owners, ask))
    ask_nodes, ask_inv = np.unique(inverse[ask_rows], return_inverse=True)
    node_dist, node_owner = _nearest_bad(uniq_codes, comp, bad_owner, ask_nodes)
    # Per record, the smallest (distance, owner) over its own nodes.
    row_rec = owners[ask_rows]
    row_dist = node_dist[ask_inv.reshape(-1)]
    row_owner = node_owner[ask_inv.reshape(-1)]
    best = np.lexsort((row_owner, row_dist, row_rec))
    first = best[np.r_[True, row_rec[best][1:] != row_rec[best][:-1]]]
    nearest = {i: (d, j) for i, d, j in zip(row_rec[first].tolist(), row_dist[first].tolist(),
                                            row_owner[first].tolist(), strict=True)}
    return NodeClusters(tuple(groups), nearest)


def suggestion(lead: Reason, distance: int, via: str) -> Reason:
    """The `cluster` reason of an unknown item whose nearest known-bad member is the item at
    `via` with strongest bank hit `lead`: it names that member so it can be checked."""
    return Reason(kind="cluster", algo="pdq", bank=lead.bank, entry=lead.entry,
                  distance=distance, category=lead.category, vic_category=lead.vic_category,
                  series=lead.series, via=via, severity=lead.severity)


def cluster_items(items: Sequence[CaseItem], policy: Policy) -> list[CaseItem]:
    """`items` (`items[k].ordinal == k`) with `cluster` and `suggestion` set; cluster ids are
    numbered by each cluster's first item, so they are stable for the same case. PDQ clusters
    are joined by the items' local-feature links (`triage.local_match`), as the scan does."""
    from triage.local_match import CaseLinker, link_reason, links_enabled, merge_links

    if not policy.cluster_enabled:
        return list(items)
    owners, hexes = node_rows(items, policy.min_quality)
    bad = np.asarray([i.ordinal for i in items if known_bad(i.reasons)], dtype=np.int64)
    good = np.asarray([i.ordinal for i in items if is_known_good(i.reasons)], dtype=np.int64)
    members: list[list[int]] = []
    nearest: dict[int, tuple[int, int]] = {}
    if len(hexes) >= 2:
        found = cluster_nodes(np.asarray(owners, dtype=np.int64), pack("pdq", hexes), bad,
                              good, policy.cluster_radius)
        members = [m.tolist() for m in found.members]
        nearest = found.nearest
    with CaseLinker() as linker:
        if links_enabled(policy):
            linker.add(items)
        pairs = linker.pairs(set(bad.tolist()))
    groups, linked = merge_links(members, pairs, set(bad.tolist()),
                                 set(good.tolist()), set(nearest))
    out = list(items)
    for k, group in enumerate(groups, start=1):
        for i in group:
            out[i] = replace(out[i], cluster=cluster_id(k))
    for i, (d, j) in nearest.items():
        lead = known_bad(items[j].reasons)[0]
        out[i] = replace(out[i], suggestion=suggestion(lead, d, items[j].record.path))
    for i, (j, t) in linked.items():
        lead = known_bad(items[j].reasons)[0]
        out[i] = replace(out[i], suggestion=link_reason(lead, items[j].record.path, t))
    return out
