"""Local features: bounded, spread keypoints in original-image coordinates, a lossless blob,
and pinned values for a fixed generated photo (an OpenCV upgrade that changes ORB fails here)."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from hashing.algorithms.local_features import (
    DESCRIPTOR_BYTES,
    GRID,
    LONG_SIDE,
    MAX_KEYPOINTS,
    LocalFeatures,
    describe,
    describe_rgb,
)
from synthetic_fixtures.photos import make_photo


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return make_photo(np.random.default_rng((13, 1)), 960, 720)


def test_bounded_and_in_original_coordinates(photo: np.ndarray) -> None:
    f = describe_rgb(photo)
    assert (f.width, f.height) == (960, 720)
    assert 100 < len(f) <= MAX_KEYPOINTS
    assert f.descriptors.dtype == np.uint8 and f.descriptors.shape == (len(f), DESCRIPTOR_BYTES)
    assert f.keypoints.dtype == np.float32 and f.keypoints.shape == (len(f), 4)
    x, y = f.keypoints[:, 0], f.keypoints[:, 1]
    assert x.min() >= 0 and x.max() <= 960 and y.min() >= 0 and y.max() <= 720
    # described downscaled: a keypoint was found at LONG_SIDE, so coordinates reach past it
    assert x.max() > LONG_SIDE


def test_reduced_luma_maps_to_the_stated_size(photo: np.ndarray) -> None:
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    half = cv2.resize(gray, (480, 360), interpolation=cv2.INTER_AREA)
    full = describe(gray)
    reduced = describe(half.astype(np.float32), width=960, height=720)
    assert (reduced.width, reduced.height) == (960, 720)
    # the same scene: keypoint clouds cover the same extent of the full-size frame
    for f in (full, reduced):
        assert f.keypoints[:, 0].max() > 800 and f.keypoints[:, 1].max() > 600


def test_keypoints_spread_over_the_grid(photo: np.ndarray) -> None:
    # a strong caption in one band would take ORB's whole budget; the spread keeps cells
    img = photo.copy()
    cv2.putText(img, "CAPTION CAPTION", (10, 80), cv2.FONT_HERSHEY_SIMPLEX, 2.5, (255, 255, 255),
                6)
    f = describe_rgb(img)
    cx = np.minimum((f.keypoints[:, 0] * GRID / f.width).astype(int), GRID - 1)
    cy = np.minimum((f.keypoints[:, 1] * GRID / f.height).astype(int), GRID - 1)
    cells = np.bincount(cy * GRID + cx, minlength=GRID * GRID)
    assert (cells > 0).sum() >= GRID * GRID * 3 // 4
    assert cells.max() <= 3 * MAX_KEYPOINTS // (GRID * GRID)


def test_blob_round_trip_and_damage(photo: np.ndarray) -> None:
    f = describe_rgb(photo)
    blob = f.to_bytes()
    g = LocalFeatures.from_bytes(blob)
    assert np.array_equal(g.descriptors, f.descriptors)
    assert np.array_equal(g.keypoints, f.keypoints)
    assert g.fingerprint() == f.fingerprint() and len(f.fingerprint()) == 64
    assert f.nbytes == 18 + len(f) * (16 + DESCRIPTOR_BYTES)
    for bad in (blob[:-1], blob[:10], b"XXXX" + blob[4:]):
        with pytest.raises(ValueError):
            LocalFeatures.from_bytes(bad)


def test_tiny_and_flat_images_describe_nothing() -> None:
    assert len(describe(np.zeros((30, 200), np.uint8))) == 0
    assert len(describe(np.full((300, 400), 128, np.uint8))) == 0


def test_pinned_values() -> None:
    f = describe_rgb(make_photo(np.random.default_rng((13, 2)), 400, 300))
    assert len(f) == PINNED_COUNT
    assert f.descriptors[0].tobytes().hex() == PINNED_FIRST
    assert f.fingerprint() == PINNED_FINGERPRINT
    # the kept set, whatever its order (re-pinned when keypoints came to be kept in spread
    # order: the set was the same as before)
    kept = hashlib.sha256(b"".join(sorted(d.tobytes() for d in f.descriptors))).hexdigest()
    assert kept == PINNED_SET


PINNED_COUNT = 500
PINNED_FIRST = "f9557ae7244e7fb034c4fee6535783517efc1feae9b0792cf7e9e7802dbb647b"
PINNED_FINGERPRINT = "188d12c88032ab3b3438b96c659110e604cb2e0d024cc0744bb276586b832a1d"
PINNED_SET = "51ca17543ada227b6ca594a72acfe83893b5367cd6832bfe68fb8cecbb0a9e76"
