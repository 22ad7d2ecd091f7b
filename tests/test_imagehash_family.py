"""Our phash/dhash/ahash/whash strings equal `str(imagehash.X(Image.open(path)))` exactly,
across generated images, sizes, modes and containers (the shared grey conversion included)."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image

from hashing.algorithms.imagehash_family import FUNCTIONS, NAMES, imagehash_hashes
from hashing.decode import decode_image

REFERENCE = {"phash": imagehash.phash, "dhash": imagehash.dhash,
             "ahash": imagehash.average_hash, "whash": imagehash.whash}


def _generated(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(9, 300)), int(rng.integers(9, 300))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = seed % 3
    if kind == 0:  # gradient + noise
        img = np.stack([x / w * 255, y / h * 255, np.full_like(x, 128)], 2)
        img += rng.normal(0, 25, img.shape)
    elif kind == 1:  # shapes on a flat ground
        img = np.full((h, w, 3), rng.integers(0, 255, 3), np.float32)
        for _ in range(6):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            img[y0 : y0 + rng.integers(3, 60), x0 : x0 + rng.integers(3, 60)] = rng.integers(
                0, 255, 3)
    else:  # pure noise
        img = rng.integers(0, 256, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _file_bytes(arr: np.ndarray, mode: str, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


def _expected(data: bytes) -> dict[str, str]:
    return {n: str(f(Image.open(io.BytesIO(data)))) for n, f in REFERENCE.items()}


def test_names_cover_registry_family() -> None:
    assert set(NAMES) == {"phash", "dhash", "ahash", "whash"} == set(FUNCTIONS)


@pytest.mark.parametrize("seed", range(24))
def test_generated_pngs_bit_identical(seed: int) -> None:
    data = _file_bytes(_generated(seed), "RGB", "PNG")
    dec = decode_image(data, path="g.png", need={"pil"})
    assert dec.pil is not None
    assert imagehash_hashes(dec.pil, NAMES) == _expected(data)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGBA", "PNG"),
     ("CMYK", "TIFF"), ("YCbCr", "TIFF"), ("RGB", "JPEG"), ("L", "JPEG"), ("CMYK", "JPEG"),
     ("P", "GIF"), ("RGB", "WEBP"), ("RGB", "BMP")],
)
def test_modes_and_containers_bit_identical(mode: str, fmt: str) -> None:
    data = _file_bytes(_generated(101), mode, fmt)
    dec = decode_image(data, path="m", need={"pil"})
    assert dec.pil is not None
    assert imagehash_hashes(dec.pil, NAMES) == _expected(data)


def test_wide_value_modes_bit_identical() -> None:
    grey = np.asarray(Image.fromarray(_generated(5)).convert("L"))
    for arr in (grey.astype(np.uint16) * 257, grey.astype(np.int32) * 3 - 100,
                grey.astype(np.float32) * 0.7):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="TIFF")
        data = buf.getvalue()
        dec = decode_image(data, path="w.tif", need={"pil"})
        assert dec.pil is not None
        assert imagehash_hashes(dec.pil, NAMES) == _expected(data)


def test_subset_order_and_format() -> None:
    img = Image.fromarray(_generated(2))
    out = imagehash_hashes(img, ("whash", "pdq", "md5", "dhash"))
    assert list(out) == ["whash", "dhash"]
    assert all(len(v) == 16 and int(v, 16) >= 0 for v in out.values())
    assert imagehash_hashes(img, ("pdq",)) == {}


def test_flat_image() -> None:
    data = _file_bytes(np.full((50, 70, 3), 90, np.uint8), "RGB", "PNG")
    dec = decode_image(data, path="f.png", need={"pil"})
    assert dec.pil is not None
    assert imagehash_hashes(dec.pil, NAMES) == _expected(data)
