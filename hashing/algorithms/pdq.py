"""PDQ, our own implementation of Meta's 256-bit perceptual hash (ThreatExchange `hashing.pdf`).

Steps: luma -> two passes of a Jarosz box filter (window ceil(dim / 128)) -> decimation to
64x64 -> DCT rows/columns 1..16 -> 256 bits `coefficient > median` (the lower median of the
256 values) and a gradient-sum quality 0..100. Images under 5 pixels in either direction
hash to all zeros with quality 0, as the reference does. The heavy lifting is in
`hashing.pdq_kernels`; this module holds the bit packing and the dihedral variants.

`pdq_from_luma(..., full_size=(h, w))` hashes a DCT-scaled JPEG decode (1/2..1/8) with the
full-size image's windows and sample grid (`pdq_kernels.downsample_scaled`), which keeps
the hash as close to the exact path as a full-size luma decode (see `hashing.fast_luma`).

Written here rather than calling the `pdqhash` bindings because those run the reference's
cache-unfriendly column pass and a float64 numpy luma conversion (most of their time), and
cannot start from a reduced-size luma decode. `pdqhash` stays the oracle of the tests.

Bit order (checked against `pdqhash.compute`, the C++ `Hash256::format` and the reference's
published hashes of its test images): coefficient (i, j) of the 16x16 block is bit
k = 16 i + j, stored in 16-bit word k >> 4 at bit k & 15; the hex prints word 15 first, each
word as 4 hex digits. So the hex is the MSB-first packing of the flattened bits reversed,
which is exactly `hashing.codec.bitvector_to_hex` of the vector `pdqhash.compute` returns.
Checked on the reference's own regression images (ThreatExchange `pdq/data/reg-test-input`,
15 JPEGs decoded with Pillow, run locally and not committed): our hex equals `pdqhash` on all
15 and is 0-12 bits from the hashes published in the reference's Python tests (5 of 7 photos
identical; the rest differ by that reference's own luma/decoder); reversing the word order
instead would put every one 108-152 bits away.

Dihedral hashes come from one DCT: rotating or mirroring the image only transposes the
16x16 coefficients and flips the signs of odd rows or columns. The order is the one of
`pdqhash.compute_dihedral`: original, rotate 90, rotate 180, rotate 270, flip x, flip y,
flip about the main diagonal, flip about the anti-diagonal.

Those coefficient-derived hashes are not the hashes of the rotated or mirrored pixels: the
box filter's window and the decimation grid are anchored at the top-left, so flipping the
pixels shifts the sampling phase (a few to tens of bits; 16-18 bits on a 320x240 photo).
`exact_dihedral` therefore hashes the 8 transforms of the luma plane itself, so undoing an
exact rotation or mirror of a listed image gives back its listed hash bit for bit. It runs
the filter 8 times, which is what exactness costs: the running sums of a reversed row are
added in the other order, so no shared pass gives the same float32 bits. (Measured in
`benchmarks/hashing.py`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from hashing import pdq_kernels

MIN_DIM = 5  # the reference hashes smaller images to zeros with quality 0
_ZERO_HEX = "0" * 64

# sign pattern by index parity: -1 where the index is even
_EVEN_NEG = np.where(np.arange(16) % 2 == 1, 1.0, -1.0).astype(np.float32)
_CHECKER = np.where(np.add.outer(np.arange(16), np.arange(16)) % 2 == 1, -1.0, 1.0).astype(
    np.float32
)


@dataclass(frozen=True, slots=True)
class PdqResult:
    """A PDQ hash in the reference hex form, its quality and (on request) the 8 dihedral hashes."""

    hash: str
    quality: int
    dihedral: tuple[str, ...] | None = None


@cache
def _dct() -> np.ndarray:
    return pdq_kernels.dct_matrix()


def coefficients_to_hex(coeffs: np.ndarray) -> str:
    """16x16 DCT coefficients -> 64 hex digits: bit set where a value exceeds the lower median."""
    flat = np.asarray(coeffs, dtype=np.float32).reshape(256)
    median = np.partition(flat, 127)[127]
    bits = flat > median
    return np.packbits(bits[::-1]).tobytes().hex()


def dihedral_coefficients(c: np.ndarray) -> tuple[np.ndarray, ...]:
    """The coefficients of the 8 rotations/mirrors of the image, `compute_dihedral` order."""
    rows_even_neg = _EVEN_NEG[:, None]
    cols_even_neg = _EVEN_NEG[None, :]
    return (
        c,
        c.T * rows_even_neg,
        c * _CHECKER,
        c.T * cols_even_neg,
        c * rows_even_neg,
        c * cols_even_neg,
        c.T,
        c.T * _CHECKER,
    )


def _from_downsampled(small: np.ndarray, dihedral: bool) -> PdqResult:
    quality = int(pdq_kernels.quality(small))
    coeffs = pdq_kernels.dct16(small, _dct())
    if not dihedral:
        return PdqResult(coefficients_to_hex(coeffs), quality, None)
    variants = tuple(coefficients_to_hex(v) for v in dihedral_coefficients(coeffs))
    return PdqResult(variants[0], quality, variants)


def _too_small(h: int, w: int, dihedral: bool) -> PdqResult | None:
    if h < MIN_DIM or w < MIN_DIM:
        return PdqResult(_ZERO_HEX, 0, (_ZERO_HEX,) * 8 if dihedral else None)
    return None


def _reduction(full_size: tuple[int, int], shape: tuple[int, int]) -> int:
    """The integer scale s with shape == ceil(full_size / s), as DCT-scaled JPEG decodes give."""
    fh, fw = full_size
    for s in range(1, 9):
        if ((fh + s - 1) // s, (fw + s - 1) // s) == shape:
            return s
    raise ValueError(f"luma of shape {shape} is not a 1/1..1/8 reduction of {full_size}")


def pdq_from_luma(
    luma: np.ndarray, dihedral: bool = False, *, full_size: tuple[int, int] | None = None
) -> PdqResult:
    """PDQ of a float32[H, W] luma image (values 0..255; other dtypes are converted).

    `full_size` (height, width) says that `luma` is a DCT-scaled decode (1/2 .. 1/8) of an
    image of that stored size; the box windows and sample grid are then the full size's
    (`pdq_kernels.downsample_scaled`), so the hash stays close to the full-size one.
    """
    arr = np.ascontiguousarray(luma, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"luma must be 2-D, got shape {arr.shape}")
    h, w = full_size if full_size is not None else arr.shape
    small = _too_small(h, w, dihedral)
    if small is not None:
        return small
    scale = 1 if full_size is None else _reduction((h, w), (arr.shape[0], arr.shape[1]))
    if scale == 1:
        return _from_downsampled(pdq_kernels.downsample(arr), dihedral)
    return _from_downsampled(pdq_kernels.downsample_scaled(arr, h, w, scale), dihedral)


def _transforms(a: np.ndarray) -> tuple[np.ndarray, ...]:
    """The 8 rotations/mirrors of a 2-D plane in `pdqhash.compute_dihedral`'s order (checked in
    the tests against the coefficient-derived hashes). Built from one transposed copy and
    OpenCV flips: numpy's strided copies of rotated views cost 2-3x more on large planes."""
    import cv2

    t = cv2.transpose(a)
    return (a, cv2.flip(t, 0), cv2.flip(a, -1), cv2.flip(t, 1), cv2.flip(a, 0),
            cv2.flip(a, 1), t, cv2.flip(t, -1))


# Above this long side the 7 turned planes are f x f block means hashed with the full-size
# box windows and sample grid (`downsample_scaled`, as for a DCT-scaled JPEG decode): on a
# 12 MP photo 8 full-size filter passes cost 400 ms of CPU, this 47 ms (the identity, 23 ms,
# included), and undoing a rotation of generated 2-12 MP photos gave the full-size hash back
# bit for bit in every case measured (tests/test_variants.py pins one).
EXACT_MAX_SIDE = 1024


def block_reduce(arr: np.ndarray, max_side: int = EXACT_MAX_SIDE) -> tuple[np.ndarray, int]:
    """(block means over f x f, f) with f the integer factor bringing the long side under
    `max_side`; edges padded by replication so the shape is ceil(size / f), what
    `pdq_from_luma(..., full_size=)` expects of a DCT-scaled decode."""
    import cv2

    h, w = arr.shape
    f = min(8, -(-max(h, w) // max_side))
    if f <= 1:
        return arr, 1
    oh, ow = -(-h // f), -(-w // f)
    padded = cv2.copyMakeBorder(arr, 0, oh * f - h, 0, ow * f - w, cv2.BORDER_REPLICATE)
    return cv2.resize(padded, (ow, oh), interpolation=cv2.INTER_AREA), f


def exact_dihedral(
    luma: np.ndarray, *, full_size: tuple[int, int] | None = None,
    max_side: int | None = EXACT_MAX_SIDE, reduced: tuple[np.ndarray, int] | None = None,
) -> tuple[PdqResult, ...]:
    """PDQ of each of the 8 rotations/mirrors of the luma plane (identity first), so that
    `exact_dihedral(T(x))` holds `pdq_from_luma(x)` for every dihedral transform T.

    The identity is always the full-size, reference-compatible hash. Bit for bit up to
    `max_side` pixels on the long side; above it the 7 turned planes are block means
    hashed with the full-size windows and sample grid (`full_size`, as for a DCT-scaled
    decode); None: always full size, 8 filter passes. `reduced` is `block_reduce(luma)`
    when the caller already has it."""
    arr = np.ascontiguousarray(luma, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"luma must be 2-D, got shape {arr.shape}")
    first = pdq_from_luma(arr, full_size=full_size)
    size = full_size
    small = arr
    if max_side is not None and full_size is None:
        small, f = reduced if reduced is not None else block_reduce(arr, max_side)
        size = (arr.shape[0], arr.shape[1]) if f > 1 else None
    out = [first]
    for k, plane in enumerate(_transforms(small)):
        if k == 0:
            continue
        swaps = k in (1, 3, 6, 7)
        turned_size = size if size is None or not swaps else (size[1], size[0])
        out.append(pdq_from_luma(plane, full_size=turned_size))
    return tuple(out)


def pdq_from_rgb(rgb: np.ndarray, dihedral: bool = False) -> PdqResult:
    """PDQ of a uint8[H, W, 3] RGB image, with luma formed as `pdqhash.compute` forms it."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"rgb must be uint8[H, W, 3], got {arr.dtype}{list(arr.shape)}")
    small = _too_small(arr.shape[0], arr.shape[1], dihedral)
    if small is not None:
        return small
    return _from_downsampled(pdq_kernels.downsample_rgb(np.ascontiguousarray(arr)), dihedral)
