"""numba kernels for in-case clustering: a union-find over node ids (numpy + numba only).

Hand-written because scipy's `connected_components` needs the whole edge list at once, and a
case of many near-duplicates has far more edges (pairs within the radius) than nodes; merging
each block of pairs into a forest as it arrives keeps memory at one block.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _find(parent: np.ndarray, x: np.int64) -> np.int64:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression keeps later finds near O(1)
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@njit(cache=True, nogil=True)
def union_pairs(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Join `a[k]` and `b[k]` for every k in the forest `parent` (int64[n], in place).

    The smaller root becomes the parent, so a component's root is its smallest node id.
    """
    for k in range(a.shape[0]):
        ra = _find(parent, a[k])
        rb = _find(parent, b[k])
        if ra < rb:
            parent[rb] = ra
        elif rb < ra:
            parent[ra] = rb


@njit(cache=True, nogil=True)
def roots(parent: np.ndarray) -> np.ndarray:
    """Each node's root (its component's smallest node id)."""
    out = np.empty_like(parent)
    for x in range(parent.shape[0]):
        out[x] = _find(parent, np.int64(x))
    return out


@njit(cache=True, nogil=True)
def assign_leaders(leader: np.ndarray, queries: np.ndarray, lims: np.ndarray,
                   ids: np.ndarray) -> None:
    """Greedy cover, in query order: a query with no leader yet leads itself and every node
    of its range result (`ids[lims[k]:lims[k + 1]]`) that has none. `leader` is int64[n],
    -1 for none, updated in place."""
    for k in range(queries.shape[0]):
        q = queries[k]
        if leader[q] >= 0:
            continue
        leader[q] = q
        for t in range(lims[k], lims[k + 1]):
            if leader[ids[t]] < 0:
                leader[ids[t]] = q


@njit(cache=True, nogil=True)
def _popcount(x: np.uint64) -> np.uint64:
    # SWAR popcount: numba cannot compile np.bitwise_count; LLVM turns this into POPCNT.
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(cache=True, nogil=True)
def _within(words: np.ndarray, a: np.int64, b: np.int64, radius: np.int64) -> bool:
    d = np.uint64(0)
    for w in range(words.shape[1]):
        d += _popcount(words[a, w] ^ words[b, w])
    return bool(np.int64(d) <= radius)


@njit(cache=True, nogil=True)
def join_via_leaders(parent: np.ndarray, words: np.ndarray, queries: np.ndarray,
                     lims: np.ndarray, ids: np.ndarray, member_start: np.ndarray,
                     members: np.ndarray, radius: np.int64) -> None:
    """For each query node and each candidate group `g` of its range result
    (`ids[lims[k]:lims[k + 1]]`), join the query with the group's members
    (`members[member_start[g]:member_start[g + 1]]`, the first of them its leader) when any
    member is within `radius` of it; groups already in the query's component are skipped
    without computing a distance. `words` is uint64[n, W]."""
    for k in range(queries.shape[0]):
        q = queries[k]
        for t in range(lims[k], lims[k + 1]):
            g = ids[t]
            lead = members[member_start[g]]
            if _find(parent, q) == _find(parent, lead):
                continue
            for s in range(member_start[g], member_start[g + 1]):
                if _within(words, q, members[s], radius):
                    ra = _find(parent, q)
                    rb = _find(parent, lead)
                    if ra < rb:
                        parent[rb] = ra
                    else:
                        parent[ra] = rb
                    break
