"""MD5, SHA-1 and SHA-256 of a file's bytes in one streaming pass.

Each chunk is fed to every requested hash before the next is read, so a file is read once
whatever the number of digests, and a large file never sits in memory whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import BinaryIO

from hashing.registry import DIGESTS

CHUNK_BYTES = 1 << 20  # hashlib drops the GIL for large updates; 1 MiB keeps memory flat


class MultiDigest:
    """Feeds the same bytes to several hashlib objects (md5/sha1/sha256 by our names)."""

    __slots__ = ("_hashes", "size")

    def __init__(self, names: Iterable[str] = DIGESTS) -> None:
        wanted = [n for n in names if n in DIGESTS]
        # usedforsecurity=False: these identify files, they do not protect anything, and it
        # keeps MD5 available on FIPS-restricted builds.
        self._hashes = {n: hashlib.new(n, usedforsecurity=False) for n in wanted}
        self.size = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        for h in self._hashes.values():
            h.update(chunk)
        self.size += len(chunk)

    def hexdigests(self) -> dict[str, str]:
        return {n: h.hexdigest() for n, h in self._hashes.items()}


def digest_bytes(data: bytes, names: Iterable[str] = DIGESTS) -> dict[str, str]:
    """Digests of bytes already in memory (the bytes that are also decoded)."""
    md = MultiDigest(names)
    md.update(data)
    return md.hexdigests()


def digest_stream(
    stream: BinaryIO, names: Iterable[str] = DIGESTS, chunk_bytes: int = CHUNK_BYTES
) -> tuple[dict[str, str], int]:
    """Digests of a file object read to its end in chunks; returns (digests, bytes read)."""
    md = MultiDigest(names)
    buf = bytearray(chunk_bytes)
    view = memoryview(buf)
    while True:
        n = stream.readinto(view)  # type: ignore[attr-defined]
        if not n:
            break
        md.update(view[:n])
    return md.hexdigests(), md.size
