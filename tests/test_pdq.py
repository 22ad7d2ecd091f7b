"""Our PDQ against the `pdqhash` reference bindings: bit order, exactness, dihedral hashes, quality."""

from __future__ import annotations

import dataclasses

import numpy as np
import pdqhash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from hashing.algorithms.pdq import (
    PdqResult,
    coefficients_to_hex,
    dihedral_coefficients,
    pdq_from_luma,
    pdq_from_rgb,
)
from hashing.codec import bitvector_to_hex
from hashing.pdq_kernels import rgb_to_luma


def photo_like(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth colour noise, a gradient, a few hard-edged shapes and pixel noise, uint8 RGB."""
    small = rng.uniform(0, 255, (max(2, h // 40), max(2, w // 40), 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), np.float32)
    y, x = np.mgrid[0:h, 0:w]
    img += (rng.uniform(-60, 60) * y / max(h, 1))[..., None]
    for _ in range(4):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(0.05, 0.4) * max(h, w)
        colour = rng.uniform(-80, 80, 3)
        if rng.random() < 0.5:
            mask = (y - cy) ** 2 + (x - cx) ** 2 < r * r
        else:
            mask = (np.abs(y - cy) < r / 2) & (np.abs(x - cx) < r)
        img[mask] += colour
    img += rng.normal(0, rng.uniform(2, 20), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def reference(rgb: np.ndarray) -> tuple[str, int]:
    bits, quality = pdqhash.compute(rgb)
    return bitvector_to_hex(bits), int(quality)


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


SIZES = [
    (1, 1), (2, 3), (7, 5), (5, 7), (16, 16), (63, 64), (64, 64), (65, 65),
    (1000, 17), (17, 1000), (100, 100), (127, 129), (240, 320), (333, 257),
    (480, 640), (600, 450), (768, 1024), (1080, 720), (1500, 2000),
]  # fmt: skip


def test_bit_order_is_reference_word_order() -> None:
    # coefficient (i, j) is bit 16 i + j; words print from 15 down to 0, bit 15 first
    order = np.arange(256, dtype=np.float32)
    order[255], order[0] = order[0], order[255]  # bit 255 off, bit 0 on
    assert coefficients_to_hex(order.reshape(16, 16)) == "7fff" + "ffff" * 7 + "0000" * 7 + "0001"
    # and pdqhash's bit vector packs (MSB first) to the same hex as our packing
    rgb = photo_like(np.random.default_rng(11), 120, 90)
    bits, _ = pdqhash.compute(rgb)
    assert bitvector_to_hex(bits) == pdq_from_rgb(rgb).hash


def test_matches_pdqhash_on_photo_like_images_of_many_sizes() -> None:
    exact = 0
    total = 0
    for size_index, (h, w) in enumerate(SIZES):
        seeds = 2 if h * w > 500_000 else 6
        for seed in range(seeds):
            rgb = photo_like(np.random.default_rng(1000 * size_index + seed), h, w)
            ref_hash, ref_quality = reference(rgb)
            ours = pdq_from_rgb(rgb)
            d = distance(ours.hash, ref_hash)
            assert d <= 4, (h, w, seed, d)
            assert abs(ours.quality - ref_quality) <= 1, (h, w, seed)
            exact += d == 0
            total += 1
    assert exact >= 0.99 * total
    assert total >= 80


@pytest.mark.parametrize("shape", [(5, 5), (64, 64), (200, 150), (99, 301), (1000, 17)])
def test_dihedral_hashes_match_pdqhash(shape: tuple[int, int]) -> None:
    rgb = photo_like(np.random.default_rng(shape[0]), *shape)
    vectors, quality = pdqhash.compute_dihedral(rgb)
    ours = pdq_from_rgb(rgb, dihedral=True)
    assert ours.dihedral == tuple(bitvector_to_hex(v) for v in vectors)
    assert ours.hash == ours.dihedral[0]
    assert ours.quality == quality


def test_dihedral_variants_are_the_transformed_images_hashes() -> None:
    # at 64x64 there is no blur or decimation, so transforming the pixels transforms the
    # coefficients exactly (up to float rounding in the sums)
    rgb = photo_like(np.random.default_rng(5), 64, 64)
    variants = pdq_from_rgb(rgb, dihedral=True).dihedral
    assert variants is not None
    transformed = [
        rgb,
        np.rot90(rgb, 1),
        np.rot90(rgb, 2),
        np.rot90(rgb, 3),
        rgb[::-1],
        rgb[:, ::-1],
        rgb.transpose(1, 0, 2),
        np.rot90(rgb, 2).transpose(1, 0, 2),
    ]
    for variant, image in zip(variants, transformed, strict=True):
        assert distance(variant, pdq_from_rgb(np.ascontiguousarray(image)).hash) <= 2


def test_dihedral_of_coefficients_is_a_group_orbit() -> None:
    c = np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32)
    hexes = {coefficients_to_hex(v) for v in dihedral_coefficients(c)}
    assert len(hexes) == 8


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (4, 100), (100, 4)])
def test_images_under_five_pixels_hash_to_zero(shape: tuple[int, int]) -> None:
    rgb = np.full((*shape, 3), 200, np.uint8)
    res = pdq_from_rgb(rgb, dihedral=True)
    assert res == PdqResult("0" * 64, 0, ("0" * 64,) * 8)
    assert reference(rgb) == ("0" * 64, 0)


@pytest.mark.parametrize("shape", [(5, 5), (64, 64), (480, 640)])
def test_flat_images_have_quality_zero(shape: tuple[int, int]) -> None:
    rgb = np.full((*shape, 3), (90, 140, 30), np.uint8)
    ours = pdq_from_rgb(rgb)
    assert ours.quality == 0
    assert (ours.hash, ours.quality) == reference(rgb)


def test_luma_and_rgb_entry_points_agree() -> None:
    rgb = photo_like(np.random.default_rng(8), 301, 211)
    assert pdq_from_luma(rgb_to_luma(rgb), dihedral=True) == pdq_from_rgb(rgb, dihedral=True)
    # other dtypes are converted, not rejected
    grey = rgb_to_luma(rgb).astype(np.float64)
    assert pdq_from_luma(grey).hash == pdq_from_rgb(rgb).hash


def test_result_is_a_frozen_value() -> None:
    res = pdq_from_rgb(photo_like(np.random.default_rng(1), 50, 50))
    assert len(res.hash) == 64 and res.hash == res.hash.lower()
    assert res.dihedral is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.quality = 3  # type: ignore[misc]


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        pdq_from_rgb(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        pdq_from_rgb(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError):
        pdq_from_luma(np.zeros((10, 10, 3), np.float32))


@given(
    arrays(
        np.uint8,
        st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3)),
        elements=st.integers(0, 255),
    )
)
@settings(max_examples=150, deadline=None)
def test_never_more_than_four_bits_from_reference(rgb: np.ndarray) -> None:
    ours = pdq_from_rgb(rgb)
    ref_hash, ref_quality = reference(rgb)
    assert distance(ours.hash, ref_hash) <= 4
    assert abs(ours.quality - ref_quality) <= 1


def block_mean(luma: np.ndarray, s: int) -> np.ndarray:
    """What a 1/s DCT-scaled decode approximates: the mean of each s x s block (edges padded)."""
    h, w = luma.shape
    hp, wp = -(-h // s) * s, -(-w // s) * s
    padded = np.pad(luma, ((0, hp - h), (0, wp - w)), mode="edge")
    return padded.reshape(hp // s, s, wp // s, s).mean(axis=(1, 3)).astype(np.float32)


def test_full_size_of_a_reduced_luma_keeps_the_full_size_hash() -> None:
    distances = []
    for seed, (h, w) in enumerate([(1200, 1600), (1537, 2049), (1000, 1300)]):
        luma = rgb_to_luma(photo_like(np.random.default_rng(seed + 50), h, w))
        full = pdq_from_luma(luma, dihedral=True)
        for s in (2, 4):
            reduced = pdq_from_luma(block_mean(luma, s), dihedral=True, full_size=(h, w))
            distances.append(distance(full.hash, reduced.hash))
            assert abs(full.quality - reduced.quality) <= 3
            assert reduced.dihedral is not None and reduced.dihedral[0] == reduced.hash
    assert max(distances) <= 6 and np.mean(distances) <= 2


def test_full_size_equal_to_the_shape_is_the_plain_path() -> None:
    luma = rgb_to_luma(photo_like(np.random.default_rng(60), 200, 260))
    assert pdq_from_luma(luma, full_size=(200, 260)) == pdq_from_luma(luma)


def test_full_size_must_be_a_scaled_decode_of_the_shape() -> None:
    luma = np.zeros((100, 130), np.float32)
    with pytest.raises(ValueError, match="not a 1/1..1/8 reduction"):
        pdq_from_luma(luma, full_size=(300, 300))
    assert pdq_from_luma(np.zeros((1, 1), np.float32), full_size=(4, 4)).hash == "0" * 64
