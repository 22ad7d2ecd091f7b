"""Each PDQ kernel against a plain-numpy reference written straight from the reference's steps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashing import pdq_kernels as K


def ref_luma(rgb: np.ndarray) -> np.ndarray:
    """The expression `pdqhash.compute` evaluates (float64 planes, rounded once)."""
    return (rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114).astype(np.float32)


def ref_box_axis0(x: np.ndarray, window: int) -> np.ndarray:
    """The reference 1-D box filter (four phases, float32 running sum) down axis 0."""
    n = x.shape[0]
    out = np.empty_like(x)
    half = (window + 2) // 2
    acc = np.zeros(x.shape[1:], np.float32)
    ri = li = oi = count = 0
    for _ in range(half - 1):
        acc = acc + x[ri]
        count += 1
        ri += 1
    for _ in range(window - half + 1):
        acc = acc + x[ri]
        count += 1
        out[oi] = acc / np.float32(count)
        ri += 1
        oi += 1
    for _ in range(n - window):
        acc = acc + x[ri]
        acc = acc - x[li]
        out[oi] = acc / np.float32(count)
        ri += 1
        li += 1
        oi += 1
    for _ in range(half - 1):
        acc = acc - x[li]
        count -= 1
        out[oi] = acc / np.float32(count)
        li += 1
        oi += 1
    return out


def ref_decimate(x: np.ndarray) -> np.ndarray:
    rows = [int(((i + 0.5) * x.shape[0]) / 64) for i in range(64)]
    cols = [int(((j + 0.5) * x.shape[1]) / 64) for j in range(64)]
    return x[np.ix_(rows, cols)]


def ref_downsample(luma: np.ndarray) -> np.ndarray:
    h, w = luma.shape
    wr, wc = K.jarosz_window(w), K.jarosz_window(h)
    x = luma
    for _ in range(2):
        x = ref_box_axis0(x.T, wr).T
        x = ref_box_axis0(x, wc)
    return ref_decimate(x)


def ref_quality(buf: np.ndarray) -> int:
    f100, f255 = np.float32(100), np.float32(255)
    dv = np.trunc(((buf[:-1, :] - buf[1:, :]) * f100) / f255).astype(np.int64)
    dh = np.trunc(((buf[:, :-1] - buf[:, 1:]) * f100) / f255).astype(np.int64)
    return min(int(np.abs(dv).sum() + np.abs(dh).sum()) // 90, 100)


def ref_dct16(buf: np.ndarray, d: np.ndarray) -> np.ndarray:
    t = np.zeros((16, 64), np.float32)
    for k in range(64):  # float32 sums in k order, as the reference
        t = t + d[:, k : k + 1] * buf[k : k + 1, :]
    out = np.zeros((16, 16), np.float32)
    for k in range(64):
        out = out + t[:, k : k + 1] * d[:, k][None, :]
    return out


def luma_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth field plus edges plus noise, as float32 luma 0..255."""
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 70 * np.sin(x / (w / 5 + 1) + rng.uniform(0, 6)) * np.cos(y / (h / 4 + 1))
    base[(x > w // 3) & (y < h // 2)] += 40
    return np.clip(base + rng.normal(0, 15, (h, w)), 0, 255).astype(np.float32)


SHAPES = [(5, 5), (7, 9), (64, 64), (65, 63), (130, 260), (257, 129), (333, 500), (1000, 17)]


def test_luma_equals_pdqhash_expression() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgb[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 2, 3]]
    assert np.array_equal(K.rgb_to_luma(rgb), ref_luma(rgb))


@pytest.mark.parametrize("window", [1, 2, 3, 4, 7, 8, 31])
def test_box_filters_equal_reference(window: int) -> None:
    x = luma_image(np.random.default_rng(window), 97, 131)
    assert np.array_equal(K.box_along_cols(x, window), ref_box_axis0(x, window))
    assert np.array_equal(K.box_along_rows(x, window), ref_box_axis0(x.T, window).T)


def test_box_filter_on_fewer_than_four_rows() -> None:
    x = luma_image(np.random.default_rng(3), 3, 300)
    assert np.array_equal(K.box_along_rows(x, 3), ref_box_axis0(x.T, 3).T)


@given(
    total=st.floats(-1e6, 1e6, allow_nan=False, width=32),
    n=st.integers(1, 5000),
)
@settings(max_examples=500, deadline=None)
def test_divide_by_reciprocal_is_correctly_rounded(total: float, n: int) -> None:
    x = np.float32(total)
    assert K._divide(x, 1.0 / n) == x / np.float32(n)


def test_divide_exhaustive_small_windows() -> None:
    rng = np.random.default_rng(5)
    xs = np.concatenate([rng.uniform(0, 255 * 64, 20000), rng.uniform(-1, 1, 2000)]).astype(
        np.float32
    )
    for n in range(1, 70):
        got = np.array([K._divide(x, 1.0 / n) for x in xs[:: 1 + n // 8]], dtype=np.float32)
        assert np.array_equal(got, xs[:: 1 + n // 8] / np.float32(n)), n


def test_decimate_equals_reference() -> None:
    x = luma_image(np.random.default_rng(1), 200, 77)
    assert np.array_equal(K.decimate(x), ref_decimate(x))
    assert list(K.sample_indices(5)) == [int(((i + 0.5) * 5) / 64) for i in range(64)]


@pytest.mark.parametrize("shape", SHAPES)
def test_streamed_downsample_equals_full_passes(shape: tuple[int, int]) -> None:
    x = luma_image(np.random.default_rng(shape[0] * 7 + shape[1]), *shape)
    assert np.array_equal(K.downsample(x), ref_downsample(x))


@pytest.mark.parametrize("shape", [(5, 5), (66, 90), (301, 211)])
def test_rgb_downsample_equals_luma_then_downsample(shape: tuple[int, int]) -> None:
    rgb = np.random.default_rng(9).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert np.array_equal(K.downsample_rgb(rgb), K.downsample(ref_luma(rgb)))


def test_quality_equals_reference() -> None:
    rng = np.random.default_rng(2)
    for scale in (0.0, 1.0, 30.0, 255.0):
        buf = (rng.uniform(0, 1, (64, 64)) * scale).astype(np.float32)
        assert K.quality(buf) == ref_quality(buf)
    assert K.quality(np.full((64, 64), 77, np.float32)) == 0
    assert K.quality(rng.uniform(0, 255, (64, 64)).astype(np.float32)) == 100


def test_dct_matrix_is_dct_ii_rows_1_to_16() -> None:
    d = K.dct_matrix()
    j = np.arange(64)
    exact = np.stack(
        [np.sqrt(2 / 64) * np.cos(np.pi / 128 * (i + 1) * (2 * j + 1)) for i in range(16)]
    )
    assert d.dtype == np.float32 and d.shape == (16, 64)
    np.testing.assert_allclose(d, exact, atol=1e-7)
    # orthonormal rows: the transform preserves energy of the non-DC part
    np.testing.assert_allclose(d.astype(np.float64) @ d.T, np.eye(16), atol=1e-6)


def test_dct_equals_reference_order() -> None:
    buf = luma_image(np.random.default_rng(4), 64, 64)
    d = K.dct_matrix()
    got = K.dct16(buf, d)
    assert np.array_equal(got, ref_dct16(buf, d))
    np.testing.assert_allclose(
        got, d.astype(np.float64) @ buf @ d.T.astype(np.float64), rtol=1e-4, atol=1e-2
    )


def test_jarosz_window_formula() -> None:
    assert [K.jarosz_window(n) for n in (1, 128, 129, 256, 257, 4000)] == [1, 1, 2, 2, 3, 32]


def ref_scaled_weights(n: int, n_reduced: int, scale: int) -> np.ndarray:
    """Row i of (two box passes) as a dense matrix, summed over `scale`-pixel groups."""
    eye = np.eye(n, dtype=np.float64)
    w = K.jarosz_window(n)
    passes = ref_box_axis0(ref_box_axis0(eye.astype(np.float32), w), w).astype(np.float64)
    rows = passes[K.sample_indices(n)]
    out = np.zeros((64, n_reduced))
    for p in range(n):
        out[:, min(p // scale, n_reduced - 1)] += rows[:, p]
    return out


@pytest.mark.parametrize("n, scale", [(300, 1), (300, 2), (301, 4), (517, 8), (1000, 4)])
def test_scaled_weights_are_the_box_passes_as_a_matrix(n: int, scale: int) -> None:
    n_reduced = -(-n // scale)
    got = K.scaled_weights(n, n_reduced, scale)
    np.testing.assert_allclose(got, ref_scaled_weights(n, n_reduced, scale), atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)  # each sample is a weighted mean


def test_scaled_downsample_at_scale_one_is_the_reference_downsample() -> None:
    x = luma_image(np.random.default_rng(12), 300, 420)
    np.testing.assert_allclose(K.downsample_scaled(x, 300, 420, 1), K.downsample(x), atol=2e-3)


def test_scaled_downsample_equals_dense_weights() -> None:
    x = luma_image(np.random.default_rng(13), 1200, 1600)
    small = x.reshape(300, 4, 400, 4).mean(axis=(1, 3)).astype(np.float32)
    ar = K.scaled_weights(1200, 300, 4)
    ac = K.scaled_weights(1600, 400, 4)
    dense = (ar @ small.astype(np.float64) @ ac.T).astype(np.float32)
    np.testing.assert_allclose(
        K.downsample_scaled(small, 1200, 1600, 4), dense, rtol=1e-6, atol=1e-3
    )
    # and the 4x4 block mean carries the full-size filter closely
    diff = np.abs(K.downsample_scaled(small, 1200, 1600, 4) - K.downsample(x))
    assert diff.mean() < 0.3 and diff.max() < 2.0
