"""One read-only, seekable file object over anything that reads bytes at an offset.

Every reader of a disk image needs the same small thing: a file object over a file inside a
file system (TSK's `read_random`, libfsapfs's `read_buffer_at_offset`) or over a range of an
image handed to a libyal library (which calls `read`, `seek`, `tell` and `get_size`). They
differ only in the call that fetches bytes at an offset, so that call is the one argument.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

ReadAt = Callable[[int, int], bytes]


class ReadAtView(io.RawIOBase):
    """`size` bytes that `read_at(offset, n)` returns, as a read-only seekable file.

    `max_read` caps one read (a file inside an image is streamed in chunks of that size;
    None for a view a library reads in whatever blocks it wants).
    """

    def __init__(self, read_at: ReadAt, size: int, max_read: int | None = None) -> None:
        self._read_at = read_at
        self._size = size
        self._max_read = max_read
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def get_size(self) -> int:
        return self._size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        n = self._size - self._pos if size is None or size < 0 else size
        n = max(0, min(n, self._size - self._pos, self._max_read or n))
        data = bytes(self._read_at(self._pos, n)) if n else b""
        self._pos += len(data)
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)
