"""`BinaryIndex`: what every Hamming-distance index over packed binary codes offers.

The layout follows FAISS's binary indexes so results can be compared directly, with one
difference handled inside each implementation: the radius is INCLUSIVE (distance <= radius).
Within a query, matches are ordered by (distance, id).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

# distance reported in knn slots that have no code (fewer than k codes indexed); id is -1 there
PAD_DISTANCE = int(np.iinfo(np.int32).max)


@runtime_checkable
class BinaryIndex(Protocol):
    @property
    def ntotal(self) -> int:
        """Number of indexed codes; ids run from 0 to ntotal - 1 in insertion order."""
        ...

    nbytes: int  # bytes per code

    def range_search(
        self, queries: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`queries: uint8[Q, nbytes]` -> `(lims int64[Q+1], distances int32[K], ids int64[K])`;
        query q's matches (distance <= radius) are `[lims[q]:lims[q+1]]`, by (distance, id)."""
        ...

    def knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`(distances int32[Q, k], ids int64[Q, k])` by (distance, id); when fewer than k codes
        exist, the remaining slots hold id -1 and distance `PAD_DISTANCE`."""
        ...
