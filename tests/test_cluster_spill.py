"""Spilled clustering (`triage.cluster_spill`): the same clusters and suggestions as the
in-memory path, whatever the block size, and nothing left behind in the spill folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triage.cluster import cluster_nodes
from triage.cluster_spill import ClusterSpill, SpilledGraph


def _case(seed: int, n_bases: int, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """Series of near-duplicates (0-12 bits from a base), exact duplicates, and a few items
    with several nodes (a video's frames): `(owners, codes)`, owners nondecreasing."""
    rng = np.random.default_rng(seed)
    bases = np.unpackbits(rng.integers(0, 256, (n_bases, 32), dtype=np.uint8), axis=1)
    rows = []
    for b in range(n_bases):
        for _ in range(copies):
            code = bases[b].copy()
            code[rng.choice(256, int(rng.integers(0, 13)), replace=False)] ^= 1
            rows.append(code)
            if rng.random() < 0.2:
                rows.append(code.copy())  # an exact duplicate: one node of the graph
    codes = np.packbits(np.asarray(rows), axis=1)[rng.permutation(len(rows))]
    # some items own two or three consecutive nodes
    owners = np.cumsum(rng.random(len(rows)) < 0.98).astype(np.int64)
    return owners - owners[0], codes


@pytest.mark.parametrize(("seed", "block"), [(1, 2), (2, 7), (3, 64), (4, 1000)])
def test_spilled_clusters_equal_in_memory(tmp_path: Path, seed: int, block: int) -> None:
    owners, codes = _case(seed, n_bases=40, copies=6)
    items = int(owners[-1]) + 1
    rng = np.random.default_rng(seed + 100)
    bad = np.sort(rng.choice(items, 6, replace=False)).astype(np.int64)
    good = np.setdiff1d(np.sort(rng.choice(items, 4, replace=False)), bad).astype(np.int64)
    expected = cluster_nodes(owners, codes, bad, good, 31)
    got = cluster_nodes(owners, codes, bad, good, 31, ClusterSpill(tmp_path, block))
    assert len(expected.members) > 5 and expected.nearest  # the case has clusters to find
    assert [m.tolist() for m in got.members] == [m.tolist() for m in expected.members]
    assert got.nearest == expected.nearest
    assert list(tmp_path.iterdir()) == []  # spill files removed


def test_sorted_unique_matches_numpy(tmp_path: Path) -> None:
    _, codes = _case(5, n_bases=30, copies=5)
    with SpilledGraph(ClusterSpill(tmp_path, 4)) as graph:
        uniq, inverse = graph.sorted_unique(codes)
        ref_uniq, ref_inverse = np.unique(codes, axis=0, return_inverse=True)
        assert np.array_equal(uniq, ref_uniq)
        assert np.array_equal(inverse, ref_inverse.reshape(-1))


def test_budget_sets_block_nodes(tmp_path: Path) -> None:
    assert ClusterSpill.for_budget(tmp_path, 256 << 20).block_nodes == (128 << 20) // 256
    assert ClusterSpill.for_budget(tmp_path, 10).block_nodes == 2
