"""decode_image: pixels equal Pillow's `convert("RGB")` of the stored pixels for every mode,
PDQ of those pixels matches the pdqhash oracle, and hostile bytes give typed reasons."""

from __future__ import annotations

import io
import struct
import sys
import types
import zlib

import numpy as np
import pytest
from _pdq_oracle import pdq_oracle
from PIL import Image

from hashing import decode
from hashing.decode import DEFAULT_PIXEL_LIMIT, SAFE_FORMATS, decode_image, exif_transposed
from hashing.errors import CorruptMediaError, PixelLimitError, UnsupportedMediaError

MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I", "F"]


def _photo(h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    """Photo-like RGB: gradients, a few shapes and seeded noise (enough structure for PDQ)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 200, y / h * 180, (x + y) / (w + h) * 255], axis=2)
    for _ in range(4):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(5, 20)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _in_mode(mode: str, seed: int = 0) -> Image.Image:
    base = Image.fromarray(_photo(seed=seed))
    if mode == "PA":
        im = base.convert("P").convert("PA")
    elif mode == "I;16":
        im = Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257)
    elif mode == "I":
        # values outside 0..255 so the clipping inside convert("RGB") is exercised
        arr = np.asarray(base.convert("L")).astype(np.int32) * 3 - 200
        im = Image.fromarray(arr)
    elif mode == "F":
        im = Image.fromarray(np.asarray(base.convert("L")).astype(np.float32) * 1.3 - 20.5)
    else:
        im = base.convert(mode)
    assert im.mode == mode
    return im


def _save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _oracle_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_matches_pillow_and_pdq_oracle(mode: str) -> None:
    from hashing.algorithms.pdq import pdq_from_luma, pdq_from_rgb

    data = _save(_in_mode(mode), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == mode
    dec = decode_image(data, path="x.tif", mode="exact")
    expected = _oracle_rgb(data)
    assert dec.rgb is not None and dec.rgb.dtype == np.uint8
    np.testing.assert_array_equal(dec.rgb, expected)
    assert (dec.width, dec.height) == (96, 72) and dec.media_type == "image/tiff"
    want = pdq_oracle(expected)
    got = pdq_from_rgb(dec.rgb)
    assert (got.hash, got.quality) == want
    assert dec.luma is not None and dec.luma.dtype == np.float32
    via_luma = pdq_from_luma(dec.luma)  # the path the hasher takes
    assert (via_luma.hash, via_luma.quality) == want


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGBA", "PNG"),
     ("I;16", "PNG"), ("CMYK", "JPEG"), ("L", "JPEG"), ("RGB", "WEBP"), ("P", "GIF"),
     ("RGB", "BMP")],
)
def test_other_containers_match_pillow(mode: str, fmt: str) -> None:
    data = _save(_in_mode(mode), fmt)
    dec = decode_image(data, path=f"x.{fmt.lower()}", mode="exact")
    np.testing.assert_array_equal(dec.rgb, _oracle_rgb(data))


def test_alpha_is_dropped_not_composited() -> None:
    arr = np.zeros((16, 16, 4), np.uint8)
    arr[..., 0] = 200  # red everywhere, but fully transparent
    data = _save(Image.fromarray(arr), "PNG")
    dec = decode_image(data, path="a.png")
    assert dec.rgb is not None
    assert (dec.rgb[..., 0] == 200).all() and (dec.rgb[..., 1:] == 0).all()


def test_animation_contributes_first_frame() -> None:
    frames = [Image.fromarray(_photo(seed=s)).convert("P") for s in (1, 2, 3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    data = buf.getvalue()
    dec = decode_image(data, path="a.gif")
    np.testing.assert_array_equal(dec.rgb, _oracle_rgb(data))
    np.testing.assert_array_equal(dec.rgb, np.asarray(frames[0].convert("RGB")))


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_recorded_not_applied(orientation: int) -> None:
    im = Image.fromarray(_photo(48, 80))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _save(im, "JPEG", exif=exif.tobytes(), quality=95)
    dec = decode_image(data, path="o.jpg", mode="exact")
    assert dec.exif_orientation == orientation
    assert (dec.width, dec.height) == (80, 48)
    assert dec.rgb is not None and dec.rgb.shape == (48, 80, 3)
    np.testing.assert_array_equal(dec.rgb, _oracle_rgb(data))
    assert dec.pil is not None
    shown = exif_transposed(dec.pil)
    assert shown.size == ((48, 80) if orientation in (6, 8) else (80, 48))


def test_no_exif_means_no_orientation() -> None:
    assert decode_image(_save(Image.fromarray(_photo()), "PNG"), path="p").exif_orientation is None


def test_need_builds_only_what_is_asked() -> None:
    data = _save(Image.fromarray(_photo()), "PNG")
    only_luma = decode_image(data, path="p.png", need={"luma"})
    assert only_luma.rgb is None and only_luma.pil is None
    assert only_luma.luma is not None and only_luma.luma.shape == (72, 96)
    only_pil = decode_image(data, path="p.png", need={"pil"})
    assert only_pil.rgb is None and only_pil.luma is None and only_pil.pil is not None


@pytest.fixture
def fake_fast_luma(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Replace `hashing.fast_luma` with a recorder (the real one is another module's job)."""
    calls: list[tuple[int, int]] = []
    mod = types.ModuleType("hashing.fast_luma")

    def decode_luma_fast(data: bytes, *, width: int, height: int) -> np.ndarray | None:
        calls.append((width, height))
        return None if width == 33 else np.full((8, 8), 7.0, np.float32)

    mod.decode_luma_fast = decode_luma_fast  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hashing.fast_luma", mod)
    return calls


def test_fast_mode_uses_fast_luma_for_jpeg(fake_fast_luma: list[tuple[int, int]]) -> None:
    data = _save(Image.fromarray(_photo()), "JPEG")
    dec = decode_image(data, path="f.jpg", mode="fast", need={"luma"})
    assert fake_fast_luma == [(96, 72)] and dec.fast_luma
    assert dec.luma is not None and dec.luma.shape == (8, 8)
    exact = decode_image(data, path="f.jpg", mode="exact", need={"luma"})
    assert not exact.fast_luma and exact.luma is not None and exact.luma.shape == (72, 96)
    assert fake_fast_luma == [(96, 72)]


def test_fast_mode_falls_back_when_fast_decoder_declines(
    fake_fast_luma: list[tuple[int, int]],
) -> None:
    data = _save(Image.fromarray(_photo(40, 33)), "JPEG")
    dec = decode_image(data, path="f.jpg", mode="fast", need={"luma"})
    assert fake_fast_luma == [(33, 40)] and not dec.fast_luma
    assert dec.luma is not None and dec.luma.shape == (40, 33)


def test_fast_mode_never_used_for_png(fake_fast_luma: list[tuple[int, int]]) -> None:
    decode_image(_save(Image.fromarray(_photo()), "PNG"), path="p.png", mode="fast")
    assert fake_fast_luma == []


# --- hostile input ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF"])
def test_truncated_images(fmt: str) -> None:
    data = _save(Image.fromarray(_photo(200, 200, seed=5)), fmt)
    with pytest.raises(CorruptMediaError) as err:
        decode_image(data[: len(data) // 2], path="t", mode="exact")
    assert err.value.path == "t"
    assert err.value.reason.startswith(("truncated", "malformed"))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_jpeg_and_png_say_truncated(fmt: str) -> None:
    data = _save(Image.fromarray(_photo(200, 200, seed=5)), fmt)
    with pytest.raises(CorruptMediaError) as err:
        decode_image(data[: len(data) * 2 // 3], path="t", mode="exact")
    assert err.value.reason.startswith("truncated"), err.value.reason


def test_truncation_not_tolerated_globally() -> None:
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    "data",
    [b"", b"plain text pretending to be a jpeg\n" * 10,
     np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
     b"\xff\xd8\xff" + b"\x00" * 20],
)
def test_not_an_image(data: bytes) -> None:
    with pytest.raises((UnsupportedMediaError, CorruptMediaError)) as err:
        decode_image(data, path="x.jpg")
    assert err.value.reason


def test_text_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaError, match="not a recognised image"):
        decode_image(b"hello\n", path="x.jpg")


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) \
        + chunk(b"IEND", b"")


def test_pixel_bomb_header() -> None:
    with pytest.raises(PixelLimitError, match="pixel limit"):
        decode_image(_png_header(100_000, 100_000), path="bomb.png")


def test_configurable_pixel_limit() -> None:
    data = _save(Image.fromarray(_photo()), "PNG")  # 96 x 72 = 6912 pixels
    with pytest.raises(PixelLimitError, match="6912"):
        decode_image(data, path="p.png", pixel_limit=6911)
    assert decode_image(data, path="p.png", pixel_limit=6912).width == 96
    assert DEFAULT_PIXEL_LIMIT >= 178_000_000


def test_recognised_but_undecodable_format_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _save(Image.fromarray(_photo()), "PNG")
    monkeypatch.setattr(decode, "SAFE_FORMATS", tuple(f for f in SAFE_FORMATS if f != "PNG"))
    with pytest.raises(UnsupportedMediaError, match="no decoder for image/png"):
        decode_image(data, path="x.png")


def test_a_heic_signature_with_garbage_is_corrupt_not_unsupported() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200
    with pytest.raises(CorruptMediaError):
        decode_image(heic, path="x.heic")


def test_signature_without_a_readable_header_is_corrupt() -> None:
    with pytest.raises(CorruptMediaError, match="malformed image header"):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, path="x.png")


def test_fast_mode_without_fast_decoder_uses_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hashing.fast_luma", None)  # import now raises ImportError
    data = _save(Image.fromarray(_photo()), "JPEG")
    dec = decode_image(data, path="f.jpg", mode="fast", need={"luma"})
    assert not dec.fast_luma and dec.luma is not None and dec.luma.shape == (72, 96)


def test_cut_inside_header_says_truncated() -> None:
    data = _save(Image.fromarray(_photo()), "JPEG")
    with pytest.raises(CorruptMediaError) as err:
        decode_image(data[:300], path="c.jpg")
    assert err.value.reason.startswith("truncated image"), err.value.reason


def test_signature_less_and_dangerous_formats_are_not_opened() -> None:
    tga = _save(Image.fromarray(_photo()), "TGA")
    with pytest.raises(UnsupportedMediaError):
        decode_image(tga, path="a.tga")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n" + b"showpage\n" * 5
    with pytest.raises(UnsupportedMediaError):
        decode_image(eps, path="a.eps")  # Pillow would hand this to Ghostscript


@pytest.mark.parametrize("fmt", ["PPM", "JPEG2000", "QOI"])
def test_other_signed_formats_decode(fmt: str) -> None:
    data = _save(Image.fromarray(_photo()), fmt)
    dec = decode_image(data, path="x")
    np.testing.assert_array_equal(dec.rgb, _oracle_rgb(data))
