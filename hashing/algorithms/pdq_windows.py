"""Sub-window PDQ: the PDQ of a fixed grid of crops of an image, so a crop of a media-bank
image lands near one of its windows (registry name `pdq_grid`; the query is a scan's PDQ).

PDQ is a global hash: its 64x64 sample grid follows the frame, so removing 5 % of the width
already moves most crops beyond the match radius (benchmarks/results/accuracy). A window only
helps when it nearly coincides with the crop, which is why the grid below is dense in offset
at each scale. It was chosen from the local-features benchmark's grid measurement
(`benchmarks/local_features.py`, "grid" table): recall of the crops 5-30 % per candidate grid
against the number of windows stored per bank image.
"""

from __future__ import annotations

import numpy as np

from hashing.algorithms.pdq import pdq_from_luma

# (scale of each side, offsets per axis): windows of `scale` x `scale` of the image, placed at
# `n` evenly spaced offsets along each axis (n x n windows per scale).
GRID: tuple[tuple[float, int], ...] = ((0.95, 3), (0.9, 3), (0.85, 4), (0.8, 4), (0.7, 5))
MIN_WINDOW_SIDE = 32  # smaller windows carry too little structure for a useful PDQ


def windows(width: int, height: int,
            grid: tuple[tuple[float, int], ...] = GRID) -> list[tuple[int, int, int, int]]:
    """The grid's windows as (x0, y0, x1, y1) pixel boxes of a `width` x `height` image."""
    out: list[tuple[int, int, int, int]] = []
    for scale, n in grid:
        w, h = round(width * scale), round(height * scale)
        if min(w, h) < MIN_WINDOW_SIDE:
            continue
        xs = np.linspace(0, width - w, n).round().astype(int)
        ys = np.linspace(0, height - h, n).round().astype(int)
        out.extend((int(x), int(y), int(x) + w, int(y) + h) for y in ys for x in xs)
    return out


def window_hashes(luma: np.ndarray,
                  grid: tuple[tuple[float, int], ...] = GRID) -> tuple[tuple[str, int], ...]:
    """(PDQ hex, quality) of every window of a float32/uint8 luma plane, in grid order."""
    arr = np.ascontiguousarray(luma, dtype=np.float32)
    h, w = arr.shape
    out = []
    for x0, y0, x1, y1 in windows(w, h, grid):
        res = pdq_from_luma(arr[y0:y1, x0:x1])
        out.append((res.hash, res.quality))
    return tuple(out)
