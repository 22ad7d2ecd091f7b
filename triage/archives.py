"""Read archives in memory, never on disk: zip, tar, and gzip/bzip2/xz/zstd streams (tarred or
not).

The archive is read from a read-only file object (or bytes, when nested); members become
`WalkItem` rows labelled `outer.zip!/member`. A member name is only ever a label: `../../x`
or `/etc/passwd` is recorded, flagged, and never joined to a filesystem path, and nothing is
extracted. A member's identity is its location: the archive's location plus a segment of
the archive's format and the member's index in it (`triage.identity`), so a member named
`inner.zip!/y.txt` or a repeated name never shares a row with another; repeated names also
get distinct labels (`x (duplicate 2)`) so that people can tell them apart.

Hostile archives are the norm in evidence, so every read is bounded:
- declared sizes are checked first (zip central directory, tar headers), then every byte
  that comes out of a decompressor is counted as it is read, in chunks, so a lying header
  cannot make us allocate more than the limits allow;
- a member is materialised as bytes only when it is at most `max_member_bytes`; a larger
  one (declared, or found while reading) is an error row on the attention list;
- a sparse tar member's holes count as output like any other byte;
- output beyond `max_expansion_ratio` times the archive's own size, or expansion (output
  beyond its own size, summed over nested archives) beyond `max_archive_total_bytes`, is
  refused: a zip member whose declared size would cross a limit becomes an error row and
  the other members are still read (a bomb must not hide its neighbours); a stream that
  crosses a limit while being read stops with an error row on the root label `outer.zip!/`;
- nesting stops at `max_archive_depth`; a zip whose central directory is larger than
  `max_member_bytes` or lists more than `max_members` entries is not parsed at all.

Problems with the archive as a whole (corrupt, truncated, limits) are rows on the root
label `outer.zip!/`, marked `archive_error`; a truncated zip or compressed tar still yields
the members before the damage.

The standard library's `zipfile`, `tarfile`, `gzip`, `bz2` and `lzma` (and `backports.zstd`,
3.14's `compression.zstd`) do the parsing; this module only adds the bounds. Places that need
care beyond them: `zipfile` decompresses bzip2 members without an output bound (a few KiB can
expand to GiB in one call) and Zstandard ones (method 93) not at all, so those are read
through `bz2.BZ2File` / `ZstdFile` over the raw member bytes; `tarfile` ends iteration silently
on a truncated or garbled header, so the block where it stopped is checked; and a zip
without its central directory is read from its local headers.
"""

from __future__ import annotations

import bz2
import calendar
import copy
import gzip
import io
import lzma
import os
import posixpath
import stat
import struct
import tarfile
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Protocol

from backports import zstd

from hashing.errors import TriageError
from hashing.sniff import SNIFF_BYTES, sniff
from triage.archive_members import tar_locator, zip_locator
from triage.identity import WHOLE, Location, member_location
from triage.limits import RATIO_GRACE_BYTES, WalkItem, WalkLimits, format_bytes

# Decompressed bytes are pulled in chunks of this size, so one read never holds more.
_CHUNK = 1024 * 1024
# Members of a zip or plain tar on storage are read by the hashing worker (see
# `triage.archive_members` for which and why); False reads every member here (tests compare).
READ_IN_WORKERS = True

_FORMATS = {
    "application/zip": "zip",
    "application/x-tar": "tar",
    "application/gzip": "gzip",
    "application/x-bzip2": "bzip2",
    "application/x-xz": "xz",
    "application/x-7z-compressed": "7z",
    "application/vnd.rar": "rar",
    "application/zstd": "zstd",
}

_STREAM_OPENERS: dict[str, Callable[[IO[bytes]], io.BufferedIOBase]] = {
    "gzip": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
    "bzip2": lambda f: bz2.BZ2File(f, mode="rb"),
    "xz": lambda f: lzma.LZMAFile(f, mode="rb"),
    # backports.zstd is Python 3.14's compression.zstd for this Python (and what py7zr
    # reads zstd with): its reader, like the three above, decompresses in bounded steps
    "zstd": lambda f: zstd.ZstdFile(f, mode="rb"),
}
_STREAM_SUFFIXES = (".gz", ".gzip", ".z", ".bz2", ".bzip2", ".xz", ".lzma", ".zst", ".zstd")
# Zip methods zipfile cannot decompress with a bound on its output (bzip2) or not at all
# before Python 3.14 (Zstandard, method 93, APPNOTE 4.4.5): their raw bytes are read as
# stored and decompressed here, in bounded steps, and the CRC checked after.
ZIP_ZSTANDARD = 93
_ZIP_RAW_OPENERS: dict[int, Callable[[IO[bytes]], io.BufferedIOBase]] = {
    zipfile.ZIP_BZIP2: _STREAM_OPENERS["bzip2"],
    ZIP_ZSTANDARD: _STREAM_OPENERS["zstd"],
}

# Everything a damaged archive can raise out of the standard library readers.
_CORRUPT = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    OSError,  # gzip.BadGzipFile, short reads
    zlib.error,
    lzma.LZMAError,
    zstd.ZstdError,
    ValueError,
    NotImplementedError,  # unknown zip compression method
    UnicodeDecodeError,
    struct.error,
)


class ArchiveLimitError(TriageError):
    """An archive crossed one of the walk limits; `reason` goes into its root row."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"{label}: {reason}")
        self.label = label
        self.reason = reason


def archive_format(head: bytes) -> str | None:
    """Container format named by the first bytes ("zip", "tar", "gzip", "7z", "pdf", ...), or None.

    Uses the shared magic-byte table in `hashing.sniff`, plus a stricter bzip2 check: "BZh"
    alone starts ordinary text too often, so the block magic after it must follow.
    """
    kind = sniff(head)
    if kind.family != "archive" or kind.media_type is None:
        # documents (PDF, OLE) are containers of pictures, read like archives
        from triage.documents import document_format

        return document_format(head)
    fmt = _FORMATS.get(kind.media_type)
    if fmt == "bzip2" and not (
        len(head) >= 10 and head[3:4] in b"123456789" and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90")
    ):
        return None
    return fmt


@dataclass(slots=True)
class _Total:
    """Expansion summed over an outer archive and everything nested in it."""

    expanded: int = 0


@dataclass(slots=True)
class _Budget:
    """Counts one archive's decompressed output against the ratio and total limits.

    Expansion is output beyond the archive's own size, so stored zips and plain tars cost
    nothing however large they are, while a bomb's output is charged almost in full.
    """

    label: str
    limits: WalkLimits
    compressed: int
    total: _Total
    produced: int = 0
    excess: int = 0

    def charge(self, n: int) -> None:
        """Count `n` more output bytes; raise `ArchiveLimitError` once a limit is crossed."""
        self.produced, self.total.expanded = self._after(n)
        self.excess = self._excess(self.produced)
        self._check(self.produced, self.total.expanded)

    def check_ahead(self, n: int) -> None:
        """Raise now if `n` more output bytes (a declared member size) would cross a limit."""
        self._check(*self._after(n))

    def _excess(self, produced: int) -> int:
        return max(0, produced - self.compressed)

    def _after(self, n: int) -> tuple[int, int]:
        produced = self.produced + n
        return produced, self.total.expanded + self._excess(produced) - self.excess

    def _check(self, produced: int, expanded: int) -> None:
        lim = self.limits
        if expanded > lim.max_archive_total_bytes:
            raise ArchiveLimitError(
                self.label,
                f"archive expansion exceeds the {format_bytes(lim.max_archive_total_bytes)} limit",
            )
        ratio = produced / max(self.compressed, 1)
        if produced > RATIO_GRACE_BYTES and ratio > lim.max_expansion_ratio:
            raise ArchiveLimitError(
                self.label,
                f"expansion ratio {ratio:.0f} exceeds {lim.max_expansion_ratio:g}",
            )


class _Reader(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Counted(io.RawIOBase):
    """A read-only view of a decompressed stream that charges every byte to a budget.

    It also keeps the last chunks it returned, so the tar reader can look at the block
    where `tarfile` stopped (tarfile ends iteration silently on a bad header).
    """

    def __init__(self, raw: io.BufferedIOBase, budget: _Budget) -> None:
        self._raw = raw
        self._budget = budget
        self.pos = 0
        # (start offset, bytes) of the latest reads; tarfile's stream buffer is one chunk,
        # so the block it stopped at lies within the last two
        self._recent: deque[tuple[int, bytes]] = deque(maxlen=3)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > _CHUNK:
            size = _CHUNK  # never one unbounded read: callers loop until b""
        # read1 returns what one step of decompression gave; read() would keep going and a
        # truncated stream's EOFError would discard the good bytes already decompressed
        data = self._raw.read1(size)
        self._budget.charge(len(data))
        if data:
            self._recent.append((self.pos, data))
        self.pos += len(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def block_at(self, offset: int, size: int) -> bytes | None:
        """Bytes at absolute `offset` if still kept (shorter at end of stream), else None."""
        if not self._recent:
            return b"" if offset >= self.pos else None
        start = self._recent[0][0]
        if offset < start:
            return None
        kept = b"".join(chunk for _, chunk in self._recent)
        return kept[offset - start : offset - start + size]


class _MemberTooLarge(Exception):
    """A member produced more bytes than it may (the member limit or its declared size)."""


def _read_bounded(stream: _Reader, budget: _Budget, limit: int, charge: bool) -> bytes:
    """Read a member in chunks, raising `_MemberTooLarge` past `limit` bytes.

    The chunks go into one growing buffer whose bytes are handed out without a copy, so a
    256 MiB member costs 256 MiB, not twice that while a list of chunks is joined.
    """
    buf = io.BytesIO()
    got = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return buf.getvalue()
        got += len(chunk)
        if charge:
            budget.charge(len(chunk))
        if got > limit:
            raise _MemberTooLarge
        buf.write(chunk)


_ESCAPE_NOTE = "path escapes archive root (label only)"


def _escapes(name: str) -> bool:
    """True when a member name would leave the archive root if it were ever a path."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return True
    return ".." in norm.split("/")


def _is_text(name: str) -> bool:
    """False for a name holding surrogate escapes of bytes that were not valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError) and not str(exc):
        return "unexpected end of data"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(slots=True)
class _Archive:
    """One archive being read: where it sits, its budget, and the member labels given out.

    Every member row is made here, so the member limit, the escape note, member locations
    and distinct labels hold for every format. The format's reader sets `index` to the
    member's position in the archive (its entry in the zip central directory, its header
    in the tar stream, a PDF object's number) before making the member's row; a row whose
    index was already given out (a reader that sets none, or several rows for one entry)
    gets the next free one, so two rows never share a location.
    """

    label: str
    depth: int
    budget: _Budget
    fmt: str
    location: Location
    count: int = 0
    index: int = 0
    labels: set[str] = field(default_factory=set)
    used: set[int] = field(default_factory=set)  # member indices given out
    # an archive file on storage (its path and what fstat said): members may then be read
    # by the worker that hashes them (`triage.archive_members`)
    on_storage: tuple[str, os.stat_result] | None = None

    @property
    def limits(self) -> WalkLimits:
        return self.budget.limits

    def root_row(self, status: str, reason: str, archive_error: bool) -> WalkItem:
        """A row about the archive as a whole, on its root label `outer.zip!/`."""
        return WalkItem(
            path=f"{self.label}!/",
            kind="archive_member",
            size=None,
            mtime=None,
            status=status,  # type: ignore[arg-type]
            reason=reason,
            archive_error=archive_error,
            location=member_location(self.location, self.fmt, WHOLE),
        )

    def row(
        self,
        name: str,
        size: int | None,
        mtime: float | None,
        status: str = "pending",
        reason: str | None = None,
        *,
        data: bytes | None = None,
        link_target: str | None = None,
        archive_error: bool = False,
        locator: tuple[Any, ...] | None = None,
    ) -> WalkItem:
        self.count += 1
        if self.count > self.limits.max_members:
            raise ArchiveLimitError(
                self.label, f"more than {self.limits.max_members} members; the rest were not read"
            )
        notes = [reason] if reason else []
        if _escapes(name):
            notes.append(_ESCAPE_NOTE)
        if not name.isascii() and not _is_text(name):
            notes.append("member name is not valid UTF-8 (recorded as bytes)")
        path = base = f"{self.label}!/{name}"
        occurrence = 1
        while path in self.labels or path == f"{self.label}!/":
            occurrence += 1
            path = f"{base} (duplicate {occurrence})"
        if occurrence > 1:
            notes.append(f"duplicate member name (occurrence {occurrence})")
        self.labels.add(path)
        return WalkItem(
            path=path,
            kind="archive_member",
            size=size,
            mtime=mtime,
            data=data,
            status=status,  # type: ignore[arg-type]
            reason="; ".join(notes) or None,
            link_target=link_target,
            archive_error=archive_error,
            location=member_location(self.location, self.fmt, self._next_index()),
            locator=locator,
        )

    def _next_index(self) -> int:
        index = self.index if self.index not in self.used else max(self.used) + 1
        self.used.add(index)
        return index

    def member(self, name: str, data: bytes, mtime: float | None) -> Iterator[WalkItem]:
        """The row of a readable member, then the rows of the archive it is, if it is one."""
        from triage.containers import container_rows  # containers nest each other

        item = self.row(name, len(data), mtime, data=data)
        yield item
        yield from container_rows(io.BytesIO(data), item.path, len(data), self.limits,
                                  self.depth + 1, head=data[:SNIFF_BYTES],
                                  total=self.budget.total, location=item.location)

    def too_large(self, name: str, size: int | None, mtime: float | None) -> WalkItem:
        """A member over the member limit: not read, so it must be looked at (attention)."""
        limit = format_bytes(self.limits.max_member_bytes)
        declared = f" (declares {size} bytes)" if size is not None else ""
        return self.row(
            name, size, mtime, "error", f"member exceeds the {limit} member limit{declared}; "
            "not read", archive_error=True,
        )


def _may_hold_items(head: bytes, size: int) -> bool:
    """Whether a member's first bytes say it may be a container (its rows are walked here,
    so its bytes are read here): the test `triage.containers.container_kind` starts with."""
    from triage.disks import may_be_image

    return archive_format(head) is not None or (
        may_be_image(head, size) and sniff(head).family == "other")


def iter_archive(
    source: BinaryIO,
    label: str,
    size: int,
    limits: WalkLimits,
    depth: int = 1,
    total: _Total | None = None,
    *,
    location: Location,
    fs_path: str | None = None,
) -> Iterator[WalkItem]:
    """Yield the member rows of the archive in `source` (seekable), labelled under `label`.

    `size` is the archive's own size (the denominator of the expansion ratio) and `depth`
    its nesting level, 1 for an archive on disk; `location` is the archive's own location,
    which its members' locations extend; `fs_path` is the path of an archive file the walk
    opened (`source`), whose members a worker may then reopen. Nothing is yielded when
    `source` is not an archive. Never raises for bad data: problems become rows.
    """
    source.seek(0)
    fmt = archive_format(source.read(SNIFF_BYTES))
    source.seek(0)
    if fmt is None:
        return
    budget = _Budget(label, limits, size, total if total is not None else _Total())
    arc = _Archive(label, depth, budget, fmt, location)
    if fs_path is not None and depth == 1 and READ_IN_WORKERS:
        arc.on_storage = (fs_path, os.fstat(source.fileno()))
    if depth > limits.max_archive_depth:
        reason = f"archive depth limit {limits.max_archive_depth} reached; members not read"
        yield arc.root_row("skipped", reason, True)
        return
    try:
        if fmt == "zip":
            yield from _zip_members(source, arc)
        elif fmt == "tar":
            yield from _tar_members(source, arc)
        elif fmt in ("7z", "rar"):
            # imported here: these modules build on this one's member rows and budgets
            from triage.archives_7z_rar import libarchive_members

            yield from libarchive_members(source, fmt, arc)
        elif fmt in ("pdf", "ole"):
            from triage.documents import document_members

            yield from document_members(source, fmt, arc)
        else:
            yield from _stream_members(source, fmt, arc)
    except ArchiveLimitError as exc:
        yield arc.root_row("error", exc.reason, True)
    except _CORRUPT as exc:
        yield arc.root_row("error", f"corrupt archive: {_describe(exc)}", True)


# --- zip -------------------------------------------------------------------------------


def _zip_mtime(info: zipfile.ZipInfo) -> float | None:
    # zip stores local wall-clock time without a zone; it is recorded as if it were UTC
    try:
        return float(calendar.timegm((*info.date_time, 0, 0, 0)))
    except (ValueError, OverflowError, TypeError):
        return None


# Fixed parts of the zip records read directly: end of central directory (EOCD), its
# zip64 locator and record, and a local file header.
_EOCD = struct.Struct("<4s4H2LH")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_EOCD64_LOCATOR_SIZE = 20
_LOCAL = struct.Struct("<4s5H3L2H")


def _zip_directory_guard(source: BinaryIO, arc: _Archive) -> None:
    """Refuse a central directory that would take unbounded memory to parse.

    `zipfile` reads the whole central directory and builds an object per entry before we
    see any; a few hundred MiB of tiny entries would cost GiB. Its size comes from the end
    record, and the entries are counted by their signatures (an upper bound: a name may
    contain the signature too).
    """
    limits = arc.limits
    size = arc.budget.compressed
    tail_len = min(size, _EOCD.size + 0xFFFF)
    source.seek(size - tail_len)
    tail = source.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + _EOCD.size > len(tail):
        return  # no end record: zipfile reports the archive as corrupt
    entries, cd_size = _EOCD.unpack_from(tail, pos)[4:6]
    cd_end = size - tail_len + pos
    loc = pos - _EOCD64_LOCATOR_SIZE
    if loc >= 0 and tail[loc : loc + 4] == b"PK\x06\x07":
        cd_end = size - tail_len + loc - _EOCD64.size
        source.seek(max(cd_end, 0))
        rec = source.read(_EOCD64.size)
        if len(rec) == _EOCD64.size and rec[:4] == b"PK\x06\x06":
            entries, cd_size = _EOCD64.unpack(rec)[7:9]
    if cd_size > limits.max_member_bytes:
        raise ArchiveLimitError(
            arc.label,
            f"zip central directory of {cd_size} bytes exceeds the "
            f"{format_bytes(limits.max_member_bytes)} member limit; not read",
        )
    count = entries
    if entries <= limits.max_members:
        count = 0
        source.seek(max(cd_end - cd_size, 0))
        left = cd_size
        carry = b""
        while left > 0 and count <= limits.max_members:
            chunk = source.read(min(left, _CHUNK))
            if not chunk:
                break
            left -= len(chunk)
            block = carry + chunk
            count += block.count(b"PK\x01\x02")
            carry = block[-3:]
            count -= carry.count(b"PK\x01\x02")  # never counted twice across chunks
    if count > limits.max_members:
        raise ArchiveLimitError(
            arc.label, f"zip declares more than {limits.max_members} members; not read"
        )
    source.seek(0)


def _zip_members(source: BinaryIO, arc: _Archive) -> Iterator[WalkItem]:
    _zip_directory_guard(source, arc)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
        # no usable central directory (typically a truncated file, or one name that is not
        # UTF-8 under the UTF-8 flag, which zipfile cannot decode): what the local headers
        # still describe is read, then the archive is reported corrupt
        yield from _zip_recovered(source, arc, _describe(exc))
        return
    with zf:
        for arc.index, info in enumerate(zf.infolist()):
            if not info.is_dir():
                yield from _zip_member(zf.open, info, arc)


def _dos_date_time(date: int, time: int) -> tuple[int, int, int, int, int, int]:
    return (
        (date >> 9) + 1980,
        (date >> 5) & 0xF,
        date & 0x1F,
        time >> 11,
        (time >> 5) & 0x3F,
        (time & 0x1F) * 2,
    )


def _zip_recovered(source: BinaryIO, arc: _Archive, why: str) -> Iterator[WalkItem]:
    """Members of a zip without a central directory, from its local headers in order.

    Each local header carries name, method, CRC and sizes, so members before the damage
    can still be read (with zipfile's own decompressing reader over the bytes in place).
    Recovery stops at the first record that is not a local header, or whose sizes are
    only in a trailing data descriptor; then the archive's error row says what happened.
    """
    pos = 0
    recovered = 0
    stop = ""
    arc.index = -1
    arc.on_storage = None  # a damaged zip's members are read here, from their local headers
    while True:
        arc.index += 1
        source.seek(pos)
        head = source.read(_LOCAL.size)
        if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
            break
        fields = _LOCAL.unpack(head)
        flags, method, dostime, dosdate, crc, csize, usize, nlen, xlen = fields[2:]
        raw_name = source.read(nlen)
        data_at = pos + _LOCAL.size + nlen + xlen
        if flags & 0x8 or csize == 0xFFFFFFFF:
            stop = "; sizes of the next member are not in its local header"
            break
        pos = data_at + csize
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "surrogateescape")
        if name.endswith("/"):
            continue
        recovered += 1
        info = zipfile.ZipInfo(name, _dos_date_time(dosdate, dostime))
        info.flag_bits = flags
        info.compress_type = method
        info.CRC = crc
        info.compress_size = csize
        info.file_size = usize

        def open_in_place(i: zipfile.ZipInfo, at: int = data_at) -> BinaryIO:
            source.seek(at)
            return zipfile.ZipExtFile(source, "r", i)  # type: ignore[return-value]

        yield from _zip_member(open_in_place, info, arc)
    raise zipfile.BadZipFile(f"{why}; {recovered} members read from local headers{stop}")


def _zip_member(
    open_member: Callable[[zipfile.ZipInfo], BinaryIO | IO[bytes]],
    info: zipfile.ZipInfo,
    arc: _Archive,
) -> Iterator[WalkItem]:
    name, size, mtime = info.filename, info.file_size, _zip_mtime(info)
    if info.flag_bits & 0x1:
        yield arc.row(name, size, mtime, "error", "encrypted: not examined", archive_error=True)
        return
    if size > arc.limits.max_member_bytes:
        yield arc.too_large(name, size, mtime)
        return
    try:
        # declared sizes first: a bomb member is refused before a byte is inflated, and the
        # archive's other members are still read (a bomb must not hide what sits next to it)
        arc.budget.check_ahead(size)
    except ArchiveLimitError as exc:
        yield arc.row(name, size, mtime, "error", exc.reason, archive_error=True)
        return
    if (located := _zip_located(open_member, info, arc)) is not None:
        yield located
        return
    try:
        # any byte past the declared size proves a lying header; file_size <= the member limit
        data = _read_zip_data(open_member, info, arc.budget, size)
    except _MemberTooLarge:
        reason = "member larger than its declared size (lying header)"
        yield arc.row(name, size, mtime, "error", reason, archive_error=True)
        return
    except ArchiveLimitError:
        raise
    except _CORRUPT as exc:
        reason = f"corrupt member: {_describe(exc)}"
        yield arc.row(name, size, mtime, "error", reason, archive_error=True)
        return
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        target = data.decode("utf-8", "surrogateescape")
        yield arc.row(
            name, size, mtime, "skipped", "symlink member not followed", link_target=target
        )
        return
    yield from arc.member(name, data, mtime)


def _zip_located(
    open_member: Callable[[zipfile.ZipInfo], BinaryIO | IO[bytes]],
    info: zipfile.ZipInfo,
    arc: _Archive,
) -> WalkItem | None:
    """The row of a member its hashing worker will read, or None to read it here: only
    stored or deflated members (zipfile bounds their inflation) of a zip on storage that are
    not symlinks and whose first bytes are no container."""
    if arc.on_storage is None or info.compress_type not in (zipfile.ZIP_STORED,
                                                            zipfile.ZIP_DEFLATED):
        return None
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        return None
    try:
        with open_member(info) as stream:
            head = stream.read(SNIFF_BYTES)
    except _CORRUPT:
        return None  # read here, where the damage becomes the member's error row
    if _may_hold_items(head, info.file_size):
        return None
    # the worker reads no more than the declared size, so that is what it expands to
    arc.budget.charge(info.file_size)
    return arc.row(info.filename, info.file_size, _zip_mtime(info),
                   locator=zip_locator(*arc.on_storage, info))


def _read_zip_data(
    open_member: Callable[[zipfile.ZipInfo], BinaryIO | IO[bytes]],
    info: zipfile.ZipInfo,
    budget: _Budget,
    limit: int,
) -> bytes:
    opener = _ZIP_RAW_OPENERS.get(info.compress_type)
    if opener is None:
        with open_member(info) as stream:
            return _read_bounded(stream, budget, limit, charge=True)
    # read the raw bytes as "stored", decompress them with a bounded reader, then check the
    # CRC ourselves (see _ZIP_RAW_OPENERS)
    raw = copy.copy(info)
    raw.compress_type = zipfile.ZIP_STORED
    raw.file_size = info.compress_size
    del raw.CRC  # the stored view's CRC would be the compressed bytes'; checked below instead
    with open_member(raw) as stored, opener(stored) as stream:
        data = _read_bounded(stream, budget, limit, charge=True)
    if zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    return data


# --- tar -------------------------------------------------------------------------------


def _tar_members(stream: BinaryIO | _Counted, arc: _Archive) -> Iterator[WalkItem]:
    """Members of an uncompressed tar: a plain file is read with seeks (`r:`), so skipped
    members cost nothing; a decompressed `_Counted` stream strictly forward (`r|`)."""
    if isinstance(stream, _Counted):
        # reads of one chunk at a time keep the per-read overhead low on long skips
        tf = tarfile.open(fileobj=stream, mode="r|", bufsize=_CHUNK)  # type: ignore[call-overload]
    else:
        tf = tarfile.open(fileobj=stream, mode="r:")
    arc.index = -1
    while True:
        ti = tf.next()
        if ti is None:
            break
        arc.index += 1
        # tarfile keeps every header it has seen; we never look one up again
        tf.members.clear()  # type: ignore[attr-defined]  # a plain list, not in the stubs
        if not ti.isdir():
            yield from _tar_member(tf, ti, arc, isinstance(stream, _Counted))
    _check_tar_end(stream, tf.offset)


_TAR_SKIPS: tuple[tuple[Callable[[tarfile.TarInfo], bool], str], ...] = (
    (tarfile.TarInfo.issym, "symlink member not followed"),
    (tarfile.TarInfo.islnk, "hardlink member not followed"),
    (tarfile.TarInfo.ischr, "device member not read"),
    (tarfile.TarInfo.isblk, "device member not read"),
    (tarfile.TarInfo.isfifo, "fifo member not read"),
)


def _tar_member(
    tf: tarfile.TarFile, ti: tarfile.TarInfo, arc: _Archive, counted: bool
) -> Iterator[WalkItem]:
    name, size, mtime = ti.name, ti.size, float(ti.mtime)
    for test, reason in _TAR_SKIPS:
        if test(ti):
            target = ti.linkname if ti.issym() or ti.islnk() else None
            yield arc.row(name, size, mtime, "skipped", reason, link_target=target)
            return
    if not ti.isreg():
        yield arc.row(name, size, mtime, "skipped", f"unsupported tar member type {ti.type!r}")
    elif size > arc.limits.max_member_bytes:
        yield arc.too_large(name, size, mtime)
    else:
        # A sparse member's holes come out of tarfile without a byte read for them, so they
        # are checked ahead from the sparse map (a bomb member is refused, its neighbours
        # still read). Of a compressed tar the counted stream underneath charged the stored
        # bytes, so the holes are charged here; of a plain tar, every byte read out is.
        sparse: list[tuple[int, int]] | None = ti.sparse  # type: ignore[assignment]
        holes = size - sum(n for _, n in sparse) if sparse is not None else 0
        try:
            arc.budget.check_ahead(holes)
        except ArchiveLimitError as exc:
            yield arc.row(name, size, mtime, "error", exc.reason, archive_error=True)
            return
        if counted:
            arc.budget.charge(holes)
        if (located := _tar_located(tf, ti, arc, counted)) is not None:
            yield located
            return
        member = tf.extractfile(ti)
        assert member is not None  # isreg() members always have a data stream
        limit = arc.limits.max_member_bytes
        data = _read_bounded(member, arc.budget, limit, charge=not counted)
        yield from arc.member(name, data, mtime)


def _tar_located(tf: tarfile.TarFile, ti: tarfile.TarInfo, arc: _Archive,
                 counted: bool) -> WalkItem | None:
    """The row of a member of a plain tar on storage that its hashing worker will read
    (whole inside the file, not sparse, no container), or None to read it here."""
    if counted or arc.on_storage is None or ti.sparse is not None:
        return None
    fs_path, st = arc.on_storage
    if ti.offset_data + ti.size > st.st_size:
        return None  # truncated: read here, where the damage is reported as ever
    source = tf.fileobj
    assert source is not None
    source.seek(ti.offset_data)
    if _may_hold_items(source.read(SNIFF_BYTES), ti.size):
        return None
    arc.budget.charge(ti.size)
    return arc.row(ti.name, ti.size, float(ti.mtime),
                   locator=tar_locator(fs_path, st, ti.offset_data, ti.size))


def _check_tar_end(stream: BinaryIO | _Counted, offset: int) -> None:
    """Raise unless tarfile stopped at a real end-of-archive marker (a zero block)."""
    if isinstance(stream, _Counted):
        block = stream.block_at(offset, tarfile.BLOCKSIZE)
        if block is None:
            return  # stopped further back than we keep; tarfile's own checks must do
    else:
        stream.seek(offset)
        block = stream.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"truncated at offset {offset}")
    if block.count(0) != tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"invalid header at offset {offset}")


# --- gzip / bzip2 / xz streams ---------------------------------------------------------


def _stream_member_name(label: str) -> str:
    """Name of the single file inside a compressed stream: the archive's name less suffix."""
    base = posixpath.basename(label.replace("!/", "/")) or "data"
    lower = base.lower()
    if lower.endswith((".tgz", ".tzst")):
        return base[: base.rindex(".")] + ".tar"
    for suffix in _STREAM_SUFFIXES:
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return base


def _stream_members(source: BinaryIO, fmt: str, arc: _Archive) -> Iterator[WalkItem]:
    opener = _STREAM_OPENERS[fmt]
    with opener(source) as probe:
        head = probe.read(SNIFF_BYTES)
    source.seek(0)
    with opener(source) as raw:
        stream = _Counted(raw, arc.budget)
        if archive_format(head) == "tar":
            # the chain names both layers: member i of the tar that is the stream's content
            arc.location, arc.fmt = member_location(arc.location, fmt, 0), "tar"
            yield from _tar_members(stream, arc)
            return
        name = _stream_member_name(arc.label)
        try:
            data = _read_bounded(stream, arc.budget, arc.limits.max_member_bytes, charge=False)
        except _MemberTooLarge:
            yield arc.too_large(name, None, None)
            return
    yield from arc.member(name, data, None)
