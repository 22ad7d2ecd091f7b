"""HEIC/HEIF, AVIF and JPEG XL decode like any image: the phone camera formats are hashed.

Fixtures are encoded here (pillow-heif writes HEIC, Pillow AVIF, pillow-jxl-plugin JXL); the
decoded pixels are checked against the original by PDQ distance (the encodings are lossy)
and exactly for lossless JPEG XL.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hashing.algorithms.pdq import pdq_from_rgb
from hashing.decode import decode_image
from hashing.hasher import HashOptions, hash_bytes
from hashing.sniff import sniff
from synthetic_fixtures.photos import make_photo

PHOTO = make_photo(np.random.default_rng(11), 160, 120)


def encode(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(PHOTO).save(buf, fmt, **kw)
    return buf.getvalue()


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


@pytest.mark.parametrize(("fmt", "media_type"), [
    ("HEIF", "image/heic"), ("AVIF", "image/avif"), ("JXL", "image/jxl"),
])
def test_camera_formats_decode_and_hash_near_the_original(fmt: str, media_type: str) -> None:
    data = encode(fmt, quality=90)
    assert sniff(data[:512]).media_type == media_type
    rec = hash_bytes(data, f"x.{fmt.lower()}", HashOptions())
    assert rec.status == "hashed" and rec.error is None
    assert (rec.media_type, rec.width, rec.height) == (media_type, 160, 120)
    assert distance(rec.hashes["pdq"], pdq_from_rgb(PHOTO).hash) <= 20
    assert rec.hashes["md5"]  # digests of the file's bytes, as for any file


def test_lossless_jpeg_xl_decodes_to_the_exact_pixels() -> None:
    dec = decode_image(encode("JXL", lossless=True), path="x.jxl", need={"rgb"})
    assert np.array_equal(dec.rgb, PHOTO)


def test_truncated_heic_is_an_error_row_not_a_crash() -> None:
    data = encode("HEIF", quality=90)
    rec = hash_bytes(data[: len(data) // 2], "cut.heic", HashOptions())
    assert rec.status == "error" and rec.error and rec.hashes["md5"]


def test_jpeg_xl_signatures() -> None:
    assert sniff(b"\xff\x0a" + b"\x00" * 30).media_type == "image/jxl"
    assert sniff(b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00" * 30).media_type == "image/jxl"
