"""Stand-in for the PDQ modules (`hashing.algorithms.pdq`, `hashing.pdq_kernels`,
`hashing.fast_luma`) while they are being written: wraps the `pdqhash` reference bindings
behind the contract's names, and a fast luma decoder that always declines.

`install()` does nothing once the real modules import, so tests written against the contract
run unchanged on our own PDQ. Only the hashing-layer tests use this, never library code.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class PdqResult:
    hash: str
    quality: int
    dihedral: tuple[str, ...] | None


def _hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8).astype(bool)).tobytes().hex()


def _pdq_from_rgb(rgb: np.ndarray, dihedral: bool = False) -> PdqResult:
    import pdqhash

    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if dihedral:
        hashes, qualities = pdqhash.compute_dihedral(rgb)
        return PdqResult(_hex(hashes[0]), int(qualities[0]), tuple(_hex(h) for h in hashes))
    bits, quality = pdqhash.compute(rgb)
    return PdqResult(_hex(bits), int(quality), None)


def _rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    return 0.299 * r + 0.587 * g + 0.114 * b


def _pdq_from_luma(luma: np.ndarray, dihedral: bool = False) -> PdqResult:
    # pdqhash takes RGB only; a grey image with R=G=B=round(luma) is within rounding of it
    grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    return _pdq_from_rgb(np.repeat(grey[..., None], 3, axis=2), dihedral)


def _decode_luma_fast(data: bytes, *, width: int, height: int) -> None:
    return None  # "use the exact path", which the contract allows for any input


def install() -> bool:
    """Register the stand-ins for whichever real modules are missing (PDQ, fast JPEG luma);
    True when the PDQ stand-in was installed."""
    try:
        importlib.import_module("hashing.fast_luma")
    except ImportError:
        fast = types.ModuleType("hashing.fast_luma")
        fast.decode_luma_fast = _decode_luma_fast  # type: ignore[attr-defined]
        sys.modules["hashing.fast_luma"] = fast
    try:
        importlib.import_module("hashing.algorithms.pdq")
        importlib.import_module("hashing.pdq_kernels")
        return False
    except ImportError:
        pass
    pdq = types.ModuleType("hashing.algorithms.pdq")
    pdq.PdqResult = PdqResult  # type: ignore[attr-defined]
    pdq.pdq_from_rgb = _pdq_from_rgb  # type: ignore[attr-defined]
    pdq.pdq_from_luma = _pdq_from_luma  # type: ignore[attr-defined]
    kernels = types.ModuleType("hashing.pdq_kernels")
    kernels.rgb_to_luma = _rgb_to_luma  # type: ignore[attr-defined]
    sys.modules["hashing.algorithms.pdq"] = pdq
    sys.modules["hashing.pdq_kernels"] = kernels
    return True


def pdq_oracle(rgb: np.ndarray) -> tuple[str, int]:
    """The reference: `pdqhash.compute` on the given RGB pixels, as (hex, quality)."""
    import pdqhash

    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb, dtype=np.uint8))
    return _hex(bits), int(quality)
