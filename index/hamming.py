"""`HammingIndex`: exact Hamming-distance search over packed binary codes.

Three methods, all exact, chosen per call from N, the code length, the radius and how clustered
the codes are by a cost model: a multi-threaded popcount scan (`brute`), multi-index hashing
(`mih`, see `hamming_kernels.mih_range`), and `series`: near-duplicate groups searched through
one representative each (`index.series`), with multi-index hashing or the scan over the rest. Results use FAISS's range layout `(lims, distances, ids)` with an
INCLUSIVE radius (distance <= radius), and each query's matches are ordered by (distance, id),
whichever method ran, so methods and FAISS can be compared row for row.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from math import comb
from typing import Literal

import numba
import numpy as np

from index import hamming_kernels as hk
from index import series
from index.protocol import PAD_DISTANCE
from index.threading import kernel_lock

Method = Literal["auto", "brute", "mih", "series"]

# Cost model, in nanoseconds of one thread, measured on the 2-core EPYC benchmark machine:
# a popcount scan costs about this much per 64-bit word of the database, and MIH about this
# much per probed bucket and per verified candidate (both are random reads into large tables).
_NS_PER_SCANNED_WORD = 0.6
_NS_PER_RANDOM_READ = 35.0
# The 256-bit scan is vectorised (`hamming_kernels._scan4`): per code, not per word, measured
# on the 2-core AVX-512 Xeon at 0.39-0.47 ns (ORB descriptors, 5 * 10^5 codes; MIH at radius 40
# there took 380 us a query against the scan's 196 us, which the per-word figure had costed at
# 1,200 us and so chosen MIH).
_NS_PER_SCANNED_CODE256 = 0.45
# Below this many codes the scan is always used: MIH tables would cost more than they save.
_MIN_MIH_CODES = 20_000
# Substring widths are capped so one table's offsets (2^width uint32) stay <= 64 MiB.
_MAX_WIDTH = 24
_MIN_WIDTH = 8
# Matches kept per (query, part) on the first pass; queries with more are rerun exactly.
_FIRST_CAP = 16
_QUERY_BATCH = 8192
_QBLOCK = 16
_TILE = 2048
# The 256-bit scan copies each tile word-major and vectorises over it: the copy pays off over a
# larger query block, and four 512-code word rows (16 KiB) stay in L1 (measured, ORB descriptors:
# 0.40 ns CPU a pair at 256 x 512, 0.50 at 16 x 1024, 0.46 at 128 x 2048).
_QBLOCK4 = 256
_TILE4 = 512
_LOOKAHEAD = 8


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """How one range search will run, and why (estimated cost per query in nanoseconds).

    For `mih`: table `j` indexes bits `[starts[j], starts[j] + widths[j])` and is probed at
    every value within `radii[j]` bits (-1: not probed, and not built).
    """

    method: Literal["brute", "mih", "series"]
    radius: int
    est_ns_per_query: float
    starts: tuple[int, ...] = ()
    widths: tuple[int, ...] = ()
    radii: tuple[int, ...] = ()
    est_candidates: float = 0.0
    table_bytes: int = 0
    # `series`: the number of groups, and the plan for the codes outside them
    nseries: int = 0
    rest: SearchPlan | None = None


def _ball(width: int, radius: int) -> int:
    return sum(comb(width, i) for i in range(radius + 1)) if radius >= 0 else 0


def _mih_plan(n: int, nbits: int, radius: int, m: int, skew: float = 1.0) -> SearchPlan:
    base, extra = divmod(nbits, m)
    widths = [base + 1] * extra + [base] * (m - extra)  # wider first: they get the larger radius
    starts = [sum(widths[:j]) for j in range(m)]
    s, a = divmod(radius, m)
    radii = [s] * (a + 1) + [s - 1] * (m - a - 1)
    probes = sum(_ball(w, r) for w, r in zip(widths, radii, strict=True))
    candidates = skew * sum(_ball(w, r) * n / 2.0**w for w, r in zip(widths, radii, strict=True))
    table_bytes = sum(((1 << w) + 1) * 4 + n * 4 for w, r in zip(widths, radii, strict=True)
                      if r >= 0)
    return SearchPlan("mih", radius, (2 * probes + candidates) * _NS_PER_RANDOM_READ, tuple(starts),
                      tuple(widths), tuple(radii), candidates, table_bytes)


def choose_plan(n: int, nbits: int, radius: int, method: Method = "auto",
                memory_budget: int | None = None, skew: float = 1.0) -> SearchPlan:
    """Pick the cheapest exact method for `n` codes of `nbits` bits at `radius` ("series" is
    decided by `HammingIndex`, which knows the groups; here it is costed as "auto").

    MIH splits the bits into m substrings; more substrings mean fewer bits per table (more
    candidates per probe) but a smaller probe radius. Every m whose widths fit in
    [_MIN_WIDTH, _MAX_WIDTH] and whose tables fit `memory_budget` (default: twice the codes plus
    128 MiB) is costed and the cheapest wins, unless the scan is cheaper still. `skew` scales
    the candidates per probed bucket: clustered codes fill the buckets a query near them meets
    `skew` times fuller than uniform codes would (`index.series` measures it).
    """
    per_code = _NS_PER_SCANNED_CODE256 if nbits == 256 else (nbits // 64) * _NS_PER_SCANNED_WORD
    brute = SearchPlan("brute", radius, n * per_code)
    if method == "brute" or radius >= nbits:
        return brute
    budget = memory_budget if memory_budget is not None else 2 * n * nbits // 8 + (128 << 20)
    plans = [
        _mih_plan(n, nbits, radius, m, skew)
        for m in range(-(-nbits // _MAX_WIDTH), nbits // _MIN_WIDTH + 1)
    ]
    fitting = [p for p in plans if p.table_bytes <= budget]
    if not fitting:
        if method != "mih":
            return brute
        fitting = plans
    best = min(fitting, key=lambda p: p.est_ns_per_query)
    if method == "mih":
        return best
    if n < _MIN_MIH_CODES or best.est_ns_per_query >= brute.est_ns_per_query:
        return brute
    return best


@lru_cache(maxsize=64)
def _masks(width: int, radius: int) -> np.ndarray:
    """Every `width`-bit mask of weight <= radius, lightest first."""
    out = [sum(1 << b for b in bits) for k in range(radius + 1)
           for bits in combinations(range(width), k)]
    return np.array(out, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class _MihTables:
    starts: np.ndarray
    widths: np.ndarray
    table_base: np.ndarray
    offsets: np.ndarray
    ids: np.ndarray
    built: tuple[int, ...]  # positions in the plan's table list that these tables cover


def _as_words(codes: np.ndarray, name: str, nbytes: int | None = None) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype != np.uint8 or arr.ndim != 2:
        raise ValueError(f"{name} must be a uint8[n, nbytes] array, got {arr.dtype}{arr.shape}")
    if arr.shape[1] == 0 or arr.shape[1] % 8:
        raise ValueError(f"{name}: code length must be a positive multiple of 8 bytes, "
                         f"got {arr.shape[1]}")
    if nbytes is not None and arr.shape[1] != nbytes:
        raise ValueError(f"{name} have {arr.shape[1]} bytes per code, the index {nbytes}")
    return np.ascontiguousarray(arr).view(np.uint64)


class HammingIndex:
    """Exact Hamming search over `hashes: uint8[N, nbytes]` (nbytes a multiple of 8).

    `method` forces "brute", "mih" or "series" (tests and benchmarks); "auto" looks for series
    of near-duplicates when the index is large enough for multi-index hashing, then takes the
    cheapest plan. Series, MIH tables and the index over the codes outside the series are built
    on first need and kept; building is thread-safe. Results never depend on the method.
    """

    def __init__(self, hashes: np.ndarray, method: Method = "auto",
                 memory_budget: int | None = None) -> None:
        self._words = _as_words(hashes, "hashes")
        if self._words.shape[0] >= 2**32:
            raise ValueError("HammingIndex holds at most 2^32 - 1 codes (ids are uint32)")
        self.nbytes = self._words.shape[1] * 8
        self.nbits = self.nbytes * 8
        self.method: Method = method
        self.memory_budget = memory_budget
        self._tables: _MihTables | None = None
        self._grouping: _Grouping | None = None
        self._build_lock = threading.Lock()

    @property
    def ntotal(self) -> int:
        return int(self._words.shape[0])

    @property
    def codes(self) -> np.ndarray:
        """The indexed codes as `uint8[N, nbytes]` (a view, not a copy)."""
        return self._words.view(np.uint8)

    def plan(self, radius: int) -> SearchPlan:
        forced_series = self.method == "series"
        if not forced_series and (self.method != "auto" or self.ntotal < _MIN_MIH_CODES):
            return choose_plan(self.ntotal, self.nbits, radius, self.method, self.memory_budget)
        g = self._group()
        plain = choose_plan(self.ntotal, self.nbits, radius, "auto", self.memory_budget, g.skew)
        if g.layer is None or g.rest is None:
            return plain
        rest = g.rest.plan(radius)
        # every query scans the representatives; members only of series within reach
        est = g.layer.nseries * (self.nbits // 64) * _NS_PER_SCANNED_WORD + rest.est_ns_per_query
        if not forced_series and est >= plain.est_ns_per_query:
            return plain
        return SearchPlan("series", radius, est, nseries=g.layer.nseries, rest=rest)

    def prepare(self, radius: int) -> SearchPlan:
        """Build now whatever searching at `radius` needs (series, MIH tables), instead of on
        the first query; returns the plan."""
        plan = self.plan(radius)
        if plan.method == "mih" and self.ntotal:
            self._mih_tables(plan)
        if plan.method == "series":
            rest = self._group().rest
            assert rest is not None
            rest.prepare(radius)
        return plan

    @property
    def table_bytes(self) -> int:
        """Memory held by the built search structures (MIH tables; series, and the copy of and
        structures over the codes outside them); the indexed codes themselves are not copied."""
        t = self._tables
        own = 0 if t is None else int(t.offsets.nbytes + t.ids.nbytes)
        g = self._grouping
        if g is None or g.layer is None or g.rest is None:
            return own
        return own + g.layer.nbytes + g.rest.codes.nbytes + g.rest.table_bytes

    def _group(self) -> _Grouping:
        with self._build_lock:
            if self._grouping is None:
                layer, skew = series.find_series(self._words, self.nbits,
                                                 force=self.method == "series")
                rest = None
                if layer is not None:
                    rest = HammingIndex(self.codes[layer.rest_ids], memory_budget=self.memory_budget)
                    rest._grouping = _Grouping(None, 1.0, None)  # no series inside the rest
                self._grouping = _Grouping(layer, skew, rest)
            return self._grouping

    def range_search(self, queries: np.ndarray, radius: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All codes within `radius` (inclusive) of each query: `(lims int64[Q+1],
        distances int32[K], ids int64[K])`; query q's matches are `[lims[q]:lims[q+1]]`,
        sorted by (distance, id)."""
        q_words = _as_words(queries, "queries", self.nbytes)
        radius = int(radius)
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        if q_words.shape[0] == 0 or self.ntotal == 0:
            return (np.zeros(q_words.shape[0] + 1, dtype=np.int64),
                    np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64))
        plan = self.plan(radius)
        parts = [self._range_batch(q_words[i:i + _QUERY_BATCH], plan)
                 for i in range(0, q_words.shape[0], _QUERY_BATCH)]
        grouped = _concat_ranges(parts)
        if plan.method != "series":
            return grouped
        g = self._group()
        assert g.layer is not None and g.rest is not None
        lims, dist, ids = g.rest.range_search(q_words.view(np.uint8), radius)
        # rest ids ascend with the original ids, so each query's (distance, id) order holds
        return series.merge(grouped, (lims, dist, g.layer.rest_ids[ids]))

    def knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest codes to each query by exhaustive scan: `(distances int32[Q,k],
        ids int64[Q,k])`, sorted by (distance, id); slots past N hold (PAD_DISTANCE, -1)."""
        q_words = _as_words(queries, "queries", self.nbytes)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        with kernel_lock():
            dist, ids = hk.brute_knn(self._words, q_words, int(k), _QBLOCK, _TILE, PAD_DISTANCE)
        return dist, ids

    def _range_batch(self, q_words: np.ndarray, plan: SearchPlan, cap: int = _FIRST_CAP
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts, ids, dist = self._run(q_words, plan, cap)
        over = np.flatnonzero(counts.max(axis=1) > cap)
        if over.size == 0:
            with kernel_lock():
                return hk.gather_sorted(counts, ids, dist)
        # rare: a query with more matches than the buffer; rerun just those with room for all
        clipped = counts.copy()
        clipped[over] = 0
        with kernel_lock():
            lims, d, i = hk.gather_sorted(clipped, ids, dist)
        big_lims, big_d, big_i = self._range_batch(q_words[over], plan, int(counts[over].max()))
        return _splice(lims, d, i, over, big_lims, big_d, big_i)

    def _run(self, q_words: np.ndarray, plan: SearchPlan, cap: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if plan.method == "series":
            layer = self._group().layer
            assert layer is not None
            return series.series_range(self._words, q_words, layer, plan.radius, _QBLOCK, cap)
        if plan.method == "brute":
            nq = q_words.shape[0]
            qblock, tile = (_QBLOCK4, _TILE4) if self._words.shape[1] == 4 else (_QBLOCK, _TILE)
            nqb = -(-nq // qblock)
            nparts = max(1, min(-(-2 * numba.get_num_threads() // nqb), self.ntotal // tile))
            with kernel_lock():
                return hk.brute_range(self._words, q_words, plan.radius, qblock, nparts, tile,
                                      cap)
        t = self._mih_tables(plan)
        radii = np.array([plan.radii[j] for j in t.built], dtype=np.int64)
        masks = [_masks(plan.widths[j], plan.radii[j]) for j in t.built]
        mask_start = np.concatenate([[0], np.cumsum([m.size for m in masks])]).astype(np.int64)
        with kernel_lock():
            return hk.mih_range(self._words, q_words, t.starts, t.widths, radii, t.table_base,
                                t.offsets, t.ids, np.concatenate(masks), mask_start,
                                plan.radius, cap, _LOOKAHEAD)

    def _mih_tables(self, plan: SearchPlan) -> _MihTables:
        built = tuple(j for j, r in enumerate(plan.radii) if r >= 0)
        with self._build_lock:
            t = self._tables
            if (t is not None and t.built == built
                    and tuple(t.widths) == tuple(plan.widths[j] for j in built)
                    and tuple(t.starts) == tuple(plan.starts[j] for j in built)):
                return t
            self._tables = None  # let the old tables go before allocating new ones
            starts = np.array([plan.starts[j] for j in built], dtype=np.int64)
            widths = np.array([plan.widths[j] for j in built], dtype=np.int64)
            sizes = (1 << widths) + 1
            table_base = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            # allocated by numpy (not inside the kernel) so they get transparent huge pages
            offsets = np.zeros(int(sizes.sum()), dtype=np.uint32)
            ids = np.empty((len(built), self.ntotal), dtype=np.uint32)
            with kernel_lock():
                hk.mih_build(self._words, starts, widths, table_base, offsets, ids)
            self._tables = _MihTables(starts, widths, table_base, offsets, ids, built)
            return self._tables


@dataclass(frozen=True, slots=True)
class _Grouping:
    """What `index.series` found: the series (None: not worth it), the bucket skew, and the
    index over the codes outside the series."""

    layer: series.SeriesLayer | None
    skew: float
    rest: HammingIndex | None


def _splice(lims: np.ndarray, d: np.ndarray, i: np.ndarray, rows: np.ndarray,
            r_lims: np.ndarray, r_d: np.ndarray, r_i: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replace the (empty) results of queries `rows` in one range result by another's."""
    counts = np.diff(lims)
    counts[rows] = np.diff(r_lims)
    out_lims = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out_d = np.empty(out_lims[-1], dtype=np.int32)
    out_i = np.empty(out_lims[-1], dtype=np.int64)
    replaced = np.zeros(counts.size, dtype=bool)
    replaced[rows] = True
    keep = np.repeat(~replaced, counts)
    out_d[keep], out_i[keep] = d, i
    out_d[~keep], out_i[~keep] = r_d, r_i
    return out_lims, out_d, out_i


def _concat_ranges(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    counts = np.concatenate([np.diff(p[0]) for p in parts])
    lims = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return (lims, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]))


def dihedral_range_search(index: HammingIndex, queries: np.ndarray, radius: int
                          ) -> list[tuple[int, int, int, int]]:
    """Match `queries: uint8[Q, V, nbytes]` (V variants of each query, e.g. PDQ's 8 dihedral
    hashes): a code matches a query if ANY variant is within `radius`.

    Returns `(query, variant, id, distance)` for every matching (query, id), with the closest
    variant (the lowest variant index on ties), sorted by (query, distance, id).
    """
    arr = np.asarray(queries)
    if arr.ndim != 3:
        raise ValueError(f"dihedral queries must be uint8[Q, V, nbytes], got shape {arr.shape}")
    nq, nv, nbytes = arr.shape
    lims, dist, ids = index.range_search(arr.reshape(nq * nv, nbytes), radius)
    flat = np.repeat(np.arange(nq * nv), np.diff(lims))
    query, variant = flat // nv, flat % nv
    # best variant per (query, id): sort by query, id, distance, variant; keep the first row
    order = np.lexsort((variant, dist, ids, query))
    q, v, i, d = query[order], variant[order], ids[order], dist[order]
    first = np.ones(q.size, dtype=bool)
    first[1:] = (q[1:] != q[:-1]) | (i[1:] != i[:-1])
    q, v, i, d = q[first], v[first], i[first], d[first]
    order = np.lexsort((i, d, q))
    return [(int(a), int(b), int(c), int(e))
            for a, b, c, e in zip(q[order], v[order], i[order], d[order], strict=True)]
