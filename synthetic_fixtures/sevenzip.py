"""7z archives for the fixtures, written by py7zr (a dev dependency: the tool only reads 7z,
through libarchive, so writer and reader are independent implementations)."""

from __future__ import annotations

import io
from collections.abc import Mapping

import py7zr


def make_7z(members: Mapping[str, bytes], *, password: str | None = None,
            header_encryption: bool = False) -> bytes:
    """A solid LZMA2 7z of `members` (name -> bytes); encrypted (AES) when `password` is set,
    with the file list encrypted too when `header_encryption`."""
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password=password,
                            header_encryption=header_encryption) as z:
        for name, data in members.items():
            z.writestr(data, name)
    return buf.getvalue()
