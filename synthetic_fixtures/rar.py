"""RAR 4 and RAR 5 archives written from the formats' own structures (stored members only).

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


# --- RAR 5 -----------------------------------------------------------------------------
# RAR 5 (the default since WinRAR 5) has its own container: variable-length integers
# ("vint", 7 bits a byte, low first), a CRC-32 per header over its size field and body.

MARKER5 = b"Rar!\x1a\x07\x01\x00"
_HEAD_MAIN5, _HEAD_FILE5, _HEAD_END5 = 1, 2, 5
_HFL_EXTRA, _HFL_DATA = 0x0001, 0x0002
_FFL_MTIME, _FFL_CRC = 0x0002, 0x0004
_HOST5_UNIX = 1
_EXTRA_CRYPT = 0x01


def _vint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _block5(head_type: int, flags: int, body: bytes, *, extra: bytes = b"",
            data_size: int | None = None) -> bytes:
    fields = _vint(head_type) + _vint(flags | (_HFL_EXTRA if extra else 0)
                                      | (_HFL_DATA if data_size is not None else 0))
    if extra:
        fields += _vint(len(extra))
    if data_size is not None:
        fields += _vint(data_size)
    fields += body + extra
    sized = _vint(len(fields)) + fields
    return struct.pack("<I", zlib.crc32(sized)) + sized


def _file_block5(m: RarMember) -> bytes:
    name = m.name.encode("utf-8")
    unp = len(m.data) if m.declared_size is None else m.declared_size
    body = (_vint(_FFL_MTIME | _FFL_CRC) + _vint(unp) + _vint(0o100644)
            + struct.pack("<II", 1_577_836_800, zlib.crc32(m.data))  # 2020-01-01, data CRC
            + _vint(0)  # compression: version 0, not solid, method 0 (store)
            + _vint(_HOST5_UNIX) + _vint(len(name)) + name)
    extra = b""
    if m.encrypted:
        # file encryption record: version 0 (AES-256), no flags, KDF count, salt, IV
        record = _vint(_EXTRA_CRYPT) + _vint(0) + _vint(0) + bytes([15]) + b"\x00" * 32
        extra = _vint(len(record)) + record
    return _block5(_HEAD_FILE5, 0, body, extra=extra, data_size=len(m.data)) + m.data


def rar5_stored(members: list[RarMember], *, encrypt_headers: bool = False) -> bytes:
    """A complete RAR 5 archive holding `members`, stored. With `encrypt_headers` it starts
    with an archive encryption header, as `rar -hp` writes (the rest is then unreadable
    without the password; here it stays plain, which a reader must not rely on)."""
    out = [MARKER5]
    if encrypt_headers:
        out.append(_block5(4, 0, _vint(0) + _vint(0) + bytes([15]) + b"\x00" * 16))
    out.append(_block5(_HEAD_MAIN5, 0, _vint(0)))
    out.extend(_file_block5(m) for m in members)
    out.append(_block5(_HEAD_END5, 0, _vint(0)))
    return b"".join(out)
