"""numba kernels of PDQ: luma conversion, the two-pass Jarosz box filter, decimation, DCT, quality.

Each kernel repeats the reference's float32 arithmetic in the reference's order (running sums
added then subtracted element by element, sums of products accumulated k = 0..63), because
PDQ bits are medians of float sums: reordering the additions would flip bits now and then.
What changes is only the schedule and the memory layout, which is where the time goes:

* Box filters along columns run row by row over all columns at once (each column's running
  sum keeps its own order; the inner loop is contiguous and vectorises).
* Box filters along rows advance four rows side by side in scalar registers, so four
  independent add chains overlap (`_box_rows4`).
* `downsample` streams: blocks of `_BLOCK` rows go through the first row pass into a ring
  buffer of recent rows, the first column pass consumes the ring row by row, and each block
  of its output goes straight through the second row pass, of which only the 64 sampled
  columns are kept; the last column pass runs over those 64 columns. Nothing image-sized is
  allocated (on this machine, page faults on a fresh 48 MB buffer cost as much as a pass).
* Divisions by the window length are float64 multiplications by the reciprocal, rounded to
  float32, which is provably the same correctly rounded quotient (see `_divide`).
* `downsample_scaled` takes the luma of a DCT-scaled decode and the full size: the filter is
  linear and separable, so each of the 64 samples per axis is a fixed weighted sum of input
  pixels, and summing those weights over the pixels a reduced pixel stands for carries the
  full-size filter over (not bit-exact: float64 weights on approximate pixels).

Measured on a 12 MP float32 luma, one core of a shared AMD EPYC: `downsample` 26-29 ms
(the reference's filter with whole-image buffers: ~120 ms here), `downsample_rgb` 35 ms.

The luma conversion follows `pdqhash.compute` (our test oracle): float64 arithmetic
`0.299 R + 0.587 G + 0.114 B` rounded once to float32. The C++ reference rounds its float32
coefficients instead; the two agree to within one float32 ulp.

Only numpy and numba are imported here (kernels are leaves); `hashing/algorithms/pdq.py`
holds the Python API.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_BLOCK = 16  # rows per block of the streamed filter
DOWNSAMPLE = 64
DCT_SIZE = 16
_ALL = np.zeros(0, dtype=np.int64)  # `cols` meaning: write every output
# float64 products v * coefficient for v = 0..255: pdqhash multiplies uint8 planes by Python
# floats in numpy (float64), adds R + G then B, and rounds the sum to float32 once
_LUMA_TABLES = np.stack([np.arange(256) * c for c in (0.299, 0.587, 0.114)])


def jarosz_window(old_dimension: int, new_dimension: int = DOWNSAMPLE) -> int:
    """Box window so that two passes cover one output pixel: ceil(old / (2 * new))."""
    return (old_dimension + 2 * new_dimension - 1) // (2 * new_dimension)


def dct_matrix() -> np.ndarray:
    """The reference's 16x64 DCT-II rows 1..16 (the DC row is skipped), float32.

    The scale factor is rounded to float32 first and the product rounded once more, as the
    reference's initialiser does.
    """
    scale = float(np.float32(np.sqrt(2.0 / 64.0)))
    out = np.empty((DCT_SIZE, DOWNSAMPLE), dtype=np.float32)
    base = np.pi / 2.0 / 64.0
    for i in range(DCT_SIZE):
        for j in range(DOWNSAMPLE):
            out[i, j] = np.float32(scale * np.cos(base * (i + 1) * (2 * j + 1)))
    return out


@njit(cache=True, nogil=True)
def _luma_row(rgb_row: np.ndarray, out: np.ndarray) -> None:
    """One row of `rgb_to_luma`, by table lookups of the float64 products (same values)."""
    t = _LUMA_TABLES
    for j in range(out.shape[0]):
        out[j] = np.float32(t[0, rgb_row[j, 0]] + t[1, rgb_row[j, 1]] + t[2, rgb_row[j, 2]])


@njit(cache=True, nogil=True)
def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """uint8[H, W, 3] -> float32[H, W]: float64 `0.299 R + 0.587 G + 0.114 B` rounded once."""
    h, w, _ = rgb.shape
    out = np.empty((h, w), dtype=np.float32)
    for i in range(h):
        _luma_row(rgb[i], out[i])
    return out


@njit(cache=True, nogil=True)
def _divide(total: np.float32, inverse: float) -> np.float32:
    """float32 `total / n` given `inverse = 1.0 / n` in float64, with a multiply.

    Correctly rounded, so equal to the reference's float32 division: the float64 product is
    within 2**-52 (relative) of the exact quotient, while an exact float32 quotient x / n lies
    at least 2**-25 / n (relative) from any float32 rounding midpoint (x has 24 significant
    bits, a midpoint 25), so both round the same way for every window n < 2**27.
    """
    return np.float32(np.float64(total) * inverse)


@njit(cache=True, nogil=True)
def _box_cols_steps(src, dst, window, acc):
    """The reference's 1-D box filter down every column of `src[n, w]` at once into `dst`.

    Phases as in the reference: accumulate half a window, write with a growing window, write
    with the full window (add then subtract), write with a shrinking window. Each column's
    running sum keeps its sequential order; the inner loop runs along a row and vectorises.
    """
    n, w = src.shape
    half = (window + 2) // 2
    ri = 0
    for _ in range(half - 1):
        for j in range(w):
            acc[j] += src[ri, j]
        ri += 1
    count = half - 1
    oi = 0
    for _ in range(window - half + 1):
        count += 1
        inv = 1.0 / count
        for j in range(w):
            acc[j] += src[ri, j]
            dst[oi, j] = _divide(acc[j], inv)
        ri += 1
        oi += 1
    inv = 1.0 / count
    li = 0
    for _ in range(n - window):
        for j in range(w):
            s = acc[j] + src[ri, j]
            s -= src[li, j]
            acc[j] = s
            dst[oi, j] = _divide(s, inv)
        ri += 1
        li += 1
        oi += 1
    for _ in range(half - 1):
        count -= 1
        inv = 1.0 / count
        for j in range(w):
            acc[j] -= src[li, j]
            dst[oi, j] = _divide(acc[j], inv)
        li += 1
        oi += 1


@njit(cache=True, nogil=True)
def _emit4(a0, a1, a2, a3, inv, d0, d1, d2, d3, oi, k, cols):
    """Store the four rows' output at position `oi`; returns the next sampled slot `k`.

    Without sampling (`cols` empty) output `oi` goes to index `oi`; with sampling to every
    slot k whose `cols[k] == oi`.
    """
    if cols.shape[0] == 0:
        d0[oi] = _divide(a0, inv)
        d1[oi] = _divide(a1, inv)
        d2[oi] = _divide(a2, inv)
        d3[oi] = _divide(a3, inv)
        return k
    while k < cols.shape[0] and cols[k] == oi:
        d0[k] = _divide(a0, inv)
        d1[k] = _divide(a1, inv)
        d2[k] = _divide(a2, inv)
        d3[k] = _divide(a3, inv)
        k += 1
    return k


@njit(cache=True, nogil=True)
def _box_rows4(s0, s1, s2, s3, d0, d1, d2, d3, window, cols):
    """The reference's 1-D box filter along four rows side by side.

    One row is a sequential chain of float32 adds; four independent chains in scalar
    registers keep the processor busy (measured: 10 ms per pass on 12 MP, against 26 ms one
    row at a time and 15 ms eight at a time, which spills registers).
    With `cols` empty every output is written at its own index; otherwise output k of `d*`
    is the filtered value at position `cols[k]` (ascending, repeats allowed) and the others
    are not stored. Repeating a row (same source and destination) is harmless.
    """
    w = s0.shape[0]
    half = (window + 2) // 2
    k = 0
    a0 = np.float32(0.0)
    a1 = np.float32(0.0)
    a2 = np.float32(0.0)
    a3 = np.float32(0.0)
    for ri in range(half - 1):
        a0 += s0[ri]
        a1 += s1[ri]
        a2 += s2[ri]
        a3 += s3[ri]
    # growing window: add only
    oi = 0
    for ri in range(half - 1, window):
        a0 += s0[ri]
        a1 += s1[ri]
        a2 += s2[ri]
        a3 += s3[ri]
        k = _emit4(a0, a1, a2, a3, 1.0 / (ri + 1), d0, d1, d2, d3, oi, k, cols)
        oi += 1
    # full window: add then subtract (the hot loop; the sampled variant skips the stores)
    inv = 1.0 / window
    if cols.shape[0] == 0:
        for li in range(w - window):
            ri = li + window
            a0 = (a0 + s0[ri]) - s0[li]
            a1 = (a1 + s1[ri]) - s1[li]
            a2 = (a2 + s2[ri]) - s2[li]
            a3 = (a3 + s3[ri]) - s3[li]
            o = oi + li
            d0[o] = _divide(a0, inv)
            d1[o] = _divide(a1, inv)
            d2[o] = _divide(a2, inv)
            d3[o] = _divide(a3, inv)
    else:
        for li in range(w - window):
            ri = li + window
            a0 = (a0 + s0[ri]) - s0[li]
            a1 = (a1 + s1[ri]) - s1[li]
            a2 = (a2 + s2[ri]) - s2[li]
            a3 = (a3 + s3[ri]) - s3[li]
            if k < cols.shape[0] and cols[k] == oi + li:
                k = _emit4(a0, a1, a2, a3, inv, d0, d1, d2, d3, oi + li, k, cols)
    oi += max(w - window, 0)
    # shrinking window: subtract only
    count = window
    for li in range(w - window, w - window + half - 1):
        a0 -= s0[li]
        a1 -= s1[li]
        a2 -= s2[li]
        a3 -= s3[li]
        count -= 1
        k = _emit4(a0, a1, a2, a3, 1.0 / count, d0, d1, d2, d3, oi, k, cols)
        oi += 1


@njit(cache=True, nogil=True)
def _box_row_block(src, s0, dst, d0, nrows, window, cols):
    """Box-filter rows `src[s0:s0+nrows]` into `dst[d0:d0+nrows]`, four rows at a time."""
    last = nrows - 1
    for r in range(0, nrows, 4):
        r1 = min(r + 1, last)
        r2 = min(r + 2, last)
        r3 = min(r + 3, last)
        _box_rows4(
            src[s0 + r],
            src[s0 + r1],
            src[s0 + r2],
            src[s0 + r3],
            dst[d0 + r],
            dst[d0 + r1],
            dst[d0 + r2],
            dst[d0 + r3],
            window,
            cols,
        )


@njit(cache=True, nogil=True)
def box_along_cols(src: np.ndarray, window: int) -> np.ndarray:
    """Reference `boxAlongColsFloat`: each column filtered top to bottom."""
    dst = np.empty_like(src)
    _box_cols_steps(src, dst, window, np.zeros(src.shape[1], dtype=np.float32))
    return dst


@njit(cache=True, nogil=True)
def box_along_rows(src: np.ndarray, window: int) -> np.ndarray:
    """Reference `boxAlongRowsFloat`: each row filtered left to right."""
    dst = np.empty_like(src)
    _box_row_block(src, 0, dst, 0, src.shape[0], window, _ALL)
    return dst


@njit(cache=True, nogil=True)
def sample_indices(n: int) -> np.ndarray:
    """Reference `decimateFloat` positions: the input pixel under each output pixel's centre."""
    idx = np.empty(DOWNSAMPLE, dtype=np.int64)
    for k in range(DOWNSAMPLE):
        idx[k] = int(((k + 0.5) * n) / DOWNSAMPLE)
    return idx


@njit(cache=True, nogil=True)
def decimate(src: np.ndarray) -> np.ndarray:
    rows = sample_indices(src.shape[0])
    cols = sample_indices(src.shape[1])
    out = np.empty((DOWNSAMPLE, DOWNSAMPLE), dtype=np.float32)
    for a in range(DOWNSAMPLE):
        for b in range(DOWNSAMPLE):
            out[a, b] = src[rows[a], cols[b]]
    return out


@njit(cache=True, nogil=True)
def _cols_step(ring, t, h, wc, half, acc, block, wr, cols, kept):
    """Step t of the first column pass, numbered as the reference's phases.

    Step t adds row t (t < h) and subtracts row t - wc (t >= wc); from t = half - 1 on it
    emits output row t - half + 1 into a block of rows; each full block goes straight
    through the second row pass, of which only the sampled columns are kept.
    """
    nring = ring.shape[0]
    w = acc.shape[0]
    if t < h:
        add = ring[t % nring]
        if t >= wc:
            sub = ring[(t - wc) % nring]
            for j in range(w):
                s = acc[j] + add[j]
                acc[j] = s - sub[j]
        else:
            for j in range(w):
                acc[j] += add[j]
    else:
        sub = ring[(t - wc) % nring]
        for j in range(w):
            acc[j] -= sub[j]
    if t < half - 1:
        return
    if t < wc:
        count = t + 1
    elif t < h:
        count = wc
    else:
        count = wc - (t - h + 1)
    inv = 1.0 / count
    o = t - half + 1
    lane = o % _BLOCK
    out = block[lane]
    for j in range(w):
        out[j] = _divide(acc[j], inv)
    if lane == _BLOCK - 1 or o == h - 1:
        _box_row_block(block, 0, kept, o - lane, lane + 1, wr, cols)


@njit(cache=True, nogil=True)
def _finish(kept, wc, h):
    filtered = box_along_cols(kept, wc)
    rows = sample_indices(h)
    result = np.empty((DOWNSAMPLE, DOWNSAMPLE), dtype=np.float32)
    for a in range(DOWNSAMPLE):
        for c in range(DOWNSAMPLE):
            result[a, c] = filtered[rows[a], c]
    return result


@njit(cache=True, nogil=True)
def _columns_until(t, stop, ring, h, w, acc, block, kept, cols):
    wc = (h + 127) // 128
    half = (wc + 2) // 2
    wr = (w + 127) // 128
    while t < stop:
        _cols_step(ring, t, h, wc, half, acc, block, wr, cols, kept)
        t += 1
    return t


@njit(cache=True, nogil=True)
def _buffers(h, w):
    # a whole number of row blocks holding rows t - wc .. t plus the block being filtered
    nring = _BLOCK * (((h + 127) // 128 + 2 * _BLOCK) // _BLOCK)
    return (
        np.empty((nring, w), dtype=np.float32),  # ring of recent first-row-pass rows
        np.zeros(w, dtype=np.float32),  # running sums of the first column pass
        np.empty((_BLOCK, w), dtype=np.float32),  # block of first-column-pass rows
        np.empty((h, DOWNSAMPLE), dtype=np.float32),  # second row pass at sampled columns
    )


@njit(cache=True, nogil=True)
def downsample(luma: np.ndarray) -> np.ndarray:
    """Two Jarosz passes (rows then columns, twice) and decimation: float32[H, W] -> [64, 64].

    Equal bit for bit to filtering the whole image twice and decimating (`decimate` of the
    four `box_along_*` passes), but streamed over blocks of rows through a ring buffer of
    recent rows, so nothing image-sized is allocated (page faults on fresh image-sized
    buffers cost more than the arithmetic here); the second pass is evaluated only at the
    sampled columns and rows.
    """
    h, w = luma.shape
    ring, acc, block, kept = _buffers(h, w)
    nring = ring.shape[0]
    wr = (w + 127) // 128
    cols = sample_indices(w)
    t = 0
    for i0 in range(0, h, _BLOCK):
        b = min(_BLOCK, h - i0)
        _box_row_block(luma, i0, ring, i0 % nring, b, wr, _ALL)
        t = _columns_until(t, i0 + b, ring, h, w, acc, block, kept, cols)
    wc = (h + 127) // 128
    _columns_until(t, h + (wc + 2) // 2 - 1, ring, h, w, acc, block, kept, cols)
    return _finish(kept, wc, h)


@njit(cache=True, nogil=True)
def downsample_rgb(rgb: np.ndarray) -> np.ndarray:
    """`downsample(rgb_to_luma(rgb))`, converting one block of rows at a time."""
    h, w, _ = rgb.shape
    ring, acc, block, kept = _buffers(h, w)
    luma = np.empty((_BLOCK, w), dtype=np.float32)
    nring = ring.shape[0]
    wr = (w + 127) // 128
    cols = sample_indices(w)
    t = 0
    for i0 in range(0, h, _BLOCK):
        b = min(_BLOCK, h - i0)
        for r in range(b):
            _luma_row(rgb[i0 + r], luma[r])
        _box_row_block(luma, 0, ring, i0 % nring, b, wr, _ALL)
        t = _columns_until(t, i0 + b, ring, h, w, acc, block, kept, cols)
    wc = (h + 127) // 128
    _columns_until(t, h + (wc + 2) // 2 - 1, ring, h, w, acc, block, kept, cols)
    return _finish(kept, wc, h)


@njit(cache=True, nogil=True)
def quality(buf: np.ndarray) -> int:
    """Reference image-domain quality: truncated gradients summed, /90, capped at 100."""
    total = 0
    hundred = np.float32(100.0)
    scale = np.float32(255.0)
    for i in range(DOWNSAMPLE - 1):
        for j in range(DOWNSAMPLE):
            d = int(((buf[i, j] - buf[i + 1, j]) * hundred) / scale)
            total += abs(d)
    for i in range(DOWNSAMPLE):
        for j in range(DOWNSAMPLE - 1):
            d = int(((buf[i, j] - buf[i, j + 1]) * hundred) / scale)
            total += abs(d)
    return min(total // 90, 100)


@njit(cache=True, nogil=True)
def dct16(buf: np.ndarray, d: np.ndarray) -> np.ndarray:
    """B = D A D^T with float32 sums over k = 0..63 in order, as the reference's `dct64To16`."""
    t = np.zeros((DCT_SIZE, DOWNSAMPLE), dtype=np.float32)
    for i in range(DCT_SIZE):
        for k in range(DOWNSAMPLE):
            dik = d[i, k]
            for j in range(DOWNSAMPLE):
                t[i, j] += dik * buf[k, j]
    out = np.empty((DCT_SIZE, DCT_SIZE), dtype=np.float32)
    for i in range(DCT_SIZE):
        for j in range(DCT_SIZE):
            s = np.float32(0.0)
            for k in range(DOWNSAMPLE):
                s += t[i, k] * d[j, k]
            out[i, j] = s
    return out


@njit(cache=True, nogil=True)
def scaled_weights(n: int, n_reduced: int, scale: int) -> np.ndarray:
    """float64[64, n_reduced]: the full-size filter, seen from a 1/`scale` reduced decode.

    Row i holds the weights with which the reference's two box passes along an axis of
    length `n` (window `jarosz_window(n)`, windows shrinking at the edges) combine the input
    pixels into the i-th decimation sample, summed over the `scale` full-size pixels each
    reduced pixel stands for (a DCT-scaled JPEG decode is close to their mean).
    """
    w = (n + 127) // 128
    half = (w + 2) // 2
    samples = sample_indices(n)
    out = np.zeros((DOWNSAMPLE, n_reduced))
    for i in range(DOWNSAMPLE):
        o = samples[i]
        lo = max(o - w + half, 0)
        hi = min(o + half, n)
        for m in range(lo, hi):
            lo1 = max(m - w + half, 0)
            hi1 = min(m + half, n)
            c = 1.0 / ((hi - lo) * (hi1 - lo1))
            for p in range(lo1, hi1):
                out[i, min(p // scale, n_reduced - 1)] += c
    return out


@njit(cache=True, nogil=True)
def _band(weights: np.ndarray) -> tuple[int, int]:
    lo = 0
    while lo < weights.shape[0] and weights[lo] == 0.0:
        lo += 1
    hi = weights.shape[0]
    while hi > lo and weights[hi - 1] == 0.0:
        hi -= 1
    return lo, hi


@njit(cache=True, nogil=True)
def downsample_scaled(luma: np.ndarray, full_h: int, full_w: int, scale: int) -> np.ndarray:
    """float32[64, 64] estimate of `downsample` of the full-size image from a 1/`scale` decode.

    The two box passes are linear and separable, so their 64 samples per axis are fixed
    weighted sums of input pixels (`scaled_weights`); applied to the reduced luma in float64
    they give the full-size result up to what the reduced decode lost (measured: PDQ hashes
    as close to the exact path as a full-size luma decode; see `hashing.fast_luma`).
    """
    h, w = luma.shape
    ar = scaled_weights(full_h, h, scale)
    ac = scaled_weights(full_w, w, scale)
    rows = np.zeros((DOWNSAMPLE, w))
    for i in range(DOWNSAMPLE):
        k0, k1 = _band(ar[i])
        acc = rows[i]
        for k in range(k0, k1):
            a = ar[i, k]
            line = luma[k]
            for j in range(w):
                acc[j] += a * line[j]
    out = np.empty((DOWNSAMPLE, DOWNSAMPLE), dtype=np.float32)
    for c in range(DOWNSAMPLE):
        k0, k1 = _band(ac[c])
        for i in range(DOWNSAMPLE):
            s = 0.0
            for k in range(k0, k1):
                s += rows[i, k] * ac[c, k]
            out[i, c] = np.float32(s)
    return out
