"""In-case clustering: components of the case's own PDQ hashes (cross-checked by brute force),
and the suggested category for unknown members of clusters holding known-bad material."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hashing.types import HashRecord
from triage.cluster import cluster_records
from triage.match import Reason
from triage.policy import Policy


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
