"""Tests of the synthetic photo generator and photo corpus writer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageOps

from synthetic_fixtures.photos import (
    ALL_FORMATS,
    RECIPES,
    THUMB_SIZES,
    make_flat,
    make_photo,
    spectral_noise,
    write_photo_corpus,
)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every regular file under root, keyed by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_photo_shape_dtype_and_determinism() -> None:
    a = make_photo(np.random.default_rng(5), 300, 200)
    b = make_photo(np.random.default_rng(5), 300, 200)
    c = make_photo(np.random.default_rng(6), 300, 200)
    assert a.shape == (200, 300, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_large_photo_is_upsampled_from_canvas() -> None:
    a = make_photo(np.random.default_rng(1), 2400, 1800)
    assert a.shape == (1800, 2400, 3)
    assert a.std() > 20  # not degenerate after upsampling


def test_spectral_noise_has_falling_spectrum() -> None:
    field = spectral_noise(np.random.default_rng(0), 256, 256, beta=1.0)
    power = np.abs(np.fft.fft2(field - field.mean())) ** 2
    low = power[1:4, 1:4].mean()
    high = power[100:128, 100:128].mean()
    assert low > 100 * high


def _spectral_slope(rgb: np.ndarray) -> float:
    """Log-log slope of the radially averaged power spectrum of the (windowed) luminance."""
    g = rgb.astype(np.float64).mean(axis=2)
    g -= g.mean()
    n = g.shape[0]
    win = np.hanning(n)
    power = np.abs(np.fft.fftshift(np.fft.fft2(g * win[:, None] * win[None, :]))) ** 2
    y, x = np.indices(power.shape)
    r = np.hypot(x - n // 2, y - n // 2).astype(int)
    profile = np.bincount(r.ravel(), power.ravel()) / np.bincount(r.ravel())
    f = np.arange(len(profile))
    band = (f >= 4) & (f <= n // 4)
    return float(np.polyfit(np.log(f[band]), np.log(profile[band]), 1)[0])


def test_photos_have_natural_power_spectra() -> None:
    # Natural photographs fall off as roughly 1/f^2 in power (slopes of about -1.8 to -2.6).
    slopes = [_spectral_slope(make_photo(np.random.default_rng(s), 256, 256)) for s in range(6)]
    assert -3.0 < float(np.median(slopes)) < -1.6


@pytest.mark.parametrize("seed", range(6))
def test_photos_are_informative_and_distinct_flats_are_flat(seed: int) -> None:
    rng = np.random.default_rng(seed)
    photo = make_photo(rng, 320, 240)
    flat = make_flat(rng, 320, 240)
    assert pdqhash.compute(photo)[1] >= 80
    assert pdqhash.compute(flat)[1] < 50
    other = make_photo(np.random.default_rng(seed + 100), 320, 240)
    h1 = pdqhash.compute(photo)[0]
    h2 = pdqhash.compute(other)[0]
    assert int(np.sum(h1 != h2)) > 64  # different photos are far apart in PDQ


def test_corpus_declared_modes_sizes_and_exif(tmp_path: Path) -> None:
    infos = write_photo_corpus(tmp_path, seed=3, n=2 * len(ALL_FORMATS), sizes=THUMB_SIZES)
    assert {i.recipe for i in infos} == set(ALL_FORMATS)
    assert any(i.flat for i in infos)
    for info in infos:
        with Image.open(info.path) as im:
            assert im.format == info.format
            assert im.mode == info.mode
            assert im.size == (info.width, info.height)
            assert getattr(im, "n_frames", 1) == info.frames
            orientation = im.getexif().get(0x0112)
            assert orientation == info.exif_orientation
            if info.exif_orientation in (6, 8):
                # Stored sideways: the upright scene has the corpus size, swapped.
                upright = ImageOps.exif_transpose(im)
                assert upright.size == (info.height, info.width)
    assert any(RECIPES[i.recipe].animated and i.frames > 1 for i in infos)


def test_corpus_is_byte_identical_across_runs(tmp_path: Path) -> None:
    write_photo_corpus(tmp_path / "a", seed=9, n=len(ALL_FORMATS), sizes=THUMB_SIZES)
    write_photo_corpus(tmp_path / "b", seed=9, n=len(ALL_FORMATS), sizes=THUMB_SIZES)
    write_photo_corpus(tmp_path / "c", seed=10, n=len(ALL_FORMATS), sizes=THUMB_SIZES)
    a, b, c = (tree_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c
