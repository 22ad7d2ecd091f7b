"""Geometric verification: a known similarity is recovered from noisy point pairs with
outliers, random pairs never verify, and crops/captions of generated photos match their
original (with the transform that explains it) while distinct photos match nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from hashing.algorithms.local_features import describe_rgb
from index.media_bank import FeatureSet
from synthetic_fixtures.edits import EDITS, edit_rng
from synthetic_fixtures.photos import make_photo
from triage.verify import Transform, match_features, verify_pair


def _similarity(pts: np.ndarray, scale: float, deg: float, shift: tuple[float, float]) -> np.ndarray:
    t = math.radians(deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return (pts @ rot.T) * scale + np.asarray(shift)


def test_known_similarity_is_recovered() -> None:
    rng = np.random.default_rng(1)
    q = rng.uniform([0, 0], [400, 300], size=(80, 2))
    # the query is the reference shown at 1/0.8 = 1.25x, turned by 3 degrees
    r = _similarity(q, 0.8, 3.0, (60.0, 40.0)) + rng.normal(0, 0.7, size=q.shape)
    r[60:] = rng.uniform([0, 0], [640, 480], size=(20, 2))  # 20 outliers
    t = verify_pair(q, r, np.full(80, 20), (400, 300), (640, 480))
    assert t is not None
    assert 55 <= t.inliers <= 62 and t.matches == 80
    assert t.scale == pytest.approx(1.25, rel=0.02)
    assert t.rotation_deg == pytest.approx(3.0, abs=0.5)
    # the query's frame maps inside the reference: the query is a crop of it
    assert t.query_covered_pct == pytest.approx(100.0, abs=1.0)
    assert t.ref_covered_pct == pytest.approx(25.0, abs=1.0)  # (0.8 * 400 * 0.8 * 300) / (640 * 480)
    assert t.text() == "crop 25% of bank item, scale 1.3, rotation 3°, 60 inliers"
    inv = t.inverse()
    assert inv.scale == pytest.approx(1 / t.scale, abs=1e-3)
    assert inv.ref_covered_pct == t.query_covered_pct


def test_random_pairs_never_verify() -> None:
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(12, 120))
        q = rng.uniform([0, 0], [500, 400], size=(n, 2))
        r = rng.uniform([0, 0], [500, 400], size=(n, 2))
        assert verify_pair(q, r, np.full(n, 30), (500, 400), (500, 400)) is None


def test_clustered_inliers_are_refused() -> None:
    # a repeated texture: many pairs agreeing inside one small patch only
    rng = np.random.default_rng(3)
    q = rng.uniform([10, 10], [30, 30], size=(40, 2))
    t = verify_pair(q, q + 5.0, np.full(40, 10), (500, 400), (500, 400))
    assert t is None


@pytest.fixture(scope="module")
def originals() -> list[Image.Image]:
    return [Image.fromarray(make_photo(np.random.default_rng((17, i)), 480, 360))
            for i in range(6)]


def test_edits_match_their_original_with_a_transform(originals: list[Image.Image]) -> None:
    refs = FeatureSet.build([describe_rgb(np.asarray(o)) for o in originals])
    for name in ("crop_20", "text_overlay", "rotate_3", "screenshot"):
        queries = [describe_rgb(np.asarray(EDITS[name](o, edit_rng(17, i, name))))
                   for i, o in enumerate(originals)]
        found = {(m.query, m.item): m.transform for m in match_features(queries, refs)}
        assert set(found) == {(i, i) for i in range(len(originals))}, name
        t: Transform = found[(0, 0)]
        if name == "crop_20":
            assert 55 < t.ref_covered_pct < 75 and t.query_covered_pct > 95
            assert t.text().startswith("crop ")
        if name == "screenshot":
            assert t.ref_covered_pct > 95 and t.query_covered_pct < 60
        if name == "rotate_3":
            assert abs(abs(t.rotation_deg) - 3) < 1


def test_distinct_photos_match_nothing(originals: list[Image.Image]) -> None:
    refs = FeatureSet.build([describe_rgb(np.asarray(o)) for o in originals])
    others = [describe_rgb(make_photo(np.random.default_rng((18, k)), 400, 300))
              for k in range(60)]
    assert match_features(others, refs) == []
    # and a set matched against itself, self excluded, links nothing
    own = FeatureSet.build(others)
    assert match_features(others, own, exclude=list(range(len(others)))) == []
