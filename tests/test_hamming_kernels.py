"""Each Hamming kernel against a plain-numpy reference on small seeded data."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from index import hamming_kernels as hk


def _codes(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    return rng.integers(0, 256, (n, nbytes), dtype=np.uint8)


def _ref_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(-1).astype(np.int32)


def _ref_bits(words: np.ndarray) -> np.ndarray:
    """bit p of each code, in the kernels' numbering (bit p % 64 of word p // 64)."""
    shifts = np.arange(64, dtype=np.uint64)
    return ((words[:, :, None] >> shifts) & np.uint64(1)).reshape(words.shape[0], -1)


def _ref_substring(words: np.ndarray, start: int, width: int) -> np.ndarray:
    bits = _ref_bits(words)[:, start:start + width].astype(np.int64)
    return (bits << np.arange(width, dtype=np.int64)).sum(axis=1)


def _ref_range(db: np.ndarray, q: np.ndarray, radius: int) -> list[list[tuple[int, int]]]:
    d = _ref_distances(q, db)
    return [sorted((int(row[i]), int(i)) for i in np.flatnonzero(row <= radius)) for row in d]


def _as_lists(lims: np.ndarray, dist: np.ndarray, ids: np.ndarray) -> list[list[tuple[int, int]]]:
    return [list(zip(dist[a:b].tolist(), ids[a:b].tolist(), strict=True))
            for a, b in zip(lims[:-1], lims[1:], strict=True)]


def test_popcount64_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**63, 1000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    x = np.concatenate([x, np.array([0, 2**64 - 1], dtype=np.uint64)])
    got = np.array([hk.popcount64(v) for v in x])
    assert np.array_equal(got, np.bitwise_count(x))


@pytest.mark.parametrize("nbytes", [8, 16, 32])
def test_pairwise_distances_matches_numpy(nbytes: int) -> None:
    rng = np.random.default_rng(1)
    a, b = _codes(rng, 17, nbytes), _codes(rng, 23, nbytes)
    got = hk.pairwise_distances(a.view(np.uint64), b.view(np.uint64))
    assert np.array_equal(got, _ref_distances(a, b))


@pytest.mark.parametrize(("start", "width"), [(0, 16), (5, 21), (60, 8), (40, 24), (232, 24)])
def test_substring_matches_bit_reference(start: int, width: int) -> None:
    words = _codes(np.random.default_rng(2), 50, 32).view(np.uint64)
    got = np.array([hk.substring(words, i, start, width) for i in range(50)])
    assert np.array_equal(got, _ref_substring(words, start, width))


@pytest.mark.parametrize(("nbytes", "radius", "nparts", "cap"),
                         [(32, 110, 1, 4), (32, 120, 3, 64), (8, 28, 2, 8), (24, 90, 4, 1000)])
def test_brute_range_matches_numpy(nbytes: int, radius: int, nparts: int, cap: int) -> None:
    rng = np.random.default_rng(3)
    db, q = _codes(rng, 301, nbytes), _codes(rng, 37, nbytes)
    counts, ids, dist = hk.brute_range(db.view(np.uint64), q.view(np.uint64), radius, 5, nparts,
                                       64, cap)
    ref = _ref_range(db, q, radius)
    assert counts.sum(axis=1).tolist() == [len(r) for r in ref]
    for qi in range(len(q)):
        kept = [(int(dist[qi, p, c]), int(ids[qi, p, c]))
                for p in range(nparts) for c in range(min(cap, counts[qi, p]))]
        assert set(kept) <= set(ref[qi])
        if counts[qi].max() <= cap:
            assert sorted(kept) == ref[qi]


def test_gather_sorted_orders_by_distance_then_id() -> None:
    counts = np.array([[2, 1], [0, 0], [1, 2]], dtype=np.int64)
    ids = np.array([[[9, 3], [4, 0]], [[0, 0], [0, 0]], [[7, 0], [2, 1]]], dtype=np.int64)
    dist = np.array([[[5, 5], [1, 0]], [[0, 0], [0, 0]], [[3, 0], [3, 3]]], dtype=np.int32)
    lims, d, i = hk.gather_sorted(counts, ids, dist)
    assert lims.tolist() == [0, 3, 3, 6]
    assert list(zip(d.tolist(), i.tolist(), strict=True)) == [
        (1, 4), (5, 3), (5, 9), (3, 1), (3, 2), (3, 7)]


def _tables(words: np.ndarray, widths: list[int]) -> tuple[np.ndarray, ...]:
    w = np.array(widths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(w)[:-1]]).astype(np.int64)
    sizes = (1 << w) + 1
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    offsets = np.zeros(int(sizes.sum()), dtype=np.uint32)
    ids = np.empty((len(widths), words.shape[0]), dtype=np.uint32)
    hk.mih_build(words, starts, w, base, offsets, ids)
    return starts, w, base, offsets, ids


def test_mih_build_is_a_stable_counting_sort() -> None:
    words = _codes(np.random.default_rng(4), 500, 8).view(np.uint64)
    widths = [10, 9, 13, 8, 12, 12]
    starts, w, base, offsets, ids = _tables(words, widths)
    for j, (s, width) in enumerate(zip(starts, widths, strict=True)):
        values = _ref_substring(words, int(s), width)
        assert np.array_equal(ids[j], np.argsort(values, kind="stable"))
        table = offsets[base[j]:base[j] + (1 << width) + 1].astype(np.int64)
        counts = np.bincount(values, minlength=1 << width)
        assert np.array_equal(table, np.concatenate([[0], np.cumsum(counts)]))


@pytest.mark.parametrize(("radius", "widths", "radii"), [
    (12, [16, 16, 16, 16], [3, 3, 3, 3]),
    (9, [22, 21, 21], [3, 3, 3]),
    (5, [16, 16, 16, 16], [1, 1, 0, 0]),
    (0, [16, 16, 16, 16], [0, -1, -1, -1]),
])
def test_mih_range_matches_numpy(radius: int, widths: list[int], radii: list[int]) -> None:
    rng = np.random.default_rng(5)
    db = _codes(rng, 400, 8)
    q = _codes(rng, 40, 8)
    for k in range(20):  # near neighbours of the first queries, at distances 0..radius+2
        flip = rng.permutation(64)[: k % (radius + 3)]
        bits = np.unpackbits(q[k])
        bits[flip] ^= 1
        db[k * 3] = np.packbits(bits)
    words = db.view(np.uint64)
    starts, w, base, offsets, ids = _tables(words, widths)
    masks, mask_start = [], [0]
    for width, r in zip(widths, radii, strict=True):
        masks += [sum(1 << b for b in c) for k in range(r + 1) for c in combinations(range(width), k)]
        mask_start.append(len(masks))
    counts, out_ids, out_d = hk.mih_range(
        words, q.view(np.uint64), starts, w, np.array(radii, dtype=np.int64), base, offsets, ids,
        np.array(masks, dtype=np.int64), np.array(mask_start, dtype=np.int64), radius, 64, 4)
    assert counts.max() <= 64
    assert _as_lists(*hk.gather_sorted(counts, out_ids, out_d)) == _ref_range(db, q, radius)


@pytest.mark.parametrize(("n", "k"), [(200, 1), (200, 7), (5, 9)])
def test_brute_knn_matches_numpy(n: int, k: int) -> None:
    rng = np.random.default_rng(6)
    db, q = _codes(rng, n, 32), _codes(rng, 13, 32)
    db[n // 2] = db[1]  # a tie at equal distance: the smaller id comes first
    d, i = hk.brute_knn(db.view(np.uint64), q.view(np.uint64), k, 4, 32, 2**31 - 1)
    ref = _ref_distances(q, db)
    for qi in range(len(q)):
        order = np.lexsort((np.arange(n), ref[qi]))[:k]
        pad = k - order.size
        assert i[qi].tolist() == order.tolist() + [-1] * pad
        assert d[qi].tolist() == ref[qi][order].tolist() + [2**31 - 1] * pad
