"""Write Ex01 (EWF2, EnCase 7) images of given media bytes, for tests and benchmarks.

No Debian or PyPI tool writes Ex01: Debian's `ewfacquire` 20140813 accepts `-f encase7-v2`
but writes EnCase 6 (E01), and pyewf's writer is not built. This writer follows the public
format description (libyal's "Expert Witness Compression Format 2 (EWF2)" document) and
writes only what a reader needs; it is written here, not borrowed, because nothing else
exists. A segment file is a 32-byte file header and then sections laid end to end, each its
data (padded to 16 bytes) followed by a 64-byte descriptor that points back at the previous
descriptor, so a reader walks a segment from its end:

    header | device information | case data | sector data | sector table
           | [MD5 hash | SHA-1 hash] | next (more segments) or done (the last)

Device information and case data are zlib-compressed UTF-16 "serialized file objects"
(one object "main", a line of tab-separated tags, a line of values). Each chunk of
`sectors_per_chunk` sectors is stored zlib-compressed where that is smaller, else as is
followed by its Adler-32; chunks are 16-byte aligned; the sector table names each chunk's
offset, size and flags. Every descriptor, table header, table and hash carries the
Adler-32 the format asks for, and the last segment stores the media's MD5 and SHA-1 (or a
given wrong pair, to test verification).
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

SIGNATURE = b"EVF2\r\n\x81\x00"
HEADER_BYTES = 32
DESCRIPTOR_BYTES = 64
DEFLATE = 1

# section types (EWF2 document, "Section types")
DEVICE_INFORMATION = 0x01
CASE_DATA = 0x02
SECTOR_DATA = 0x03
SECTOR_TABLE = 0x04
MD5_HASH = 0x08
SHA1_HASH = 0x09
NEXT = 0x0D
DONE = 0x0F

# chunk data flags (EWF2 document, "Chunk data flags")
COMPRESSED = 0x1
CHECKSUMED = 0x2


def _le(value: int, n: int) -> bytes:
    return value.to_bytes(n, "little")


def _pad16(data: bytes) -> tuple[bytes, int]:
    pad = -len(data) % 16
    return data + b"\0" * pad, pad


def _object_string(tags: list[tuple[str, str]]) -> bytes:
    """One serialized file object "main": compressed UTF-16LE with a byte-order mark."""
    text = "1\nmain\n" + "\t".join(t for t, _ in tags) + "\n" + \
        "\t".join(v for _, v in tags) + "\n\n"
    return zlib.compress(b"\xff\xfe" + text.encode("utf-16-le"), 9)


class _Segment:
    """One segment file being written: sections appended with their back-pointing
    descriptors."""

    def __init__(self, path: Path, number: int, set_id: bytes) -> None:
        self.path = path
        self._fh = open(path, "wb")  # noqa: SIM115  # closed by close()
        self._fh.write(SIGNATURE + bytes([2, 1]) + _le(DEFLATE, 2) + _le(number, 4) + set_id)
        self.pos = HEADER_BYTES
        self._previous = 0  # offset of the previous descriptor; 0 before the first section

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self.pos += len(data)

    def close_section(self, kind: int, data_size: int, padding: int) -> None:
        """The descriptor ending a section whose `data_size` bytes (padding included) were
        just written."""
        head = _le(kind, 4) + _le(0, 4) + _le(self._previous, 8) + _le(data_size, 8) + \
            _le(DESCRIPTOR_BYTES, 4) + _le(padding, 4) + b"\0" * 16 + b"\0" * 12
        self._previous = self.pos
        self.write(head + _le(zlib.adler32(head), 4))

    def section(self, kind: int, data: bytes) -> None:
        padded, pad = _pad16(data)
        self.write(padded)
        self.close_section(kind, len(padded), pad)

    def close(self) -> None:
        self._fh.close()


def write_ex01(media: bytes, target: Path, *, sectors_per_chunk: int = 64,
               bytes_per_sector: int = 512, chunks_per_segment: int | None = None,
               compress: str = "auto", stored_hashes: tuple[str, str] | None = None,
               store_hashes: bool = True, acquired: int = 1_609_459_200) -> list[Path]:
    """Write `media` as `target.Ex01` (and `.Ex02`, ... when `chunks_per_segment` splits it);
    returns the segment paths in order.

    `compress` is "auto" (a chunk is stored compressed where zlib makes it smaller, as
    EnCase does), "always" or "never". The last segment stores the media's MD5 and SHA-1
    unless `store_hashes` is False, or `stored_hashes` (hex MD5, hex SHA-1) instead.
    `acquired` (seconds since 1970) is the acquisition time, fixed so a fixture is the same
    bytes every time. The media must be a whole number of sectors.
    """
    if len(media) % bytes_per_sector or not media:
        raise ValueError("media must be a non-empty whole number of sectors")
    chunk_bytes = sectors_per_chunk * bytes_per_sector
    n_chunks = -(-len(media) // chunk_bytes)
    per_segment = chunks_per_segment or n_chunks
    n_segments = -(-n_chunks // per_segment)
    set_id = hashlib.md5(media[:4096] + target.name.encode()).digest()  # stable per input
    stamp = str(acquired)
    device = _object_string([
        ("sn", "SYNTH-0001"), ("md", "synthetic disk"), ("lb", ""),
        ("ts", str(len(media) // bytes_per_sector)), ("hs", ""), ("dc", ""), ("dt", "f"),
        ("pid", ""), ("rs", ""), ("ls", ""), ("bp", str(bytes_per_sector)), ("ph", "1")])
    case = _object_string([
        ("nm", "generated fixture"), ("cn", "case-1"), ("en", "ev-1"), ("ex", "examiner"),
        ("nt", "synthetic_fixtures.ewf2"), ("av", "osec-triage"), ("os", "Linux"),
        ("tt", stamp), ("at", stamp), ("tb", str(n_chunks)), ("cp", str(DEFLATE)),
        ("sb", str(sectors_per_chunk)), ("gr", "1"), ("wb", "")])
    paths = []
    for s in range(n_segments):
        path = target.parent / f"{target.name}.Ex{s + 1:02d}"
        seg = _Segment(path, s + 1, set_id)
        seg.section(DEVICE_INFORMATION, device)
        seg.section(CASE_DATA, case)
        first = s * per_segment
        start = seg.pos
        entries = []
        for c in range(first, min(first + per_segment, n_chunks)):
            entries.append(_write_chunk(seg, media[c * chunk_bytes:(c + 1) * chunk_bytes],
                                        compress))
        tail = -seg.pos % 16
        seg.write(b"\0" * tail)
        seg.close_section(SECTOR_DATA, seg.pos - start, tail)
        head = _le(first, 8) + _le(len(entries), 4) + _le(0, 4)
        body = b"".join(entries)
        seg.section(SECTOR_TABLE, head + _le(zlib.adler32(head), 4) + b"\0" * 12 + body +
                    _le(zlib.adler32(body), 4) + b"\0" * 12)
        last = s == n_segments - 1
        if last and (store_hashes or stored_hashes):
            md5, sha1 = stored_hashes or (hashlib.md5(media).hexdigest(),
                                          hashlib.sha1(media).hexdigest())
            for kind, digest in ((MD5_HASH, bytes.fromhex(md5)), (SHA1_HASH, bytes.fromhex(sha1))):
                seg.section(kind, digest + _le(zlib.adler32(digest), 4))
        seg.close_section(DONE if last else NEXT, 0, 0)
        seg.close()
        paths.append(path)
    return paths


def _write_chunk(seg: _Segment, chunk: bytes, compress: str) -> bytes:
    """Write one chunk 16-byte aligned; returns its sector table entry."""
    packed = zlib.compress(chunk, 6)
    if compress == "always" or (compress == "auto" and len(packed) < len(chunk)):
        stored, flags = packed, COMPRESSED
    else:
        stored, flags = chunk + _le(zlib.adler32(chunk), 4), CHECKSUMED
    seg.write(b"\0" * (-seg.pos % 16))
    entry = _le(seg.pos, 8) + _le(len(stored), 4) + _le(flags, 4)
    seg.write(stored)
    return entry
