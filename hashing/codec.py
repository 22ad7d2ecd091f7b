"""The one place where hash hex strings become packed bits and back.

Every parser, index and output goes through here, so length and alphabet checks live once.
Packed form is the big-endian bytes of the hex string (`bytes.fromhex`), which is also
FAISS's binary-code layout: Hamming distance is the popcount of the XOR of the rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from hashing.errors import HashFormatError
from hashing.registry import spec
from hashing.types import HashValue

_HEX = frozenset("0123456789abcdefABCDEF")
_PLAIN_HEX = re.compile(r"[0-9a-fA-F]+")


def normalise_hex(algorithm: str, text: str) -> str:
    """Validate `text` as a hash of `algorithm`; return it lower-case and stripped."""
    s = spec(algorithm)
    if len(text) == s.hex_length and _PLAIN_HEX.fullmatch(text):
        return text.lower()  # the usual case, one C match (bank imports call this per hash)
    value = text.strip()
    if value[:2] in ("0x", "0X"):
        value = value[2:]
    if not value:
        raise HashFormatError(algorithm, text, "empty")
    if not set(value) <= _HEX:
        raise HashFormatError(algorithm, text, "not hexadecimal")
    if len(value) != s.hex_length:
        raise HashFormatError(
            algorithm, text, f"expected {s.hex_length} hex digits, got {len(value)}"
        )
    return value.lower()


def hex_to_bits(algorithm: str, text: str) -> bytes:
    return bytes.fromhex(normalise_hex(algorithm, text))


def bits_to_hex(bits: bytes | np.ndarray) -> str:
    return bytes(bits).hex()


def to_value(algorithm: str, text: str, quality: int | None = None) -> HashValue:
    return HashValue(algorithm, hex_to_bits(algorithm, text), quality)


def pack(algorithm: str, hexes: Iterable[str]) -> np.ndarray:
    """Pack hex strings into a C-contiguous `uint8[n, nbytes]` array (validating each)."""
    s = spec(algorithm)
    rows = [hex_to_bits(algorithm, h) for h in hexes]
    if not rows:
        return np.zeros((0, s.nbytes), dtype=np.uint8)
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), s.nbytes).copy()


def unpack(rows: np.ndarray) -> list[str]:
    """Inverse of `pack`."""
    return [r.tobytes().hex() for r in np.ascontiguousarray(rows, dtype=np.uint8)]


def bitvector_to_hex(bitvec: Sequence[int] | np.ndarray) -> str:
    """MSB-first bit vector (as `pdqhash` and imagehash hold bits) to hex."""
    arr = np.asarray(bitvec, dtype=np.uint8).astype(bool)
    return np.packbits(arr).tobytes().hex()


def hex_to_bitvector(text: str) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))
