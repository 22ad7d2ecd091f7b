"""numba kernels for the series layer of `HammingIndex` (numpy + numba only).

Partners' lists hold series: many near-duplicate variants of one picture. Variants share most of
their bit substrings, so in a multi-index table they pile into the same few buckets, and a query
near a series meets every variant once per table (one candidate check each) instead of once. The
series layer finds such groups when the index is built (codes that share a substring value held
by unusually many codes), and searches each group through one representative code and the
triangle inequality: no member can lie within `radius` of a query when
`d(query, rep) - reach > radius`, where `reach` is the largest member-to-representative distance.

Kernels take codes as `uint64[N, W]` words, like `hamming_kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from index.hamming_kernels import _distance, popcount64, prefetch2, substring


@njit(cache=True, nogil=True)
def _find(parent: np.ndarray, i: int) -> int:
    """Root of `i` in a union-find forest, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True, parallel=True)
def heavy_links(db: np.ndarray, starts: np.ndarray, widths: np.ndarray, min_bucket: int,
                link: int) -> tuple[np.ndarray, np.ndarray]:
    """Per substring table (one thread each): for every code in a bucket held by at least
    `min_bucket` codes, the bucket's first code when the two are within `link` bits, else -1
    (`int32[m, N]`); and each table's sum of squared bucket sizes (`float64[m]`): `(sum - N) / N`
    is how many other codes a code meets in its own bucket on average (N / 2^width when
    uniform).

    The distance check is what keeps series apart: with thousands of series there are thousands
    of heavy buckets per table, and a code lands in another series' bucket by chance often
    enough to chain every series into one if bucket sharing alone were taken as kinship.
    """
    n = db.shape[0]
    m = starts.shape[0]
    target = np.full((m, n), -1, dtype=np.int32)
    sq = np.zeros(m, dtype=np.float64)
    for j in prange(m):
        width = widths[j]
        counts = np.zeros(1 << width, dtype=np.int32)
        values = np.empty(n, dtype=np.int32)
        for i in range(n):
            v = substring(db, i, starts[j], width)
            values[i] = v
            counts[v] += 1
        s = 0.0
        for c in range(1 << width):
            s += float(counts[c]) * float(counts[c])
        sq[j] = s
        first = np.full(1 << width, -1, dtype=np.int32)
        for i in range(n):
            v = values[i]
            if counts[v] < min_bucket:
                continue
            if first[v] < 0:
                first[v] = i
            elif _distance(db, i, db, first[v]) <= link:
                target[j, i] = first[v]
    return target, sq


@njit(cache=True, nogil=True)
def union_links(target: np.ndarray, parent: np.ndarray) -> None:
    """Union each code with its link targets (`heavy_links`); `parent` (int64[N], initially
    `arange`) is a union-find forest updated in place."""
    for j in range(target.shape[0]):
        for i in range(target.shape[1]):
            t = target[j, i]
            if t < 0:
                continue
            a = _find(parent, i)
            b = _find(parent, t)
            if a != b:
                parent[max(a, b)] = min(a, b)


@njit(cache=True, nogil=True)
def roots(parent: np.ndarray) -> np.ndarray:
    """The root of every element (int64[N])."""
    out = np.empty(parent.shape[0], dtype=np.int64)
    for i in range(parent.shape[0]):
        out[i] = _find(parent, i)
    return out


@njit(cache=True, nogil=True, parallel=True)
def majority_codes(db: np.ndarray, member_start: np.ndarray, member_ids: np.ndarray
                   ) -> np.ndarray:
    """Bitwise majority vote of each group's members (`uint64[S, W]`): the code closest to all
    members in total, so a good representative (it need not be a member)."""
    nw = db.shape[1]
    ns = member_start.shape[0] - 1
    reps = np.zeros((ns, nw), dtype=np.uint64)
    for s in prange(ns):
        ones = np.zeros(nw * 64, dtype=np.int64)
        a = member_start[s]
        b = member_start[s + 1]
        for k in range(a, b):
            i = member_ids[k]
            for w in range(nw):
                x = db[i, w]
                while x:  # only the set bits
                    low = x & (~x + np.uint64(1))
                    ones[w * 64 + popcount64(low - np.uint64(1))] += 1
                    x ^= low
        for w in range(nw):
            acc = np.uint64(0)
            for bit in range(64):
                if 2 * ones[w * 64 + bit] > b - a:
                    acc |= np.uint64(1) << np.uint64(bit)
            reps[s, w] = acc
    return reps


@njit(cache=True, nogil=True, parallel=True)
def member_distances(db: np.ndarray, reps: np.ndarray, member_start: np.ndarray,
                     member_ids: np.ndarray) -> np.ndarray:
    """Distance of every member to its group's representative (int32, aligned with ids)."""
    out = np.empty(member_ids.shape[0], dtype=np.int32)
    for s in prange(reps.shape[0]):
        for k in range(member_start[s], member_start[s + 1]):
            out[k] = _distance(db, member_ids[k], reps, s)
    return out


@njit(cache=True, nogil=True, parallel=True)
def attach(db: np.ndarray, ids: np.ndarray, reps: np.ndarray, starts: np.ndarray,
           widths: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """For codes `db[ids]` that fell in no heavy bucket: the series whose representative agrees
    with them to within one bit on some substring and lies within `cap` bits overall
    (`(series int64, distance int32)`, -1 where none). Heavily edited variants keep no substring
    intact but usually keep one within a bit of their picture's."""
    n = ids.shape[0]
    found = np.full(n, -1, dtype=np.int64)
    found_d = np.zeros(n, dtype=np.int32)
    for j in range(starts.shape[0]):
        width = widths[j]
        owner = np.full(1 << width, -1, dtype=np.int32)
        for s in range(reps.shape[0]):
            owner[substring(reps, s, starts[j], width)] = s
        for t in prange(n):
            if found[t] >= 0:
                continue
            v = substring(db, ids[t], starts[j], width)
            for b in range(-1, width):
                probe = v if b < 0 else v ^ (np.int64(1) << b)
                s = owner[probe]
                if s >= 0:
                    d = _distance(db, ids[t], reps, s)
                    if d <= cap:
                        found[t] = s
                        found_d[t] = d
                        break
    return found, found_d


@njit(cache=True, nogil=True, inline="always")
def _distance4(a: np.ndarray, i: int, b0: np.uint64, b1: np.uint64, b2: np.uint64,
               b3: np.uint64) -> int:
    return (popcount64(a[i, 0] ^ b0) + popcount64(a[i, 1] ^ b1) + popcount64(a[i, 2] ^ b2)
            + popcount64(a[i, 3] ^ b3))


@njit(cache=True, nogil=True, parallel=True)
def series_range(db: np.ndarray, queries: np.ndarray, reps: np.ndarray, reach: np.ndarray,
                 member_start: np.ndarray, member_ids: np.ndarray, member_dist: np.ndarray,
                 radius: int, qblock: int, cap: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact range search over the grouped codes; outputs as `brute_range` with one part.

    For each query and group: `d(q, m) >= |d(q, rep) - d(rep, m)|` for every member m, so the
    group is skipped when `d(q, rep) - reach > radius` and a member is compared only when
    `|d(q, rep) - d(rep, m)| <= radius`. Queries are taken in blocks that scan the
    representatives together, so each representative is loaded once per block.
    """
    nq = queries.shape[0]
    ns = reps.shape[0]
    nw = reps.shape[1]
    counts = np.zeros((nq, 1), dtype=np.int64)
    ids = np.empty((nq, 1, cap), dtype=np.int64)
    dist = np.empty((nq, 1, cap), dtype=np.int32)
    nqb = (nq + qblock - 1) // qblock
    for qb in prange(nqb):
        q0 = qb * qblock
        q1 = min(q0 + qblock, nq)
        for s in range(ns):
            if nw == 4:  # 256-bit codes: the representative stays in registers for the block
                r0 = reps[s, 0]
                r1 = reps[s, 1]
                r2 = reps[s, 2]
                r3 = reps[s, 3]
            for q in range(q0, q1):
                dr = _distance4(queries, q, r0, r1, r2, r3) if nw == 4 else \
                    _distance(queries, q, reps, s)
                if dr - reach[s] > radius:
                    continue
                a = member_start[s]
                b = member_start[s + 1]
                for k in range(a, b):
                    if k + 4 < b:
                        prefetch2(db, member_ids[k + 4], 0)
                    if abs(dr - member_dist[k]) > radius:
                        continue
                    i = member_ids[k]
                    d = _distance(queries, q, db, i)
                    if d <= radius:
                        c = counts[q, 0]
                        if c < cap:
                            ids[q, 0, c] = i
                            dist[q, 0, c] = d
                        counts[q, 0] = c + 1
    return counts, ids, dist


@njit(cache=True, nogil=True, parallel=True)
def merge_ranges(lims_a: np.ndarray, d_a: np.ndarray, i_a: np.ndarray,
                 lims_b: np.ndarray, d_b: np.ndarray, i_b: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge two range results over disjoint id sets, each query sorted by (distance, id)."""
    nq = lims_a.shape[0] - 1
    lims = np.zeros(nq + 1, dtype=np.int64)
    for q in range(nq):
        lims[q + 1] = lims[q] + (lims_a[q + 1] - lims_a[q]) + (lims_b[q + 1] - lims_b[q])
    out_d = np.empty(lims[nq], dtype=np.int32)
    out_i = np.empty(lims[nq], dtype=np.int64)
    for q in prange(nq):
        x = lims_a[q]
        xe = lims_a[q + 1]
        y = lims_b[q]
        ye = lims_b[q + 1]
        o = lims[q]
        while x < xe or y < ye:
            take_a = y >= ye or (x < xe and (d_a[x] < d_b[y]
                                             or (d_a[x] == d_b[y] and i_a[x] < i_b[y])))
            if take_a:
                out_d[o] = d_a[x]
                out_i[o] = i_a[x]
                x += 1
            else:
                out_d[o] = d_b[y]
                out_i[o] = i_b[y]
                y += 1
            o += 1
    return lims, out_d, out_i
