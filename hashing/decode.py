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
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from hashing.errors import (
    CorruptMediaError,
    DecodeMemoryError,
    MediaError,
    PixelLimitError,
    UnsupportedMediaError,
)
from hashing.sniff import SNIFF_BYTES, sniff

DecodeMode = Literal["fast", "exact"]
Need = Literal["rgb", "luma", "pil"]
ALL_NEEDS: frozenset[Need] = frozenset(("rgb", "luma", "pil"))

# Pillow refuses outright above 2 x MAX_IMAGE_PIXELS and only warns between 1x and 2x; our
# own check enforces the configured limit, so the default is Pillow's hard refusal point and a
# configured limit above it is still capped by Pillow's guard (which stays on).
DEFAULT_PIXEL_LIMIT = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
# What decoding one image may cost in memory (estimated from its header before any pixel is
# decoded). Under the pixel limit, a 12000 x 12000 RGBA PNG of 0.5 MB would still need ~2 GiB
# (the RGBA image, an RGB copy, its array and a float luma plane at once); with this ceiling a
# worker's peak stays under 1 GiB, NumPy, OpenCV and FAISS included.
DEFAULT_MAX_DECODE_BYTES = 640 * 1024 * 1024
# bytes per pixel of the image Pillow holds once loaded, by mode (others: 4)
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16B": 2,
               "I;16L": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}
# Frames (or pages) of one multi-frame image hashed at most; past it the record says so.
DEFAULT_MAX_FRAMES = 1000

# Formats Pillow may open here, each with a real signature. Left out: EPS (Pillow renders it
# by running Ghostscript on the file), TGA and other signature-less formats that would "decode"
# random bytes, and scientific or legacy containers nobody shares hash lists for.
SAFE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "ICO", "CUR", "AVIF",
                "PPM", "PSD", "JPEG2000", "QOI", "ICNS", "HEIF", "JXL")


def _register_plugins() -> None:
    """HEIC/HEIF (the iPhone camera default) through pillow-heif (libheif), JPEG XL through
    pillow-jxl-plugin (the jxl-oxide/libjxl Rust bindings); AVIF is Pillow's own (libavif).
    Registered once at import so workers forked from the preloaded server have them too."""
    import pillow_heif
    import pillow_jxl  # noqa: F401  (registers the JXL plugin on import)

    pillow_heif.register_heif_opener()


_register_plugins()
_EXIF_ORIENTATION = 0x0112
# What Pillow raises from inside a decoder on malformed data.
_DECODER_ERRORS = (OSError, EOFError, SyntaxError, ValueError, struct.error, zlib.error,
                   IndexError, TypeError, RuntimeError)  # RuntimeError: libheif, jxl


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
    multi_frame: bool = False  # an animation or a multi-page file: see `iter_frames`


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
    # pillow-heif names its MIME type image/heif; the sniffer says image/heic for the same files
    return {Image.MIME[f] for f in SAFE_FORMATS if f in Image.MIME} | {"image/heic"}


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
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
) -> DecodedImage:
    """Decode `data` (named `path` in errors), building only the planes listed in `need`.

    In `fast` mode a JPEG's luma comes from `hashing.fast_luma` when it can handle the file;
    everything else, and `exact` mode, derives luma from the exact RGB decode. An image whose
    decode would need more than `max_decode_bytes` (`decode_estimate`) is refused with a
    `DecodeMemoryError` before a pixel is decoded.
    """
    im = _open(data, path, pixel_limit)
    width, height = im.size
    media_type = _media_type(data, im)
    luma: np.ndarray | None = None
    fast = False
    if "luma" in need and mode == "fast" and media_type == "image/jpeg":
        _check_memory(path, im, decode_estimate(im.mode, width, height, need, False),
                      max_decode_bytes, need)
        luma = _fast_luma(data, width, height)
        fast = luma is not None
    _check_memory(path, im, decode_estimate(im.mode, width, height, need, fast),
                  max_decode_bytes, need)
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
        multi_frame=_multi_frame(im),
    )


def _multi_frame(im: Image.Image) -> bool:
    # is_animated, not n_frames: a GIF's frame count means parsing every frame (10^5 of them in
    # a hostile file), while is_animated only looks for a second one
    try:
        return bool(getattr(im, "is_animated", False))
    except _DECODER_ERRORS:
        return True  # a broken second frame: iter_frames says what is wrong with it


class FrameLimitError(MediaError):
    """A multi-frame image has more frames than the configured limit (the rest not hashed)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame (or page): its index, display time in seconds, and RGB pixels."""

    index: int
    t: float
    rgb: np.ndarray


def iter_frames(data: bytes, *, path: str, pixel_limit: int = DEFAULT_PIXEL_LIMIT,
                max_frames: int = DEFAULT_MAX_FRAMES) -> Iterator[Frame]:
    """Every frame of an animated GIF/WebP/APNG/AVIF/HEIF/JXL, or page of a TIFF, in order.

    Frames are decoded one at a time (memory is one frame), each checked against the pixel
    limit. After `max_frames` frames, `FrameLimitError` is raised if another exists, so a
    GIF of 10^5 frames costs `max_frames` decodes. A frame that fails to decode raises the
    typed `MediaError` for it, after the good frames before it.
    """
    im = _open(data, path, pixel_limit)
    t = 0.0
    for index in range(max_frames + 1):
        try:
            im.seek(index)
        except EOFError:
            return
        except _DECODER_ERRORS as exc:
            raise CorruptMediaError(path, f"frame {index + 1}: {_reason(exc, 'data')}") from None
        if index == max_frames:
            raise FrameLimitError(path, f"frame limit {max_frames} reached: frames after "
                                  f"{max_frames} were not hashed")
        width, height = im.size
        if width * height > pixel_limit:
            raise PixelLimitError(path, f"frame {index + 1} exceeds pixel limit: "
                                  f"{width}x{height}")
        try:
            _load(im, path)
        except MediaError as exc:
            raise type(exc)(path, f"frame {index + 1}: {exc.reason}") from None
        rgb = np.asarray(im.convert("RGB"))
        yield Frame(index, t, rgb)
        duration = im.info.get("duration")
        if isinstance(duration, int | float) and duration > 0:
            t += duration / 1000.0


def decode_estimate(mode: str, width: int, height: int, need: Collection[Need],
                    fast_luma: bool) -> int:
    """Peak bytes `decode_image` holds for an image of this mode and size (an upper bound).

    The loaded image, its RGB conversion (unless it is RGB), the array made from it and the
    float32 luma plane can be alive together; the fast JPEG path builds its own small luma
    instead. imagehash's grey conversion of the loaded image is counted for `pil`.
    """
    px = width * height
    loaded = _MODE_BYTES.get(mode, 4) * px
    rgb_needed = "rgb" in need or ("luma" in need and not fast_luma)
    total = 0
    if rgb_needed or "pil" in need:
        total += loaded
    if rgb_needed:
        total += (0 if mode == "RGB" else 3 * px) + 3 * px
    if "luma" in need and not fast_luma:
        total += 4 * px
    if "pil" in need:
        total += px  # imagehash converts to "L" at full size before resizing
    return total


def _check_memory(path: str, im: Image.Image, estimate: int, limit: int,
                  need: Collection[Need]) -> None:
    if estimate > limit:
        mib = 1024 * 1024
        raise DecodeMemoryError(
            path, f"decoding needs about {estimate // mib} MiB ({im.size[0]}x{im.size[1]} "
            f"{im.mode}), over the {limit // mib} MiB decode memory limit; not decoded")


def exif_transposed(img: Image.Image) -> Image.Image:
    """The image as a viewer shows it (EXIF orientation applied), for `--exif-transpose`."""
    return ImageOps.exif_transpose(img)
