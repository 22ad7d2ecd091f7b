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
