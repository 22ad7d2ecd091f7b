"""Series of near-duplicate codes inside a bank: found once when an index is built, searched
through one representative each (`HammingIndex`'s third exact method).

A partner list of 2M PDQ hashes made of 20k pictures x 100 variants is not uniform: each
variant keeps most 22-bit substrings of its picture's hash, so multi-index hashing finds every
variant of a nearby series once per table and checks each again and again. Here such groups
are taken out of the multi-index tables: a code that shares a substring value with at least
`min_bucket` other codes (a bucket far fuller than uniform codes ever fill) is joined to them
when it is also within 5/16 of the bits of them (80 of 256: uniform codes lie 128 +- 8 apart);
each resulting group of `min_bucket` codes or more becomes a series with a majority-vote
representative and a `reach` (its largest member distance), capped so that a group joined by a
chance collision does not grow a reach that would make every query scan it. The codes left
over stay in an ordinary index. Whatever the grouping, the search is exact: it only skips what
the triangle inequality proves to be out of range.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil, log2

import numba
import numpy as np

from index import series_kernels as sk
from index.threading import kernel_lock

_MAX_WIDTH = 24  # one count table of 2^24 int32 = 64 MiB while grouping
_MIN_WIDTH = 16
# Minimum bucket fill (and series size) taken as a series. Widths are chosen so uniform codes
# fill a bucket with <= 0.5 codes on average; Poisson(0.5) reaches 8 about once in 10^9.
_MIN_BUCKET = 8
# Minimum share of the codes in series before the layer is worth its representatives' scan.
_MIN_SHARE = 0.10


@dataclass(frozen=True, slots=True)
class SeriesLayer:
    """Grouped codes: series `s` has representative `reps[s]` (`uint64[S, W]`), members
    `member_ids[member_start[s]:member_start[s+1]]` (ascending) at distances `member_dist` from
    it, and `reach[s]` = the largest of those; `rest_ids` (ascending) are the ungrouped codes.
    `skew` is how much fuller than uniform the buckets are that a query drawn from the codes
    meets (1.0 = uniform), measured on the grouping substrings."""

    reps: np.ndarray
    reach: np.ndarray
    member_start: np.ndarray
    member_ids: np.ndarray
    member_dist: np.ndarray
    rest_ids: np.ndarray
    skew: float

    @property
    def nseries(self) -> int:
        return int(self.reps.shape[0])

    @property
    def nmembers(self) -> int:
        return int(self.member_ids.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.reps.nbytes + self.reach.nbytes + self.member_start.nbytes
                   + self.member_ids.nbytes + self.member_dist.nbytes + self.rest_ids.nbytes)


def grouping_layout(n: int, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Substring starts and widths used to find series among `n` codes of `nbits` bits."""
    width = min(_MAX_WIDTH, max(_MIN_WIDTH, ceil(log2(max(2 * n, 2)))))
    m = max(1, round(nbits / width))
    base, extra = divmod(nbits, m)
    widths = [min(base + 1, 32)] * extra + [min(base, 32)] * (m - extra)
    starts = [sum(widths[:j]) for j in range(m)]
    return np.array(starts, dtype=np.int64), np.array(widths, dtype=np.int64)


def find_series(words: np.ndarray, nbits: int, min_bucket: int = _MIN_BUCKET,
                min_share: float = _MIN_SHARE, force: bool = False
                ) -> tuple[SeriesLayer | None, float]:
    """Group `words: uint64[N, W]` into series: `(layer, skew)`, the layer None when fewer than
    `min_share` of the codes fall in series (unless `force`: tests use it on small sets); `skew`
    as in `SeriesLayer`, measured either way."""
    n = words.shape[0]
    starts, widths = grouping_layout(n, nbits)
    parent = np.arange(n, dtype=np.int64)
    sq = np.zeros(starts.size)
    # tables a thread each, a thread's worth at a time: link arrays are 4 bytes per code each
    step = max(1, numba.get_num_threads())
    done = 0
    with kernel_lock():
        for j in range(0, starts.size, step):
            target, sq[j:j + step] = sk.heavy_links(words, starts[j:j + step],
                                                     widths[j:j + step], min_bucket,
                                                     nbits * 5 // 16)
            sk.union_links(target, parent)
            done = j + step
            # uniform codes link almost nothing: after the first tables, stop looking
            if not force and j == 0 and (target >= 0).sum() < min_share * n / 10:
                break
            del target
        root = sk.roots(parent)
    uniform = n / np.exp2(widths[:done].astype(np.float64))
    # the other codes in a code's own buckets, against what uniform codes would put there
    skew = float(np.mean(((sq[:done] - n) / n) / uniform)) if n > 1 else 1.0
    sizes = np.bincount(root, minlength=n)
    in_series = sizes[root] >= min_bucket
    if not force and (done < starts.size or in_series.sum() < min_share * n):
        return None, skew
    member_ids = np.flatnonzero(in_series)
    if member_ids.size == 0:
        empty = _layer(words, np.zeros((0, words.shape[1]), np.uint64), member_ids,
                       np.zeros(1, np.int64), np.zeros(0, np.int32), skew)
        return (empty if force else None), skew
    member_ids = member_ids[np.argsort(root[member_ids], kind="stable")]
    member_start = _starts(root[member_ids])
    with kernel_lock():
        reps = sk.majority_codes(words, member_start, member_ids)
        dist = sk.member_distances(words, reps, member_start, member_ids)
    # members beyond the reach cap go back to the ordinary index; groups left too small dissolve
    group = np.repeat(np.arange(reps.shape[0]), np.diff(member_start))
    cap = nbits // 4
    keep = dist <= cap
    keep &= np.bincount(group[keep], minlength=reps.shape[0])[group] >= min_bucket
    kept = np.unique(group[keep])
    reps = np.ascontiguousarray(reps[kept])
    member_ids, dist = member_ids[keep], dist[keep]
    group = np.searchsorted(kept, group[keep])
    # then codes in no heavy bucket that lie near a representative join its series
    grouped = np.zeros(n, dtype=bool)
    grouped[member_ids] = True
    loose = np.flatnonzero(~grouped)
    with kernel_lock():
        found, found_d = sk.attach(words, loose, reps, starts, widths, cap)
    hit = found >= 0
    member_ids = np.concatenate([member_ids, loose[hit]])
    dist = np.concatenate([dist, found_d[hit]])
    group = np.concatenate([group, found[hit]])
    if not force and member_ids.size < min_share * n:
        return None, skew
    order = np.lexsort((member_ids, group))
    member_ids, dist, group = member_ids[order], dist[order], group[order]
    member_start = np.searchsorted(group, np.arange(reps.shape[0] + 1)).astype(np.int64)
    return _layer(words, reps, member_ids, member_start, dist, skew), skew


def _starts(labels: np.ndarray) -> np.ndarray:
    """Start offsets (plus the end) of the runs of equal values in sorted `labels`."""
    return np.flatnonzero(np.r_[True, labels[1:] != labels[:-1], True]).astype(np.int64)


def _layer(words: np.ndarray, reps: np.ndarray, member_ids: np.ndarray, member_start: np.ndarray,
           dist: np.ndarray, skew: float) -> SeriesLayer:
    reach = (np.maximum.reduceat(dist, member_start[:-1]).astype(np.int32) if dist.size
             else np.zeros(0, np.int32))
    grouped = np.zeros(words.shape[0], dtype=bool)
    grouped[member_ids] = True
    return SeriesLayer(np.ascontiguousarray(reps), reach, member_start,
                       member_ids.astype(np.int64), dist.astype(np.int32),
                       np.flatnonzero(~grouped).astype(np.int64), skew)


def series_range(words: np.ndarray, queries: np.ndarray, layer: SeriesLayer, radius: int,
                 qblock: int, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`brute_range`-shaped buffers for the grouped codes (ids are rows of `words`)."""
    with kernel_lock():
        return sk.series_range(words, queries, layer.reps, layer.reach, layer.member_start,
                               layer.member_ids, layer.member_dist, radius, qblock, cap)


def merge(a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray,
          np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One range result from two over disjoint ids, each query kept in (distance, id) order."""
    with kernel_lock():
        return sk.merge_ranges(a[0], a[1], a[2], b[0], b[1], b[2])
