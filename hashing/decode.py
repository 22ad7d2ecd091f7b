"""Bytes to pixels, once per file: the single image decoding step every algorithm shares.

Pixel handling follows the reference implementations so our hashes agree with shared lists:
the stored pixels are hashed (no EXIF transpose; the orientation is only recorded), other
modes go through Pillow's `convert("RGB")` (alpha dropped, not composited) and animations
contribute their first frame. Only what the caller needs is built (`need`): PDQ in fast mode
wants a small luma plane and never pays for a full RGB decode of a large JPEG.

Errors are typed so a record can say why: `PixelLimitError` for decompression bombs,
`CorruptMediaError` for truncated or malformed data, `UnsupportedMediaError` for bytes that
are not an image Pillow can read. Pillow's truncated-image tolerance is never switched on.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from hashing.errors import CorruptMediaError, PixelLimitError, UnsupportedMediaError
from hashing.sniff import SNIFF_BYTES, sniff

DecodeMode = Literal["fast", "exact"]
Need = Literal["rgb", "luma", "pil"]
ALL_NEEDS: frozenset[Need] = frozenset(("rgb", "luma", "pil"))

# Pillow refuses outright above 2 x MAX_IMAGE_PIXELS and only warns between 1x and 2x; our
# own check enforces the configured limit, so the default is Pillow's hard refusal point and a
# configured limit above it is still capped by Pillow's guard (which stays on).
DEFAULT_PIXEL_LIMIT = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)

# Formats Pillow may open here, each with a real signature. Left out: EPS (Pillow renders it
# by running Ghostscript on the file), TGA and other signature-less formats that would "decode"
# random bytes, and scientific or legacy containers nobody shares hash lists for.
SAFE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "ICO", "CUR", "AVIF",
                "PPM", "PSD", "JPEG2000", "QOI", "ICNS")
_EXIF_ORIENTATION = 0x0112
# What Pillow raises from inside a decoder on malformed data.
_DECODER_ERRORS = (OSError, EOFError, SyntaxError, ValueError, struct.error, zlib.error,
                   IndexError, TypeError)


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """One decoded image. `rgb`, `luma` and `pil` are None unless asked for via `need`.

    `width`/`height` are the stored pixel dimensions. `rgb` is uint8[H, W, 3] exactly as
    `Image.open(...).convert("RGB")`; `luma` is float32 for PDQ and may be smaller than the
    image when the fast JPEG path produced it; `pil` is the loaded first frame for imagehash.
    """

    media_type: str
    width: int
    height: int
    exif_orientation: int | None
    rgb: np.ndarray | None = None
    luma: np.ndarray | None = None
    pil: Image.Image | None = None
    fast_luma: bool = False  # True when `luma` came from the reduced JPEG decoder


def _open(data: bytes, path: str, pixel_limit: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # the warning band below Pillow's hard limit is governed by our own check instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=SAFE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise PixelLimitError(path, f"exceeds pixel limit: {exc}") from None
    except UnidentifiedImageError:
        kind = sniff(data[:SNIFF_BYTES])
        if kind.family != "image":
            raise UnsupportedMediaError(path, "not a recognised image format") from None
        if kind.media_type not in _pillow_media_types():
            raise UnsupportedMediaError(path, f"no decoder for {kind.media_type}") from None
        raise CorruptMediaError(
            path, f"malformed image header: {kind.media_type} signature but unreadable"
        ) from None
    except _DECODER_ERRORS as exc:
        raise CorruptMediaError(path, _reason(exc, "header")) from None
    width, height = im.size
    if width <= 0 or height <= 0:
        raise CorruptMediaError(path, f"invalid dimensions {width}x{height}")
    if width * height > pixel_limit:
        raise PixelLimitError(
            path, f"exceeds pixel limit: {width}x{height} = {width * height} pixels "
            f"> {pixel_limit}"
        )
    return im


def _load(im: Image.Image, path: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except _DECODER_ERRORS as exc:
        raise CorruptMediaError(path, _reason(exc, "data")) from None


def _reason(exc: BaseException, part: str) -> str:
    """'truncated image data: ...' or 'malformed image header: ...' from a decoder error."""
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, EOFError) or "truncated" in lowered or "end of file" in lowered:
        return f"truncated image {part}: {text}"
    return f"malformed image {part}: {text}"


def _pillow_media_types() -> set[str]:
    Image.init()  # registers every plugin, so MIME lists all formats this Pillow can read
    return {Image.MIME[f] for f in SAFE_FORMATS if f in Image.MIME}


def _orientation(im: Image.Image) -> int | None:
    try:
        value = im.getexif().get(_EXIF_ORIENTATION)
    except _DECODER_ERRORS:
        # a broken EXIF block must not lose the pixels; the orientation is just unknown
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _media_type(data: bytes, im: Image.Image) -> str:
    kind = sniff(data[:SNIFF_BYTES])
    if kind.family == "image" and kind.media_type:
        return kind.media_type
    return Image.MIME.get(im.format or "", f"image/x-{(im.format or 'unknown').lower()}")


def _fast_luma(data: bytes, width: int, height: int) -> np.ndarray | None:
    try:
        from hashing.fast_luma import decode_luma_fast
    except ImportError:
        # the fast decoder is an optimisation with a native part; the exact path is always
        # correct, so an install without it is slower, never wrong
        return None
    return decode_luma_fast(data, width=width, height=height)


def decode_image(
    data: bytes,
    *,
    path: str,
    mode: DecodeMode = "exact",
    pixel_limit: int = DEFAULT_PIXEL_LIMIT,
    need: Collection[Need] = ALL_NEEDS,
) -> DecodedImage:
    """Decode `data` (named `path` in errors), building only the planes listed in `need`.

    In `fast` mode a JPEG's luma comes from `hashing.fast_luma` when it can handle the file;
    everything else, and `exact` mode, derives luma from the exact RGB decode.
    """
    im = _open(data, path, pixel_limit)
    width, height = im.size
    media_type = _media_type(data, im)
    luma: np.ndarray | None = None
    fast = False
    if "luma" in need and mode == "fast" and media_type == "image/jpeg":
        luma = _fast_luma(data, width, height)
        fast = luma is not None
    rgb: np.ndarray | None = None
    pixels_needed = "rgb" in need or "pil" in need or ("luma" in need and luma is None)
    if pixels_needed:
        _load(im, path)
    if "rgb" in need or ("luma" in need and luma is None):
        # convert("RGB") of an RGB image is a full copy; asarray copies once anyway
        rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    if "luma" in need and luma is None:
        from hashing.pdq_kernels import rgb_to_luma

        assert rgb is not None
        luma = rgb_to_luma(rgb)
    return DecodedImage(
        media_type=media_type,
        width=width,
        height=height,
        exif_orientation=_orientation(im),
        rgb=rgb if "rgb" in need else None,
        luma=luma,
        pil=im if "pil" in need else None,
        fast_luma=fast,
    )


def exif_transposed(img: Image.Image) -> Image.Image:
    """The image as a viewer shows it (EXIF orientation applied), for `--exif-transpose`."""
    return ImageOps.exif_transpose(img)
