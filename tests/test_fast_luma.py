"""The fast JPEG luma decoder: what it accepts, what it declines, and how close it stays to exact."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hashing.algorithms.pdq import pdq_from_luma, pdq_from_rgb
from hashing.fast_luma import choose_scale, decode_luma_fast, decode_luma_scaled
from hashing.pdq_kernels import rgb_to_luma


def detailed_photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth colour field plus hard edges, fine stripes and sensor noise (JPEG ringing fodder)."""
    small = rng.uniform(0, 255, (max(2, h // 60), max(2, w // 60), 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), np.float32)
    for _ in range(12):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = y0 + int(rng.integers(4, h // 3)), x0 + int(rng.integers(4, w // 3))
        img[y0:y1, x0:x1] += rng.uniform(-70, 70, 3)
    y, x = np.mgrid[0:h, 0:w]
    img[: h // 3, w // 2 :] += (((x + y) // 3 % 2) * 30 - 15)[: h // 3, w // 2 :, None]
    img += rng.normal(0, 6, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int = 90, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def exact_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def test_luma_is_float32_of_the_stored_size_and_close_to_exact() -> None:
    rgb = detailed_photo(np.random.default_rng(0), 1000, 1100)
    data = jpeg(rgb)
    luma = decode_luma_fast(data, width=1100, height=1000)
    assert luma is not None and luma.dtype == np.float32 and luma.shape == (1000, 1100)
    diff = np.abs(luma - rgb_to_luma(exact_rgb(data)))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4.0


def test_pdq_deviation_from_exact_path_is_small() -> None:
    deviations = []
    for seed, (h, w, q) in enumerate([(900, 1200, 85), (1200, 900, 95), (1024, 1280, 75),
                                      (1000, 1000, 90)]):  # fmt: skip
        data = jpeg(detailed_photo(np.random.default_rng(seed), h, w), quality=q)
        luma = decode_luma_fast(data, width=w, height=h)
        assert luma is not None
        deviations.append(distance(pdq_from_luma(luma).hash, pdq_from_rgb(exact_rgb(data)).hash))
    assert max(deviations) <= 6
    assert np.mean(deviations) <= 1.5


def test_small_images_take_the_exact_path() -> None:
    data = jpeg(detailed_photo(np.random.default_rng(2), 480, 640))
    assert decode_luma_fast(data, width=640, height=480) is None


def test_greyscale_jpeg_matches_exact_path() -> None:
    grey = detailed_photo(np.random.default_rng(3), 1000, 1000)[:, :, 1]
    buf = io.BytesIO()
    Image.fromarray(grey, "L").save(buf, "JPEG", quality=88)
    data = buf.getvalue()
    luma = decode_luma_fast(data, width=1000, height=1000)
    assert luma is not None
    assert np.array_equal(luma, rgb_to_luma(exact_rgb(data)))


def test_exif_orientation_is_ignored() -> None:
    rgb = detailed_photo(np.random.default_rng(4), 1000, 1200)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 on display": the stored pixels stay 1200 wide
    data = jpeg(rgb, exif=exif.tobytes())
    luma = decode_luma_fast(data, width=1200, height=1000)
    assert luma is not None and luma.shape == (1000, 1200)


def test_declines_what_it_cannot_do_exactly_enough() -> None:
    rgb = detailed_photo(np.random.default_rng(5), 1000, 1000)
    data = jpeg(rgb)
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, "PNG")
    cmyk = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(cmyk, "JPEG")
    assert decode_luma_fast(png.getvalue(), width=1000, height=1000) is None
    assert decode_luma_fast(cmyk.getvalue(), width=1000, height=1000) is None
    assert decode_luma_fast(data[: len(data) // 2], width=1000, height=1000) is None  # truncated
    assert decode_luma_fast(data, width=1001, height=1000) is None  # not the size the header said
    assert decode_luma_fast(data, width=1000, height=1000) is not None


def test_corrupt_scan_data_never_raises() -> None:
    data = bytearray(jpeg(detailed_photo(np.random.default_rng(6), 1000, 1000)))
    rng = np.random.default_rng(7)
    for i in range(len(data) // 2, len(data) // 2 + 4000, 40):
        data[i] = int(rng.integers(0, 256))
    luma = decode_luma_fast(bytes(data), width=1000, height=1000)
    assert luma is None or luma.shape == (1000, 1000)


def test_trailing_bytes_after_the_image_are_ignored() -> None:
    data = jpeg(detailed_photo(np.random.default_rng(8), 1000, 1000))
    plain = decode_luma_fast(data, width=1000, height=1000)
    trailed = decode_luma_fast(data + b"vendor trailer" * 10, width=1000, height=1000)
    assert plain is not None and trailed is not None and np.array_equal(plain, trailed)


@pytest.mark.parametrize(
    "blob",
    [b"", b"\xff\xd8\xff", b"\xff\xd8\xff" + b"\x00" * 100 + b"\xff\xd9", b"GIF89a" + b"\xff\xd9"],
)
def test_hostile_bytes_return_none(blob: bytes) -> None:
    assert decode_luma_fast(blob, width=2000, height=2000) is None


def test_scale_choice_keeps_a_short_side_of_480() -> None:
    assert [
        choose_scale(w, h) for w, h in [(1000, 1000), (1280, 960), (2592, 1944), (4000, 3000)]
    ] == [
        2,
        2,
        4,
        4,
    ]
    assert choose_scale(1200, 900) == 1


def test_scaled_decode_is_close_to_the_exact_path() -> None:
    deviations = []
    for seed, (h, w, q) in enumerate([(960, 1280, 80), (1944, 2592, 90), (1000, 1000, 75)]):
        data = jpeg(detailed_photo(np.random.default_rng(seed + 20), h, w), quality=q)
        luma = decode_luma_scaled(data, width=w, height=h)
        s = choose_scale(w, h)
        assert luma is not None and luma.shape == (-(-h // s), -(-w // s))
        scaled = pdq_from_luma(luma, full_size=(h, w)).hash
        deviations.append(distance(scaled, pdq_from_rgb(exact_rgb(data)).hash))
    assert max(deviations) <= 6 and np.mean(deviations) <= 2
    assert (
        decode_luma_scaled(
            jpeg(detailed_photo(np.random.default_rng(1), 480, 640)), width=640, height=480
        )
        is None
    )
