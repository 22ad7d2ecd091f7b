"""The series layer of `HammingIndex` (`index.series`, `index.series_kernels`).

Each kernel against a plain-numpy reference; the layer's groups against the series that made the
codes (pure, not chained by chance collisions); searches through it against numpy brute force
on clustered codes, with neighbours planted at the radius and one past it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_hamming_index import assert_same, flip, numpy_range

from benchmarks.matching import flip_bits
from index import series
from index import series_kernels as sk
from index.hamming import HammingIndex, _as_words


def clustered(seed: int, pictures: int, per: int, lo: int = 5, hi: int = 40, loose: int = 0,
              nbytes: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """`pictures` x `per` variants `lo`-`hi` bits from their picture, plus `loose` random
    codes, shuffled; returns the codes and each code's picture (-1 for loose ones)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (pictures, nbytes), dtype=np.uint8)
    codes = np.concatenate([flip_bits(np.repeat(base, per, axis=0), lo, hi, rng),
                            rng.integers(0, 256, (loose, nbytes), dtype=np.uint8)])
    label = np.concatenate([np.repeat(np.arange(pictures), per), np.full(loose, -1)])
    order = rng.permutation(codes.shape[0])
    return codes[order], label[order]


def bits(words: np.ndarray) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")


def substrings(words: np.ndarray, start: int, width: int) -> np.ndarray:
    b = bits(words)[:, start:start + width].astype(np.int64)
    return (b << np.arange(width)).sum(axis=1)


def test_heavy_links_match_numpy() -> None:
    codes, _ = clustered(1, 20, 30, loose=300)
    words = _as_words(codes, "codes")
    starts, widths = np.array([0, 13, 200]), np.array([13, 20, 11])
    target, sq = sk.heavy_links(words, starts, widths, 8, 80)
    for j, (start, width) in enumerate(zip(starts, widths, strict=True)):
        values = substrings(words, start, width)
        counts = np.bincount(values, minlength=1 << width)
        assert sq[j] == float((counts.astype(np.float64) ** 2).sum())
        want = np.full(words.shape[0], -1)
        first: dict[int, int] = {}
        for i, v in enumerate(values):
            if counts[v] < 8:
                continue
            if v not in first:
                first[v] = i
            elif np.bitwise_count(codes[i] ^ codes[first[v]]).sum() <= 80:
                want[i] = first[v]
        assert np.array_equal(target[j], want)


def test_union_links_and_roots_give_components() -> None:
    target = np.array([[-1, 0, -1, 2, -1, -1], [-1, -1, 1, -1, 3, -1]], dtype=np.int32)
    parent = np.arange(6, dtype=np.int64)
    sk.union_links(target, parent)
    root = sk.roots(parent)
    assert list(root) == [0, 0, 0, 0, 0, 5]  # 0-1, 2-3 joined; 2-1 and 4-3 bridge them


def test_majority_codes_and_member_distances_match_numpy() -> None:
    codes, _ = clustered(2, 5, 9)
    words = _as_words(codes, "codes")
    member_ids = np.array([3, 7, 8, 11, 2, 5, 30, 31, 40], dtype=np.int64)
    member_start = np.array([0, 4, 4, 9], dtype=np.int64)  # the middle group is empty
    reps = sk.majority_codes(words, member_start, member_ids)
    for s in range(3):
        members = bits(words[member_ids[member_start[s]:member_start[s + 1]]])
        want = (2 * members.sum(axis=0) > members.shape[0]).astype(np.uint8)
        assert np.array_equal(bits(reps[s:s + 1])[0], want)
    dist = sk.member_distances(words, reps, member_start, member_ids)
    group = np.repeat(np.arange(3), np.diff(member_start))
    want_d = np.bitwise_count(words[member_ids] ^ reps[group]).sum(axis=1)
    assert np.array_equal(dist, want_d)


def test_attach_finds_a_representative_within_one_bit_of_a_substring() -> None:
    rng = np.random.default_rng(3)
    reps = rng.integers(0, 256, (3, 32), dtype=np.uint8)
    far = reps[1].copy()
    bits_ = np.unpackbits(far)
    bits_[np.arange(0, 256, 5)[:40]] ^= 1  # 40 bits flipped, spread over every substring
    codes = np.stack([flip(reps[0], 3, rng), far, rng.integers(0, 256, 32, dtype=np.uint8),
                      np.packbits(bits_)])
    words = _as_words(codes, "codes")
    rep_words = _as_words(reps, "reps")
    starts, widths = np.array([0, 128]), np.array([20, 20])
    found, d = sk.attach(words, np.arange(4), rep_words, starts, widths, 64)
    assert found[0] == 0 and d[0] == 3  # a few flips: some substring is intact
    assert found[1] == 1 and d[1] == 0
    assert found[2] == -1  # a random code is near nothing
    for t in range(4):  # every attachment is within the cap of its representative
        if found[t] >= 0:
            assert np.bitwise_count(codes[t] ^ reps[found[t]]).sum() == d[t] <= 64
            parts = [substrings(words[t:t + 1], s, w)[0] ^ substrings(rep_words[found[t]:
                     found[t] + 1], s, w)[0] for s, w in zip(starts, widths, strict=True)]
            assert min(bin(int(x)).count("1") for x in parts) <= 1


def test_merge_ranges_keeps_distance_then_id_order() -> None:
    a = (np.array([0, 2, 2, 3]), np.array([1, 5, 0], np.int32), np.array([4, 2, 9]))
    b = (np.array([0, 1, 3, 3]), np.array([1, 0, 2], np.int32), np.array([3, 7, 1]))
    lims, d, i = series.merge(a, b)
    assert list(lims) == [0, 3, 5, 6]
    assert list(zip(d, i, strict=True)) == [(1, 3), (1, 4), (5, 2), (0, 7), (2, 1), (0, 9)]


def test_series_are_the_pictures_that_made_them() -> None:
    codes, label = clustered(4, 300, 60, loose=3000)
    layer, skew = series.find_series(_as_words(codes, "codes"), 256)
    assert layer is not None and skew > 2.0
    assert 0.9 * 300 <= layer.nseries <= 300  # no two pictures chained into one series
    for s in range(layer.nseries):
        members = layer.member_ids[layer.member_start[s]:layer.member_start[s + 1]]
        assert len(set(label[members])) == 1 and label[members[0]] >= 0
        assert layer.reach[s] == layer.member_dist[layer.member_start[s]:
                                                   layer.member_start[s + 1]].max() <= 64
    assert layer.nmembers >= 0.95 * 300 * 60  # heavily edited variants are attached too
    assert set(layer.rest_ids) | set(layer.member_ids) == set(range(codes.shape[0]))
    assert not set(layer.rest_ids) & set(layer.member_ids)


def test_uniform_codes_have_no_series() -> None:
    codes = np.random.default_rng(5).integers(0, 256, (60_000, 32), dtype=np.uint8)
    layer, skew = series.find_series(_as_words(codes, "codes"), 256)
    assert layer is None and 0.9 < skew < 1.2
    # no series: the ordinary plan (at 60,000 codes the scan and MIH cost the same, 24 us a
    # query, and which wins is the cost model's call)
    assert HammingIndex(codes).plan(31).method in ("brute", "mih")


def test_auto_takes_series_on_a_clustered_bank_and_stays_exact() -> None:
    codes, _ = clustered(6, 400, 100)
    rng = np.random.default_rng(7)
    q = np.concatenate([flip_bits(codes[:30], 10, 30, rng),
                        rng.integers(0, 256, (10, 32), dtype=np.uint8)])
    for qi in range(10):  # neighbours at the radius (must match) and one past it (must not)
        codes[1000 + qi] = flip(q[qi], 31, rng)
        codes[2000 + qi] = flip(q[qi], 32, rng)
    index = HammingIndex(codes)
    plan = index.prepare(31)
    assert plan.method == "series" and plan.nseries > 300 and plan.rest is not None
    assert_same(index.range_search(q, 31), numpy_range(codes, q, 31))
    assert index.table_bytes > 0
    assert_same(HammingIndex(codes, method="mih").range_search(q, 31),
                index.range_search(q, 31))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), pictures=st.integers(1, 30), per=st.integers(1, 40),
       loose=st.integers(0, 300), lo=st.integers(0, 20), radius=st.integers(0, 70),
       nbytes=st.sampled_from([8, 32]))
def test_series_search_equals_numpy(seed: int, pictures: int, per: int, loose: int, lo: int,
                                    radius: int, nbytes: int) -> None:
    nbits = nbytes * 8
    codes, _ = clustered(seed, pictures, per, lo, lo + nbits // 8, loose, nbytes)
    rng = np.random.default_rng(seed)
    q = np.concatenate([codes[: min(5, codes.shape[0])],
                        rng.integers(0, 256, (3, nbytes), dtype=np.uint8)])
    for qi in range(min(3, codes.shape[0] - 1)):
        codes[-1 - qi] = flip(q[qi], min(radius, nbits), rng)
    got = HammingIndex(codes, method="series").range_search(q, radius)
    assert_same(got, numpy_range(codes, q, radius))


@pytest.mark.parametrize("nbytes", [8, 16, 32])
def test_grouping_layout_covers_every_bit_once(nbytes: int) -> None:
    for n in (10, 50_000, 2_000_000, 10**8):
        starts, widths = series.grouping_layout(n, nbytes * 8)
        assert starts[0] == 0 and starts[-1] + widths[-1] == nbytes * 8
        assert np.array_equal(starts[1:], (starts + widths)[:-1])
        assert widths.max() <= 32
