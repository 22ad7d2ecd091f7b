"""Check an MP4/MOV file's sample tables against its own size before FFmpeg sees it.

FFmpeg's MP4 demuxer allocates its sample tables from the entry counts in the box headers
before it reads the entries, so a 1.4 KB file whose `stsz` claims 500 million samples makes it
allocate gigabytes. Here every table box (`stsz`, `stz2`, `stts`, `ctts`, `stsc`, `stco`,
`co64`, `stss`, `elst`, `trun`) is checked first: its entries must fit inside the box, and
no track may declare more samples than the file has bytes. Boxes are walked with an explicit
stack (no recursion on input structure) and a bounded count, reading only headers and
counts, never the media.

We write this ourselves because no maintained Python MP4 parser checks declared counts
without first building the tables it is told about (pymp4 and construct-based parsers
allocate from the counts too).
"""

from __future__ import annotations

import struct
from typing import Protocol

_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf",
                         b"mvex", b"moof", b"traf", b"udta"})
# box type -> bytes per entry after (version/flags, entry_count); None: computed per box
_TABLES: dict[bytes, int | None] = {
    b"stts": 8, b"ctts": 8, b"stsc": 12, b"stco": 4, b"co64": 8, b"stss": 4,
    b"stsz": None, b"stz2": None, b"elst": None, b"trun": None,
}
MAX_BOXES = 100_000
_HEAD = struct.Struct(">I4s")


class _Source(Protocol):
    def seek(self, pos: int, whence: int = ..., /) -> int: ...

    def read(self, size: int = ..., /) -> bytes: ...


class BadSampleTable(ValueError):
    """A sample table declares more than the file can hold; `reason` says which and how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def looks_like_mp4(head: bytes) -> bool:
    return len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide",
                                            b"skip", b"moof", b"styp")


def _trun_entry_bytes(flags: int) -> tuple[int, int]:
    """(bytes per sample entry, bytes of optional header fields) of a `trun` box."""
    header = (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    entry = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    return entry, header


def check_sample_tables(f: _Source, size: int) -> None:
    """Raise `BadSampleTable` when a table box of the MP4 in `f` (`size` bytes) lies."""
    stack = [(0, size)]
    boxes = 0
    while stack:
        pos, end = stack.pop()
        while pos + 8 <= end:
            boxes += 1
            if boxes > MAX_BOXES:
                raise BadSampleTable(f"more than {MAX_BOXES} boxes")
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return
            box_size, kind = _HEAD.unpack_from(head)
            header = 8
            if box_size == 1:
                if len(head) < 16:
                    return
                box_size = struct.unpack_from(">Q", head, 8)[0]
                header = 16
            elif box_size == 0:
                box_size = end - pos
            if box_size < header or pos + box_size > end:
                return  # a damaged box: FFmpeg stops there too, without trusting a count
            if kind in _CONTAINERS:
                stack.append((pos + box_size, end))
                pos, end = pos + header, pos + box_size
                continue
            if kind in _TABLES:
                f.seek(pos + header)
                _check_table(kind, f.read(min(box_size - header, 24)), box_size - header, size)
            pos += box_size


def _check_table(kind: bytes, head: bytes, payload: int, file_size: int) -> None:
    name = kind.decode("latin-1")
    if len(head) < 8:
        raise BadSampleTable(f"{name} box too short for its header")
    version, flags = head[0], int.from_bytes(head[1:4], "big")
    if kind == b"stsz":
        if len(head) < 12:
            raise BadSampleTable("stsz box too short for its header")
        sample_size, count = struct.unpack_from(">II", head, 4)
        need, fixed = (0, 12) if sample_size else (4, 12)
        if sample_size and count > file_size // sample_size:
            raise BadSampleTable(
                f"stsz declares {count} samples of {sample_size} bytes in a {file_size}-byte file")
    elif kind == b"stz2":
        if len(head) < 12:
            raise BadSampleTable("stz2 box too short for its header")
        field_bits, count = head[7], struct.unpack_from(">I", head, 8)[0]
        need, fixed = 0, 12
        if count * field_bits > (payload - fixed) * 8:
            raise BadSampleTable(f"stz2 declares {count} entries in {payload} bytes")
    elif kind == b"elst":
        count = struct.unpack_from(">I", head, 4)[0]
        need, fixed = (20 if version == 1 else 12), 8
    elif kind == b"trun":
        count = struct.unpack_from(">I", head, 4)[0]
        need, extra = _trun_entry_bytes(flags)
        fixed = 8 + extra
    else:
        count = struct.unpack_from(">I", head, 4)[0]
        need, fixed = _TABLES[kind] or 0, 8
    if need and count > (payload - fixed) // need:
        raise BadSampleTable(
            f"{name} declares {count} entries of {need} bytes in a {payload}-byte box")
    if count > file_size:
        raise BadSampleTable(f"{name} declares {count} samples in a {file_size}-byte file")
