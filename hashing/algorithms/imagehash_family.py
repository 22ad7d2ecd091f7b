"""pHash, dHash, aHash and wHash, string-identical to the `imagehash` library.

Partners share these hashes as `str(imagehash.X(Image.open(path)))`, so we call imagehash
itself on the same decoded first frame. The only saving is converting to greyscale once:
every one of these functions starts with `image.convert("L")`, and converting an "L" image
again is a plain copy, so the results are bit-identical (checked in the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import imagehash
from PIL import Image

FUNCTIONS: dict[str, Callable[[Image.Image], imagehash.ImageHash]] = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,  # default: haar wavelet, hash_size 8
}
NAMES = tuple(FUNCTIONS)


def imagehash_hashes(img: Image.Image, names: Iterable[str]) -> dict[str, str]:
    """Hex strings for the requested imagehash algorithms (others in `names` are ignored)."""
    wanted = [n for n in names if n in FUNCTIONS]
    if not wanted:
        return {}
    grey = img if img.mode == "L" else img.convert("L")
    return {n: str(FUNCTIONS[n](grey)) for n in wanted}
