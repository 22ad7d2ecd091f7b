"""In-case clustering: components of the case's own PDQ hashes (cross-checked by brute force),
and the suggested category for unknown members of clusters holding known-bad material; the
union-find kernels against scipy, and dense near-duplicate groups without all-pairs searches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hashing.types import FrameHash, HashRecord
from index.hamming import HammingIndex
from triage import cluster as cluster_mod
from triage.cluster import cluster_items
from triage.cluster_kernels import roots, union_pairs
from triage.items import CaseItem
from triage.match import Reason, known_bad
from triage.policy import Policy


@dataclass(frozen=True)
class _Clusters:
    cluster_of: dict[int, str]
    suggested: dict[int, Reason]
    sizes: dict[str, int]


def cluster_records(records: list[HashRecord], reasons: list[tuple[Reason, ...]],
                    policy: Policy) -> _Clusters:
    """`cluster_items` over items built from parallel test inputs, read back per ordinal."""
    items = cluster_items([CaseItem(k, r, reasons=tuple(why)) for k, (r, why) in
                           enumerate(zip(records, reasons, strict=True))], policy)
    cluster_of = {i.ordinal: i.cluster for i in items if i.cluster is not None}
    suggested = {i.ordinal: i.suggestion for i in items if i.suggestion is not None}
    sizes: dict[str, int] = {}
    for cid in cluster_of.values():
        sizes[cid] = sizes.get(cid, 0) + 1
    return _Clusters(cluster_of, suggested, sizes)


def _rand(rng: np.random.Generator) -> bytes:
    return rng.integers(0, 256, 32, dtype=np.uint8).tobytes()


def _flip(b: bytes, bits: list[int]) -> bytes:
    a = np.unpackbits(np.frombuffer(b, np.uint8)).copy()
    a[bits] ^= 1
    return np.packbits(a).tobytes()


def _rec(path: str, h: bytes, quality: int = 90) -> HashRecord:
    return HashRecord(path=path, status="hashed", media_type="image/png",
                      hashes={"pdq": h.hex()}, pdq_quality=quality)


def _bad(entry: str, category: str) -> tuple[Reason, ...]:
    return (Reason("exact", "md5", "bank", entry, 0, category),)


def _brute_components(codes: list[bytes], radius: int) -> set[frozenset[int]]:
    n = len(codes)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for i in range(n):
        for j in range(n):
            d = sum(bin(a ^ b).count("1") for a, b in zip(codes[i], codes[j], strict=True))
            if d <= radius:
                parent[find(i)] = find(j)
    groups: dict[int, set[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), set()).add(i)
    return {frozenset(g) for g in groups.values() if len(g) > 1}


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 12))
def test_clusters_equal_brute_force(seed: int, n_bases: int) -> None:
    rng = np.random.default_rng(seed)
    codes: list[bytes] = []
    for _ in range(n_bases):
        base = _rand(rng)
        codes.append(base)
        for _ in range(int(rng.integers(0, 3))):
            k = int(rng.integers(20, 40))  # straddles the radius
            codes.append(_flip(base, list(rng.choice(256, k, replace=False))))
    records = [_rec(f"/e/{i:03d}", c) for i, c in enumerate(codes)]
    clusters = cluster_records(records, [()] * len(records), Policy())
    got: dict[str, set[int]] = {}
    for i, cid in clusters.cluster_of.items():
        got.setdefault(cid, set()).add(i)
    assert {frozenset(g) for g in got.values()} == _brute_components(codes, 31)
    assert clusters.sizes == {cid: len(g) for cid, g in got.items()}


def test_unknown_member_gets_suggested_category() -> None:
    rng = np.random.default_rng(3)
    base = _rand(rng)
    near_bad = _flip(base, list(range(10)))
    unknown = _flip(base, list(range(100, 120)))  # 20 from base, 30 from near_bad
    far = _rand(rng)
    records = [_rec("/a", base), _rec("/b", near_bad), _rec("/c", unknown), _rec("/d", far),
               _rec("/e", _flip(unknown, [200]), quality=10)]
    reasons = [_bad("E1", "2"), _bad("E2", "2"), (), (), ()]
    c = cluster_records(records, reasons, Policy())
    assert c.cluster_of == {0: "C00001", 1: "C00001", 2: "C00001"}  # /e is under the floor
    s = c.suggested[2]
    assert (s.kind, s.category, s.distance, s.via, s.entry) == ("cluster", "2", 20, "/a", "E1")
    assert set(c.suggested) == {2}
    assert cluster_records(records, reasons, Policy(cluster_enabled=False)).cluster_of == {}


def test_union_find_matches_scipy_components() -> None:
    rng = np.random.default_rng(11)
    n = 300
    a = rng.integers(0, n, 250).astype(np.int64)
    b = rng.integers(0, n, 250).astype(np.int64)
    parent = np.arange(n, dtype=np.int64)
    union_pairs(parent, a[:100], b[:100])
    union_pairs(parent, a[100:], b[100:])  # merged block by block
    got = roots(parent)
    _, ref = connected_components(coo_matrix((np.ones(a.size), (a, b)), shape=(n, n)),
                                  directed=False)
    assert all(got[i] == got[j] for i, j in zip(a, b, strict=True))
    assert len(set(got.tolist())) == len(set(ref.tolist()))
    for label in set(ref.tolist()):  # each root is its component's smallest node
        nodes = np.flatnonzero(ref == label)
        assert set(got[nodes].tolist()) == {nodes.min()}


def _bits(rows: list[bytes]) -> np.ndarray:
    return np.unpackbits(np.frombuffer(b"".join(rows), np.uint8).reshape(len(rows), 32), axis=1)


def _reference(records: list[HashRecord], reasons: list[tuple[Reason, ...]],
               radius: int) -> tuple[set[frozenset[int]], dict[int, tuple[int, str]]]:
    """Numpy all-pairs distances, a plain union-find over records, and the nearest known-bad
    member of each unknown's component (smallest distance, then smallest record index)."""
    owners = [i for i, r in enumerate(records) for _ in _hashes(r)]
    rows = [h for r in records for h in _hashes(r)]
    bits = _bits(rows).astype(np.int64)
    dist = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    parent = list(range(len(records)))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for u, v in zip(*np.nonzero(dist <= radius), strict=True):
        parent[find(owners[u])] = find(owners[v])
    comps: dict[int, set[int]] = {}
    for i in sorted(set(owners)):
        comps.setdefault(find(i), set()).add(i)
    groups = {frozenset(g) for g in comps.values() if len(g) > 1}
    nearest: dict[int, tuple[int, str]] = {}
    for g in groups:
        bad = sorted(i for i in g if known_bad(reasons[i]))
        for i in g:
            if not bad or known_bad(reasons[i]):
                continue
            mine = [u for u, o in enumerate(owners) if o == i]
            best = min((int(dist[u, v]), j) for j in bad for u in mine
                       for v, o in enumerate(owners) if o == j)
            nearest[i] = (best[0], records[best[1]].path)
    return groups, nearest


def _hashes(rec: HashRecord) -> list[bytes]:
    out = [bytes.fromhex(rec.hashes["pdq"])] if "pdq" in rec.hashes else []
    return out + [bytes.fromhex(f.pdq) for f in rec.pdq_frames or ()]


def _planted(seed: int) -> tuple[list[HashRecord], list[tuple[Reason, ...]]]:
    """Dense groups of near-duplicates (some identical), groups bridged by chains, random
    singles, and a few two-frame videos whose frames sit in different groups."""
    rng = np.random.default_rng(seed)
    bases = [_rand(rng) for _ in range(5)]
    codes: list[bytes] = []
    for base in bases:
        for _ in range(int(rng.integers(20, 60))):
            k = int(rng.integers(0, 20))
            h = _flip(base, list(rng.choice(256, k, replace=False)))
            codes.extend([h] * int(rng.integers(1, 3)))
    step = _flip(bases[0], list(range(28)))  # 28 from base 0 and 28 from its own near copy
    codes += [step, _flip(step, list(range(100, 128)))]
    codes += [_rand(rng) for _ in range(15)]
    order = rng.permutation(len(codes))
    records = [_rec(f"/e/{i:04d}", codes[j]) for i, j in enumerate(order)]
    for k in range(3):
        a, b = (bases[k], bases[k + 2])
        records.append(HashRecord(
            path=f"/v/{k}", status="hashed", media_type="video/mp4",
            pdq_frames=(FrameHash(0.0, _flip(a, [k, 40]).hex(), 90),
                        FrameHash(1.0, _flip(b, [k]).hex(), 90))))
    reasons = [_bad(f"E{i}", str(1 + i % 3)) if rng.random() < 0.08 else () for i in
               range(len(records))]
    return records, reasons


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("share", [0.0, 1.0])  # forces the plain search, then the leaders
def test_clusters_and_suggestions_equal_brute_force_on_planted_groups(
        seed: int, share: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_mod, "LEADER_SHARE", share)
    records, reasons = _planted(seed)
    c = cluster_records(records, reasons, Policy())
    groups, nearest = _reference(records, reasons, 31)
    got: dict[str, set[int]] = {}
    for i, cid in c.cluster_of.items():
        got.setdefault(cid, set()).add(i)
    assert {frozenset(g) for g in got.values()} == groups
    firsts = [min(got[cid]) for cid in sorted(got)]
    assert firsts == sorted(firsts)  # ids numbered by first record
    assert {i: (r.distance, r.via) for i, r in c.suggested.items()} == nearest


def _count_pairs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    returned: list[int] = []
    search = HammingIndex.range_search

    def counting(self: HammingIndex, queries: np.ndarray, radius: int) -> Any:
        out = search(self, queries, radius)
        returned.append(int(out[2].size))
        return out

    monkeypatch.setattr(cluster_mod.HammingIndex, "range_search", counting)
    return returned


def test_identical_hashes_cluster_without_all_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    returned = _count_pairs(monkeypatch)
    h = _rand(np.random.default_rng(5))
    records = [_rec(f"/e/{i:05d}", h) for i in range(5000)]
    reasons = [_bad("E1", "3")] + [()] * 4999
    c = cluster_records(records, reasons, Policy())
    assert set(c.cluster_of.values()) == {"C00001"} and c.sizes == {"C00001": 5000}
    assert len(c.suggested) == 4999
    assert {(r.distance, r.via) for r in c.suggested.values()} == {(0, "/e/00000")}
    assert sum(returned) <= 10  # one unique hash, not 25M pairs


def test_dense_near_duplicates_avoid_quadratic_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    returned = _count_pairs(monkeypatch)
    rng = np.random.default_rng(6)
    base = _rand(rng)
    n = 3000
    codes = [_flip(base, list(rng.choice(256, int(rng.integers(1, 8)), replace=False)))
             for _ in range(n)]
    records = [_rec(f"/e/{i:05d}", h) for i, h in enumerate(codes)]
    c = cluster_records(records, [()] * n, Policy())
    assert c.sizes == {"C00001": n}  # all within 14 of each other
    assert sum(returned) < n * n // 8


def test_many_clusters_with_known_bad_equal_brute_force() -> None:
    rng = np.random.default_rng(9)
    codes: list[bytes] = []
    for _ in range(40):
        base = _rand(rng)
        codes += [_flip(base, list(rng.choice(256, int(rng.integers(0, 25)), replace=False)))
                  for _ in range(int(rng.integers(1, 7)))]
    order = rng.permutation(len(codes))
    records = [_rec(f"/e/{i:04d}", codes[j]) for i, j in enumerate(order)]
    reasons = [_bad(f"E{i}", str(1 + i % 3)) if rng.random() < 0.3 else () for i in
               range(len(records))]
    c = cluster_records(records, reasons, Policy())
    groups, nearest = _reference(records, reasons, 31)
    assert len(groups) > 20 and len(nearest) > 20
    assert {frozenset(i for i, g in c.cluster_of.items() if g == cid) for cid in c.sizes} == groups
    assert {i: (r.distance, r.via) for i, r in c.suggested.items()} == nearest
