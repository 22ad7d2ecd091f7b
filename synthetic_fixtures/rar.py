"""RAR 4 archives written from the format's own structures (stored members only).

Why by hand: nothing here can write RAR. The only RAR writer is RARLAB's proprietary `rar`
(Debian's non-free `rar` package, absent from the archive this project installs from);
libarchive, 7-Zip and every PyPI package only read it. RAR 4's container is small and
documented in RARLAB's technote: a marker block, an archive header, one header per file
followed by its packed bytes, and an end block, each header with a CRC-16 (the low half of
CRC-32). Members are "stored" (method 0x30): compressing needs RAR's own encoder, so the
hostile RAR cases are the ones the container itself can carry: a header declaring a huge
size (a bomb by its header), more members than the limit, an encrypted member, truncation.
The reader side (libarchive) is a real, independent implementation, so the fixtures are
checked by something we did not write.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MARKER = b"Rar!\x1a\x07\x00"
_MAIN, _FILE, _END = 0x73, 0x74, 0x7B
_LONG_BLOCK = 0x8000
_PASSWORD = 0x0004
_LARGE = 0x0100
_SALT = 0x0400
_STORE = 0x30
_HOST_UNIX = 3
_DOS_TIME_2020 = ((2020 - 1980) << 25) | (1 << 21) | (1 << 16)  # 2020-01-01 00:00:00


@dataclass(frozen=True, slots=True)
class RarMember:
    """One stored member. `declared_size` overrides the unpacked size in its header (a lie);
    `encrypted` sets the password flag (the bytes are then what an encrypted member holds
    for a reader without the password: noise)."""

    name: str
    data: bytes
    declared_size: int | None = None
    encrypted: bool = False


def _block(head_type: int, flags: int, body: bytes) -> bytes:
    head = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head


def _file_block(m: RarMember) -> bytes:
    name = m.name.encode("utf-8")
    unp = len(m.data) if m.declared_size is None else m.declared_size
    flags = _LONG_BLOCK
    if m.encrypted:
        flags |= _PASSWORD | _SALT
    large = unp > 0xFFFFFFFF or len(m.data) > 0xFFFFFFFF
    if large:
        flags |= _LARGE
    body = struct.pack(
        "<IIBIIBBHI",
        len(m.data) & 0xFFFFFFFF, unp & 0xFFFFFFFF, _HOST_UNIX, zlib.crc32(m.data),
        _DOS_TIME_2020, 29, _STORE, len(name), 0o100644,  # a Unix host keeps st_mode
    )
    if large:
        body += struct.pack("<II", len(m.data) >> 32, unp >> 32)
    body += name
    if m.encrypted:
        body += b"\x00" * 8  # the salt
    return _block(_FILE, flags, body) + m.data


def rar4_stored(members: list[RarMember]) -> bytes:
    """A complete RAR 4 archive holding `members`, stored."""
    out = [MARKER, _block(_MAIN, 0, b"\x00" * 6)]
    out.extend(_file_block(m) for m in members)
    out.append(_block(_END, 0x4000, b""))
    return b"".join(out)
