"""numba kernels for exact Hamming search over packed binary codes (numpy + numba only).

Codes arrive as `uint64[N, W]` words (a view of the packed `uint8[N, 8W]` rows: popcount of
XOR does not care about byte order); multi-index hashing works on bit ranges of those words.
Hand-written because numba cannot compile `np.bitwise_count` (so POPCNT and the cache prefetch
hint are emitted through numba's own LLVM builder, llvmlite), and neither numpy nor FAISS
offers a multi-index search that is exact at an inclusive radius and fast at 10^7 codes
(FAISS's IndexBinaryMultiHash is exact only for a suitable nflip, and measured slower than
FAISS's own flat scan in issue 3).

Range kernels write each query's matches into fixed-capacity buffers `[Q, P, cap]` (P = parts of
the database scanned by separate work items) and always return the true count, so the caller can
rerun the few queries that overflowed with a larger capacity instead of scanning twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic


def _ctpop64_typer(typingctx, x):  # type: ignore[no-untyped-def]
    """LLVM's ctpop: one hardware POPCNT instruction on x86-64 (numba compiles for the host)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


_ctpop64: Any = intrinsic(_ctpop64_typer)


def _prefetch_codegen(context, builder, aryty, ary, indices):  # type: ignore[no-untyped-def]
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, indices)
    i8p = ir.PointerType(ir.IntType(8))
    i32 = ir.IntType(32)
    fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
    # read access, no temporal-locality hint (0), data cache (1)
    builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(0), i32(1)])


def _prefetch_typer(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Hint the CPU to start loading `arr[idx]` (1-D array) into cache; no bounds check."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        _prefetch_codegen(context, builder, signature.args[0], ary, [args[1]])
        return context.get_dummy_value()

    return types.void(arr, types.int64), codegen


prefetch: Any = intrinsic(_prefetch_typer)


def _prefetch2_typer(typingctx, arr, row, col):  # type: ignore[no-untyped-def]
    """`prefetch` for `arr[row, col]` of a 2-D array."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        _prefetch_codegen(context, builder, signature.args[0], ary, [args[1], args[2]])
        return context.get_dummy_value()

    return types.void(arr, types.int64, types.int64), codegen


prefetch2: Any = intrinsic(_prefetch2_typer)


@njit(cache=True, nogil=True, inline="always")
def popcount64(x: np.uint64) -> int:
    """Number of set bits in one 64-bit word."""
    return int(_ctpop64(x))


@njit(cache=True, nogil=True, inline="always")
def _distance(a: np.ndarray, i: int, b: np.ndarray, j: int) -> int:
    d = 0
    for w in range(a.shape[1]):
        d += popcount64(a[i, w] ^ b[j, w])
    return d


@njit(cache=True, nogil=True)
def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances `int32[len(a), len(b)]` between two `uint64[., W]` arrays (for tests
    and small inputs; the search kernels never materialise this matrix)."""
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = _distance(a, i, b, j)
    return out


@njit(cache=True, nogil=True, parallel=True)
def brute_range(
    db: np.ndarray,
    queries: np.ndarray,
    radius: int,
    qblock: int,
    nparts: int,
    tile: int,
    cap: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact range search by popcount scan; returns `(counts[Q,P], ids[Q,P,cap], dist[Q,P,cap])`.

    Work items are (query block, database part) pairs so that a handful of queries still keeps
    every thread busy; inside an item the database part is walked in tiles of `tile` rows that
    stay in cache while every query of the block scans them.
    """
    n = db.shape[0]
    nq = queries.shape[0]
    nqb = (nq + qblock - 1) // qblock
    part_len = (n + nparts - 1) // nparts
    counts = np.zeros((nq, nparts), dtype=np.int64)
    ids = np.empty((nq, nparts, cap), dtype=np.int64)
    dist = np.empty((nq, nparts, cap), dtype=np.int32)
    for item in prange(nqb * nparts):
        qb = item // nparts
        part = item % nparts
        q0 = qb * qblock
        q1 = min(q0 + qblock, nq)
        lo = part * part_len
        hi = min(lo + part_len, n)
        if db.shape[1] == 4:
            _scan4(db, queries, radius, q0, q1, lo, hi, part, counts, ids, dist, cap, tile)
        elif db.shape[1] == 1:
            _scan1(db, queries, radius, q0, q1, lo, hi, part, counts, ids, dist, cap)
        else:
            for t0 in range(lo, hi, tile):
                t1 = min(t0 + tile, hi)
                for q in range(q0, q1):
                    c = counts[q, part]
                    for i in range(t0, t1):
                        d = _distance(queries, q, db, i)
                        if d <= radius:
                            if c < cap:
                                ids[q, part, c] = i
                                dist[q, part, c] = d
                            c += 1
                    counts[q, part] = c
    return counts, ids, dist


@njit(cache=True, nogil=True, inline="always")
def _record(q: int, part: int, i: int, d: int, counts: np.ndarray, ids: np.ndarray,
            dist: np.ndarray, cap: int) -> None:
    c = counts[q, part]
    if c < cap:
        ids[q, part, c] = i
        dist[q, part, c] = d
    counts[q, part] = c + 1


@njit(cache=True, nogil=True)
def _tile_distances4(a0: np.uint64, a1: np.uint64, a2: np.uint64, a3: np.uint64,
                     w0: np.ndarray, w1: np.ndarray, w2: np.ndarray, w3: np.ndarray,
                     dd: np.ndarray, m: int, radius: int) -> int:
    """Distances of one 256-bit query to the first `m` codes of a word-major tile, into `dd`;
    returns how many are within `radius`. A plain loop over contiguous words with no branch,
    so LLVM vectorises it (vector POPCNT where the CPU has it)."""
    hits = 0
    for i in range(m):
        d = (popcount64(a0 ^ w0[i]) + popcount64(a1 ^ w1[i])
             + popcount64(a2 ^ w2[i]) + popcount64(a3 ^ w3[i]))
        dd[i] = d
        hits += d <= radius
    return hits


@njit(cache=True, nogil=True)
def _scan4(db: np.ndarray, queries: np.ndarray, radius: int, q0: int, q1: int, lo: int,
           hi: int, part: int, counts: np.ndarray, ids: np.ndarray, dist: np.ndarray,
           cap: int, tile: int) -> None:
    """256-bit codes: the database part is copied a tile at a time into four word-major rows
    (word k of every code of the tile contiguous), which every query of the block then scans
    with `_tile_distances4`; only a tile holding a match is looked at row by row. Measured on
    ORB descriptors (AVX-512 Xeon): 0.4 ns CPU a pair, 4-5x the row-major register loop this
    replaced. The copy is paid once per tile and query block; the parallel caller must call
    this separate function (inside a prange body the loop is not vectorised)."""
    w0 = np.empty(tile, np.uint64)
    w1 = np.empty(tile, np.uint64)
    w2 = np.empty(tile, np.uint64)
    w3 = np.empty(tile, np.uint64)
    dd = np.empty(tile, np.int64)
    for t0 in range(lo, hi, tile):
        m = min(tile, hi - t0)
        for i in range(m):
            w0[i] = db[t0 + i, 0]
            w1[i] = db[t0 + i, 1]
            w2[i] = db[t0 + i, 2]
            w3[i] = db[t0 + i, 3]
        for q in range(q0, q1):
            if _tile_distances4(queries[q, 0], queries[q, 1], queries[q, 2], queries[q, 3],
                                w0, w1, w2, w3, dd, m, radius):
                for i in range(m):
                    if dd[i] <= radius:
                        _record(q, part, t0 + i, dd[i], counts, ids, dist, cap)


@njit(cache=True, nogil=True)
def _scan1(db: np.ndarray, queries: np.ndarray, radius: int, q0: int, q1: int, lo: int,
           hi: int, part: int, counts: np.ndarray, ids: np.ndarray, dist: np.ndarray,
           cap: int) -> None:
    """64-bit codes: as `_scan4` with one word."""
    for i in range(lo, hi):
        b0 = db[i, 0]
        for q in range(q0, q1):
            d = popcount64(queries[q, 0] ^ b0)
            if d <= radius:
                _record(q, part, i, d, counts, ids, dist, cap)


@njit(cache=True, nogil=True, inline="always")
def substring(words: np.ndarray, row: int, start: int, width: int) -> np.int64:
    """Bits `[start, start + width)` of a code (bit p is bit p % 64 of word p // 64), width <= 32."""
    w = start >> 6
    sh = start & 63
    x = words[row, w] >> np.uint64(sh)
    if sh + width > 64:
        x |= words[row, w + 1] << np.uint64(64 - sh)
    return np.int64(x & np.uint64((1 << width) - 1))


@njit(cache=True, nogil=True, parallel=True)
def mih_build(
    db: np.ndarray,
    starts: np.ndarray,
    widths: np.ndarray,
    table_base: np.ndarray,
    offsets: np.ndarray,
    ids: np.ndarray,
) -> None:
    """Counting-sort every row id into the bucket of its value in each substring table, in place.

    Table `j` covers bits `[starts[j], starts[j] + widths[j])`; its `2^width + 1` offsets start
    at `table_base[j]` in the flat zeroed `offsets uint32` array, and bucket `v` holds
    `ids[j, offsets[base + v]:offsets[base + v + 1]]`, ids ascending (both passes are stable).
    The caller allocates both arrays (numpy asks the kernel for huge pages, which matters for
    these randomly accessed tables); uint32 keeps them at 4 bytes per code per table.

    Two radix passes instead of one counting sort over 2^width buckets: the first scatters ids
    (and their values) by the high half of the value, into a few thousand buckets whose
    counters and write positions stay in cache; the second sorts each such group by the low
    half in a scratch buffer the size of the largest group. A one-pass sort at 10^7 codes and
    22-bit values spends its time on cache misses into a 16 MiB counter array. Extra memory is
    one uint32 per code for each table in flight (one per thread).
    """
    n = db.shape[0]
    m = starts.shape[0]
    for j in prange(m):
        base = table_base[j]
        width = widths[j]
        start = starts[j]
        low = width // 2
        nhigh = 1 << (width - low)
        nlow = 1 << low
        # pass 1: stable scatter by the high half; group h is [group[h], group[h + 1])
        group = np.zeros(nhigh + 1, dtype=np.int64)
        for i in range(n):
            group[(substring(db, i, start, width) >> low) + 1] += 1
        for h in range(nhigh):
            group[h + 1] += group[h]
        fill = group[:nhigh].copy()
        vals = np.empty(n, dtype=np.uint32)
        for i in range(n):
            v = substring(db, i, start, width)
            h = v >> low
            ids[j, fill[h]] = i
            vals[fill[h]] = v
            fill[h] += 1
        # pass 2: within each group, stable counting sort by the low half; write the offsets
        largest = 0
        for h in range(nhigh):
            largest = max(largest, group[h + 1] - group[h])
        scratch = np.empty(largest, dtype=np.uint32)
        count = np.empty(nlow + 1, dtype=np.int64)
        mask = np.uint32(nlow - 1)
        for h in range(nhigh):
            a = group[h]
            b = group[h + 1]
            count[:] = 0
            for t in range(a, b):
                count[(vals[t] & mask) + 1] += 1
            for lv in range(nlow):
                count[lv + 1] += count[lv]
            for lv in range(nlow):
                offsets[base + h * nlow + lv] = a + count[lv]
            for t in range(a, b):
                lo = vals[t] & mask
                scratch[count[lo]] = ids[j, t]
                count[lo] += 1
            for t in range(a, b):
                ids[j, t] = scratch[t - a]
        offsets[base + nhigh * nlow] = n


@njit(cache=True, nogil=True)
def _first_table(
    queries: np.ndarray, q: int, db: np.ndarray, i: int, j: int,
    starts: np.ndarray, widths: np.ndarray, radii: np.ndarray,
) -> bool:
    """True when no table before `j` has code `i` within its probe radius of query `q`."""
    for e in range(j):
        if radii[e] < 0:
            continue
        x = substring(queries, q, starts[e], widths[e]) ^ substring(db, i, starts[e], widths[e])
        if popcount64(np.uint64(x)) <= radii[e]:
            return False
    return True


@njit(cache=True, nogil=True, parallel=True)
def mih_range(
    db: np.ndarray,
    queries: np.ndarray,
    starts: np.ndarray,
    widths: np.ndarray,
    radii: np.ndarray,
    table_base: np.ndarray,
    offsets: np.ndarray,
    table_ids: np.ndarray,
    masks: np.ndarray,
    mask_start: np.ndarray,
    radius: int,
    cap: int,
    lookahead: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact range search by multi-index hashing (Norouzi, Punjani and Fleet, "Fast exact search
    in Hamming space with multi-index hashing", TPAMI 2014); outputs as `brute_range`, one part.

    Pigeonhole: write radius = s*m + a. If every one of a+1 chosen tables differed from the query
    in more than s bits and every other table in more than s-1, the distance would be at least
    (a+1)(s+1) + (m-a-1)s = radius + 1. So probing each table `j` at `value ^ mask` for all masks
    of weight <= radii[j] (s or s-1; -1 = not probed), listed in
    `masks[mask_start[j]:mask_start[j+1]]`, finds every code within `radius`. A match is kept
    only in the first table where it is within that table's radius: duplicates vanish without a
    visited set.

    Each query runs in three passes (bucket offsets, bucket contents, candidate codes), each
    prefetching `lookahead` items ahead: the lookups are independent random reads into large
    tables, and issuing them together instead of one dependent chain at a time is what makes
    the search memory-parallel.
    """
    nq = queries.shape[0]
    m = starts.shape[0]
    nprobe = mask_start[m]
    counts = np.zeros((nq, 1), dtype=np.int64)
    ids = np.empty((nq, 1, cap), dtype=np.int64)
    dist = np.empty((nq, 1, cap), dtype=np.int32)
    for q in prange(nq):
        bucket = np.empty(nprobe, dtype=np.int64)
        table = np.empty(nprobe, dtype=np.int64)
        p = 0
        for j in range(m):
            v = substring(queries, q, starts[j], widths[j])
            for k in range(mask_start[j], mask_start[j + 1]):
                bucket[p] = table_base[j] + (v ^ masks[k])
                table[p] = j
                prefetch(offsets, bucket[p])
                p += 1
        total = 0
        for p in range(nprobe):
            if p + lookahead < nprobe:
                prefetch(offsets, bucket[p + lookahead])
            lo = offsets[bucket[p]]
            total += offsets[bucket[p] + 1] - lo
            prefetch2(table_ids, table[p], np.int64(lo))
        cand = np.empty(total, dtype=np.int64)
        cand_table = np.empty(total, dtype=np.int64)
        t = 0
        for p in range(nprobe):
            j = table[p]
            for x in range(offsets[bucket[p]], offsets[bucket[p] + 1]):
                cand[t] = table_ids[j, x]
                cand_table[t] = j
                t += 1
        c = 0
        for t in range(total):
            if t + lookahead < total:
                prefetch2(db, cand[t + lookahead], 0)
            i = cand[t]
            d = _distance(queries, q, db, i)
            if d <= radius and _first_table(queries, q, db, i, cand_table[t], starts, widths,
                                            radii):
                if c < cap:
                    ids[q, 0, c] = i
                    dist[q, 0, c] = d
                c += 1
        counts[q, 0] = c
    return counts, ids, dist


@njit(cache=True, nogil=True, inline="always")
def _sort_small(keys: np.ndarray, lo: int, hi: int) -> None:
    """Sort `keys[lo:hi]` in place: insertion sort for the few matches most queries have, the
    library sort for more."""
    if hi - lo > 32:
        keys[lo:hi].sort()
        return
    for i in range(lo + 1, hi):
        v = keys[i]
        j = i - 1
        while j >= lo and keys[j] > v:
            keys[j + 1] = keys[j]
            j -= 1
        keys[j + 1] = v


@njit(cache=True, nogil=True)
def gather_sorted(
    counts: np.ndarray, ids: np.ndarray, dist: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten `[Q, P, cap]` buffers (no count may exceed cap) into FAISS's range layout
    `(lims int64[Q+1], dist int32[K], ids int64[K])`, each query sorted by (distance, id).

    One thread, each query's keys sorted in their final slots of one array: at a few matches
    a query this is ~0.7 us a query, and as a parallel loop it cost more CPU than it saved
    (32,000 ORB queries: 0.02 s CPU on one thread, 0.10 s on two; on the loaded 2-core machine
    the parallel region's waits made it 15 s of a 600-image scan's 47 s of matching)."""
    nq, nparts = counts.shape
    lims = np.zeros(nq + 1, dtype=np.int64)
    for q in range(nq):
        lims[q + 1] = lims[q] + counts[q].sum()
    keys = np.empty(lims[nq], dtype=np.int64)
    out_ids = np.empty(lims[nq], dtype=np.int64)
    out_dist = np.empty(lims[nq], dtype=np.int32)
    for q in range(nq):
        k = lims[q]
        for p in range(nparts):
            for c in range(counts[q, p]):
                # distance <= 2^16 and id < 2^40: one int64 sorts by (distance, id)
                keys[k] = (np.int64(dist[q, p, c]) << 40) | ids[q, p, c]
                k += 1
        _sort_small(keys, lims[q], k)
        for j in range(lims[q], k):
            out_dist[j] = keys[j] >> 40
            out_ids[j] = keys[j] & ((np.int64(1) << 40) - 1)
    return lims, out_dist, out_ids


@njit(cache=True, nogil=True, parallel=True)
def brute_knn(
    db: np.ndarray, queries: np.ndarray, k: int, qblock: int, tile: int, pad_distance: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours by popcount scan: `(dist int32[Q,k], ids int64[Q,k])` sorted by
    (distance, id); rows past N are padded with (pad_distance, -1).

    Ids are scanned in ascending order, so a new code enters the kept list only when strictly
    closer than the current k-th: ties keep the smaller id, matching the (distance, id) order.
    """
    n = db.shape[0]
    nq = queries.shape[0]
    out_d = np.full((nq, k), pad_distance, dtype=np.int32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    nqb = (nq + qblock - 1) // qblock
    for qb in prange(nqb):
        q0 = qb * qblock
        q1 = min(q0 + qblock, nq)
        for t0 in range(0, n, tile):
            t1 = min(t0 + tile, n)
            for q in range(q0, q1):
                for i in range(t0, t1):
                    d = _distance(queries, q, db, i)
                    if d >= out_d[q, k - 1]:
                        continue
                    pos = k - 1
                    while pos > 0 and out_d[q, pos - 1] > d:
                        out_d[q, pos] = out_d[q, pos - 1]
                        out_i[q, pos] = out_i[q, pos - 1]
                        pos -= 1
                    out_d[q, pos] = d
                    out_i[q, pos] = i
    return out_d, out_i
