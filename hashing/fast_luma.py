"""Fast luma decoding of JPEGs for PDQ: decode only the Y plane, optionally DCT-scaled.

PDQ needs a luminance image, and a JPEG stores one (Y of YCbCr, with the same
0.299/0.587/0.114 weights PDQ uses), so the decoder can skip the chroma planes, their
upsampling and the YCbCr -> RGB conversion (Pillow `draft("L", ...)`, libjpeg-turbo's grey
output). libjpeg can also scale by 1/2, 1/4, 1/8 inside the inverse DCT, which skips most of
the remaining work. Both are close to, not equal to, the exact path (Pillow's full RGB decode
-> `pdq_from_rgb`), whose luma is recomputed from RGB rounded and clipped to 0..255.

* `decode_luma_fast`: full-size luma (the contract of `hashing.decode`'s fast mode).
* `decode_luma_scaled`: luma at 1/`choose_scale(width, height)` (4 for a short side of at
  least 1920 pixels, 2 from 960, else 1). Hash it with
  `pdq_from_luma(luma, full_size=(height, width))`: PDQ's box windows and sample grid must
  stay the full-size ones. Running plain PDQ on the reduced grid instead (windows and sample
  positions rounded to whole reduced pixels) is what made reduced decodes look bad; a 2x2
  `INTER_AREA` average of the full-size luma deviates exactly as much as the 1/2 DCT decode,
  hash for hash, so the loss was never the DCT scaling.

Measured on one core of a shared AMD EPYC: 24 photo-like JPEGs from
`synthetic_fixtures.photos.make_photo`, half with extra full-resolution edges, stripes and
noise, 5-16 MP, quality 75 and 90; Hamming distance of the PDQ hash to the exact path's;
decode + PDQ CPU time, median:

    decode                      PDQ grid       mean bits  p99   max   ms
    luma-only, full size        full             0.50      2     2    66
    luma-only, DCT 1/2          full size        0.42      2     2    29
    luma-only, DCT 1/4          full size        0.42      2     2    22
    luma-only, DCT 1/8          full size        0.83      2     2    19
    luma-only, DCT 1/2          reduced          1.83      4     4    30
    luma-only, DCT 1/4          reduced          3.25     10    10    24
    luma-only, DCT 1/8          reduced          7.25     13.5  14    19
    exact path (Pillow RGB)     full             0         0     0   126

The reduced decode must keep enough pixels: on 8 images each, 1/4 of 1600x1200 deviated
1.0 bits and 1/8 of 2048x1536 1.5, while a short side of 480+ stayed at 0.25-0.75
(1/2 of 1280x960: 0.5; 1/4 of 2048x1536: 0.5); hence `MIN_REDUCED_SIDE`. Under 1 MP
(`MIN_PIXELS`) both functions return None: the exact decode costs a few milliseconds there
and the luma-only error is largest (1.0 bits at 0.3 MP).

OpenCV (`IMREAD_GRAYSCALE`, `IMREAD_REDUCED_GRAYSCALE_*`) decodes the same pixels as Pillow's
draft, 5-10 % faster, but prints libjpeg's warnings on stderr and fills a truncated scan
with grey where Pillow raises; with Pillow, truncated files fail here as on the exact path.

Only JPEGs whose stored colour is YCbCr or greyscale qualify, not CMYK/YCCK (there Pillow's
`convert("RGB")` differs from the decoder's own grey). EXIF orientation is not applied, as
on the exact path: PDQ hashes the stored pixels. Anything else, and any decoder error,
returns None and the caller takes the exact path, which reports the error.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

MIN_PIXELS = 1_000_000  # below this the exact path is cheap and the luma-only error largest
MIN_REDUCED_SIDE = 480  # shortest side a scaled decode keeps (see the measurements above)
_JPEG_MAGIC = b"\xff\xd8\xff"
_LUMA_MODES = frozenset({"L", "RGB"})  # Pillow's modes for greyscale and YCbCr JPEGs
# Anything Pillow raises on a bad file; the exact path decodes again and names the problem.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def choose_scale(width: int, height: int) -> int:
    """The DCT scaling (1, 2 or 4) for a scaled decode: the largest that keeps the short side."""
    for scale in (4, 2):
        if min(width, height) // scale >= MIN_REDUCED_SIDE:
            return scale
    return 1


def _decode_grey(data: bytes, width: int, height: int, scale: int) -> np.ndarray | None:
    if width * height < MIN_PIXELS or not data.startswith(_JPEG_MAGIC):
        return None
    want = (-(-width // scale), -(-height // scale))  # libjpeg rounds scaled sizes up
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG" or im.mode not in _LUMA_MODES or im.size != (width, height):
                return None
            # Pillow picks the scale from the size asked for: floor division asks for it
            im.draft("L", (max(1, width // scale), max(1, height // scale)))
            if im.mode != "L" or im.size != want:
                return None
            im.load()
            return np.asarray(im, dtype=np.float32)
    except _DECODE_ERRORS:
        return None


def decode_luma_fast(data: bytes, *, width: int, height: int) -> np.ndarray | None:
    """float32[height, width] luma of a JPEG, or None when the exact path must be used.

    `width` and `height` are the stored size the caller read from the header; a decode of
    any other size returns None rather than a guess.
    """
    return _decode_grey(data, width, height, 1)


def decode_luma_scaled(data: bytes, *, width: int, height: int) -> np.ndarray | None:
    """Luma of a JPEG decoded at 1/`choose_scale(width, height)` size, or None (exact path).

    Hash it with `pdq_from_luma(luma, full_size=(height, width))`, which applies the
    full-size PDQ filter to the reduced pixels; without `full_size` the hash deviates more.
    """
    return _decode_grey(data, width, height, choose_scale(width, height))
