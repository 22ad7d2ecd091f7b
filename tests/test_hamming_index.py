"""`HammingIndex` and `dihedral_range_search` against numpy brute force.

Every method (scan, multi-index hashing, auto) must return exactly the numpy answer, with
planted neighbours at distance radius (must match: the radius is inclusive) and radius + 1
(must not).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index import hamming
from index.hamming import HammingIndex, choose_plan, dihedral_range_search
from index.protocol import PAD_DISTANCE, BinaryIndex


def numpy_range(db: np.ndarray, q: np.ndarray, radius: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference: FAISS range layout, inclusive radius, each query sorted by (dist, id)."""
    lims, dists, ids = [0], [], []
    for row in q:
        d = np.bitwise_count(db ^ row).sum(axis=1)
        hit = np.flatnonzero(d <= radius)
        order = np.lexsort((hit, d[hit]))
        dists.append(d[hit][order])
        ids.append(hit[order])
        lims.append(lims[-1] + hit.size)
    return (np.array(lims, dtype=np.int64), np.concatenate(dists).astype(np.int32),
            np.concatenate(ids).astype(np.int64))


def flip(code: np.ndarray, nbits: int, rng: np.random.Generator) -> np.ndarray:
    bits = np.unpackbits(code)
    bits[rng.choice(bits.size, size=nbits, replace=False)] ^= 1
    return np.packbits(bits)


def planted(seed: int, n: int, nq: int, nbytes: int, radius: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Random codes plus, for each query, neighbours at exactly radius and radius + 1 (and an
    exact copy), placed at random rows."""
    rng = np.random.default_rng(seed)
    db = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    q = rng.integers(0, 256, (nq, nbytes), dtype=np.uint8)
    rows = rng.permutation(n)
    k = 0
    for qi in range(nq):
        for d in (0, radius, radius + 1):
            if k < n and d <= nbytes * 8:
                db[rows[k]] = flip(q[qi], d, rng)
                k += 1
    return db, q


def assert_same(got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> None:
    for g, w, name in zip(got, want, ("lims", "distances", "ids"), strict=True):
        assert g.dtype == w.dtype, name
        assert np.array_equal(g, w), name


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nbytes=st.sampled_from([8, 32]),
       n=st.integers(1, 3000), nq=st.integers(1, 12), radius=st.integers(0, 40),
       method=st.sampled_from(["brute", "mih", "series", "auto"]))
def test_every_method_equals_numpy(seed: int, nbytes: int, n: int, nq: int, radius: int,
                                   method: hamming.Method) -> None:
    db, q = planted(seed, n, nq, nbytes, radius)
    got = HammingIndex(db, method=method).range_search(q, radius)
    assert_same(got, numpy_range(db, q, radius))


@pytest.mark.parametrize(("nbytes", "radius", "method"), [
    (32, 31, "auto"), (32, 31, "mih"), (32, 0, "auto"), (32, 8, "mih"), (8, 8, "auto"),
    (8, 0, "mih"),
])
def test_large_n_multi_index_equals_numpy(nbytes: int, radius: int,
                                          method: hamming.Method) -> None:
    db, q = planted(7, 200_000, 12, nbytes, radius)
    index = HammingIndex(db, method=method)
    assert index.plan(radius).method == "mih"
    assert_same(index.range_search(q, radius), numpy_range(db, q, radius))


def test_auto_falls_back_to_the_scan_when_mih_would_not_pay() -> None:
    assert choose_plan(200_000, 256, 31).method == "mih"
    assert choose_plan(200_000, 256, 120).method == "brute"  # huge probe balls
    assert choose_plan(1_000, 256, 31).method == "brute"  # too few codes to pay for tables
    assert choose_plan(200_000, 64, 64).method == "brute"  # radius covers every code
    db, q = planted(8, 20_000, 5, 32, 100)
    index = HammingIndex(db)
    assert index.plan(100).method == "brute"
    assert_same(index.range_search(q, 100), numpy_range(db, q, 100))


def test_memory_budget_limits_the_tables() -> None:
    plan = choose_plan(10_000_000, 256, 31)
    assert plan.method == "mih" and plan.table_bytes < 700 << 20
    small = choose_plan(10_000_000, 256, 31, memory_budget=100 << 20)
    assert small.method == "brute" or small.table_bytes <= 100 << 20


@pytest.mark.parametrize("method", ["brute", "mih", "series"])
def test_more_matches_than_the_first_buffer(method: hamming.Method) -> None:
    rng = np.random.default_rng(9)
    db = rng.integers(0, 256, (30_000, 32), dtype=np.uint8)
    q = rng.integers(0, 256, (4, 32), dtype=np.uint8)
    for j in range(300):  # 300 near-duplicates of query 1: far beyond the first-pass buffer
        db[j * 7] = flip(q[1], j % 20, rng)
    index = HammingIndex(db, method=method)
    assert_same(index.range_search(q, 31), numpy_range(db, q, 31))


def test_query_batches_are_concatenated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hamming, "_QUERY_BATCH", 3)
    db, q = planted(10, 5_000, 10, 8, 6)
    for method in ("brute", "mih", "series"):
        got = HammingIndex(db, method=method).range_search(q, 6)  # type: ignore[arg-type]
        assert_same(got, numpy_range(db, q, 6))


def test_empty_inputs_and_protocol() -> None:
    db, q = planted(11, 100, 3, 32, 4)
    index = HammingIndex(db)
    assert isinstance(index, BinaryIndex)
    assert index.ntotal == 100 and index.nbytes == 32
    lims, d, i = index.range_search(q[:0], 4)
    assert lims.tolist() == [0] and d.size == 0 and i.size == 0
    lims, d, i = HammingIndex(db[:0]).range_search(q, 4)
    assert lims.tolist() == [0, 0, 0, 0] and d.size == 0


@pytest.mark.parametrize("bad", [
    np.zeros((3, 32), dtype=np.int64), np.zeros(32, dtype=np.uint8),
    np.zeros((3, 12), dtype=np.uint8), np.zeros((3, 8), dtype=np.uint8),
])
def test_hostile_query_shapes_are_refused(bad: np.ndarray) -> None:
    index = HammingIndex(np.zeros((5, 32), dtype=np.uint8))
    with pytest.raises(ValueError):
        index.range_search(bad, 3)
    with pytest.raises(ValueError):
        index.range_search(np.zeros((1, 32), dtype=np.uint8), -1)


def test_non_contiguous_input_is_accepted() -> None:
    db, q = planted(12, 400, 4, 32, 10)
    wide = np.zeros((400, 64), dtype=np.uint8)
    wide[:, ::2] = db  # a strided view with the same values
    index = HammingIndex(np.ascontiguousarray(wide[:, ::2]))
    assert_same(index.range_search(q[::-1], 10), numpy_range(db, q[::-1], 10))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nbytes=st.sampled_from([8, 32]),
       n=st.integers(1, 500), k=st.integers(1, 12))
def test_knn_equals_numpy(seed: int, nbytes: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    db = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    db[n // 2] = db[0]  # a tie: the smaller id comes first
    q = rng.integers(0, 256, (5, nbytes), dtype=np.uint8)
    dist, ids = HammingIndex(db).knn(q, k)
    for row, qd, qi in zip(q, dist, ids, strict=True):
        d = np.bitwise_count(db ^ row).sum(axis=1)
        order = np.lexsort((np.arange(n), d))[:k]
        pad = k - order.size
        assert qi.tolist() == order.tolist() + [-1] * pad
        assert qd.tolist() == d[order].tolist() + [PAD_DISTANCE] * pad


def test_dihedral_reports_the_closest_variant() -> None:
    rng = np.random.default_rng(13)
    db = rng.integers(0, 256, (50_000, 32), dtype=np.uint8)
    variants = rng.integers(0, 256, (2, 8, 32), dtype=np.uint8)
    db[10] = flip(variants[0, 3], 5, rng)     # query 0 via variant 3 only
    db[20] = flip(variants[0, 6], 31, rng)    # query 0 via variant 6, at the radius
    db[30] = flip(variants[0, 2], 32, rng)    # one past the radius: no match
    db[40] = variants[1, 7]                   # query 1, exact, variant 7 ...
    variants[1, 1] = flip(variants[1, 7], 4, rng)  # ... also near variant 1, but farther
    db[41] = variants[1, 1]                   # an exact copy of variant 1
    for method in ("brute", "mih", "series"):
        index = HammingIndex(db, method=method)  # type: ignore[arg-type]
        got = dihedral_range_search(index, variants, 31)
        assert (0, 3, 10, 5) in got and (0, 6, 20, 31) in got
        assert not any(m[2] == 30 for m in got)
        assert (1, 7, 40, 0) in got and (1, 1, 41, 0) in got
        assert len({(m[0], m[2]) for m in got}) == len(got)  # one row per (query, id)
        # every row agrees with numpy: the reported variant is the closest one
        for qi, v, i, d in got:
            per_variant = np.bitwise_count(variants[qi] ^ db[i]).sum(axis=1)
            assert d == per_variant.min() and v == int(np.argmin(per_variant))
        assert got == sorted(got, key=lambda m: (m[0], m[3], m[2]))
