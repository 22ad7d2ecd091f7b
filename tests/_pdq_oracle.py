"""The PDQ reference for the hashing-layer tests: `pdqhash.compute` as (hex, quality)."""

from __future__ import annotations

import numpy as np

from hashing.codec import bitvector_to_hex


def pdq_oracle(rgb: np.ndarray) -> tuple[str, int]:
    """`pdqhash.compute` on the given RGB pixels, in the reference hex bit order."""
    import pdqhash

    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb, dtype=np.uint8))
    return bitvector_to_hex(bits), int(quality)
