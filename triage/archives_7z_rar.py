"""7z and RAR archives, read in memory through libarchive with the same bounds as zip and tar.

Why libarchive (`libarchive-c` over the system's libarchive13) and not py7zr + rarfile: one
maintained C library reads 7z (LZMA, LZMA2, PPMd, BCJ, deflate, bzip2) and both RAR
generations (RAR 4 and RAR 5) in process, streaming each member in blocks, so every byte
that comes out of a decompressor is counted before the next is produced. rarfile can only
read stored RAR members itself and runs an external `unrar`/`unar` binary for compressed ones
(not in Debian's main archive, and a subprocess per member); py7zr is pure Python and would be
a second code path for the same job. libarchive also names encrypted entries
(`archive_entry_is_encrypted`), which become attention rows instead of unreadable noise;
for RAR 5, which libarchive 3.6 reads without that flag, the headers are checked first
(`rar5_encryption`).

Bounds, as in `triage.archives`: a member's declared size is checked against the member,
ratio and total limits before a byte is decompressed (a bomb's neighbours are still read);
blocks are charged to the archive's budget as they arrive, so a header that lies about the
size stops at the limit; member rows go through the shared `_Archive` (member limit, labels,
escape notes, nested archives). Nothing is extracted: libarchive reads from the open,
read-only evidence handle or from the parent member's bytes.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import BinaryIO

import libarchive
import libarchive.ffi
from libarchive.entry import ArchiveEntry

from triage.archives import ArchiveLimitError, _Archive
from triage.limits import WalkItem

ENCRYPTED = "encrypted: not examined"

# libarchive format names; RAR 5 has its own reader, told apart by the signature's version byte.
_RAR5_MAGIC = b"Rar!\x1a\x07\x01\x00"
_BLOCK = 1024 * 1024

_entry_is_encrypted = libarchive.ffi.libarchive.archive_entry_is_encrypted
_entry_is_encrypted.argtypes = [ctypes.c_void_p]
_entry_is_encrypted.restype = ctypes.c_int


class _Source:
    """The read-only evidence handle (or member bytes) as libarchive's read/seek callbacks.

    `readinto` is all libarchive-c asks for; seeking lets the 7z reader jump to its header
    at the end instead of reading the archive twice.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._s = source

    def readinto(self, buf: bytearray | memoryview) -> int:
        # straight into libarchive's ctypes buffer: slice-assigning bytes into a ctypes
        # array goes item by item (about 80 ms per MiB)
        return self._s.readinto(buf)  # type: ignore[attr-defined]

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._s.seek(offset, whence)

    def tell(self) -> int:
        return self._s.tell()


def _format_name(fmt: str, head: bytes) -> str:
    if fmt == "7z":
        return "7zip"
    return "rar5" if head.startswith(_RAR5_MAGIC) else "rar"


def _is_encrypted_error(exc: BaseException) -> bool:
    # libarchive reports an encrypted 7z header or an unsupported RAR encryption only in words
    text = str(exc).lower()
    return "encrypt" in text or "passphrase" in text or "password" in text


def libarchive_members(source: BinaryIO, fmt: str, arc: _Archive) -> Iterator[WalkItem]:
    """Member rows of a 7z or RAR archive; problems with the whole archive raise (the caller
    turns `ArchiveLimitError` and corrupt-data errors into the root row)."""
    source.seek(0)
    head = source.read(8)
    encrypted: set[str] = set()
    if head.startswith(_RAR5_MAGIC):
        headers_encrypted, encrypted = rar5_encryption(source, arc.limits.max_members)
        if headers_encrypted:
            yield arc.root_row("error", f"{ENCRYPTED} (archive headers are encrypted)", True)
            return
    source.seek(0)
    try:
        with libarchive.stream_reader(_Source(source), format_name=_format_name(fmt, head),
                                      block_size=_BLOCK) as reader:
            for arc.index, entry in enumerate(reader):
                if entry.isdir:
                    continue
                yield from _member(entry, arc, encrypted)
    except libarchive.ArchiveError as exc:
        if _is_encrypted_error(exc):
            yield arc.root_row("error", f"{ENCRYPTED} (archive headers are encrypted)", True)
            return
        raise ValueError(_message(exc)) from None


def _member(entry: ArchiveEntry, arc: _Archive, encrypted: set[str]) -> Iterator[WalkItem]:
    size = entry.size  # from the header; None when the format does not say
    mtime = float(entry.mtime) if entry.mtime else None
    name = entry.pathname
    if name is None:
        # libarchive gives no name (and no data) for a RAR 4 name that repeats (a file version)
        yield arc.row("(unnamed member)", size, mtime, "error",
                      "member without a name (a repeated RAR name): not examined",
                      archive_error=True)
        return
    if entry.issym or entry.islnk:
        reason = "symlink member not followed" if entry.issym else "hardlink member not followed"
        yield arc.row(name, size, mtime, "skipped", reason, link_target=entry.linkpath)
        return
    if not entry.isreg:
        yield arc.row(name, size, mtime, "skipped", "special member not read")
        return
    if _entry_is_encrypted(entry._entry_p) or name in encrypted:
        yield arc.row(name, size, mtime, "error", ENCRYPTED, archive_error=True)
        return
    refused: WalkItem | None = None
    if size is not None and size > arc.limits.max_member_bytes:
        refused = arc.too_large(name, size, mtime)
    else:
        try:
            # declared sizes first: a bomb member is refused before a byte is kept
            arc.budget.check_ahead(size or 0)
        except ArchiveLimitError as exc:
            refused = arc.row(name, size, mtime, "error", exc.reason, archive_error=True)
    if refused is not None:
        yield refused
        _drain(entry, arc)
        return
    try:
        data = _read_blocks(entry, arc, size)
    except _Oversized as exc:
        yield arc.row(name, size, mtime, "error", str(exc), archive_error=True)
        _drain(entry, arc)
        return
    except libarchive.ArchiveError as exc:
        reason = ENCRYPTED if _is_encrypted_error(exc) else f"corrupt member: {_message(exc)}"
        # a fatal error also fails the next header read, which becomes the archive's root row
        yield arc.row(name, size, mtime, "error", reason, archive_error=True)
        return
    yield from arc.member(name, data, mtime)


class _Oversized(Exception):
    """A member produced more than its declared size or the member limit."""


def _blocks(entry: ArchiveEntry) -> Iterator[bytes]:
    """The member's data, one block at a time, through one reused buffer.

    `ArchiveEntry.get_blocks` copies its whole buffer (`buf.raw`) for every block, which for
    a 1 MiB buffer and small members costs more than the decompression."""
    buf = ctypes.create_string_buffer(_BLOCK)
    while True:
        n = libarchive.ffi.read_data(entry._archive_p, buf, _BLOCK)
        if n <= 0:
            return
        yield ctypes.string_at(buf, n)


def _read_blocks(entry: ArchiveEntry, arc: _Archive, size: int | None) -> bytes:
    limit = arc.limits.max_member_bytes if size is None else size
    chunks: list[bytes] = []
    got = 0
    for block in _blocks(entry):
        got += len(block)
        arc.budget.charge(len(block))
        if got > limit:
            raise _Oversized("member larger than its declared size (lying header)"
                             if size is not None else "member exceeds the member limit")
        chunks.append(block)
    return b"".join(chunks)


def _drain(entry: ArchiveEntry, arc: _Archive) -> None:
    """Decompress a refused member without keeping it, so the members after it are read.

    libarchive's own skip fails inside solid 7z blocks (3.6: "Truncated 7-Zip file body" on
    the next member), and in a solid block the bytes must be decompressed anyway. Draining is
    bounded by the total limit: past it the rest of the archive is not read, and says so.
    """
    left = arc.limits.max_archive_total_bytes
    for block in _blocks(entry):
        left -= len(block)
        if left < 0:
            raise ArchiveLimitError(arc.label, "a refused member would need decompressing "
                                    "beyond the archive total limit to reach the next; "
                                    "the rest were not read")


def _message(exc: libarchive.ArchiveError) -> str:
    """libarchive's own words, without the pointer and codes libarchive-c appends."""
    return getattr(exc, "msg", None) or "unreadable data (truncated or not this format)"


# --- RAR 5 encryption flags ------------------------------------------------------------
# libarchive 3.6 (Debian 12) reads RAR 5 without flagging encrypted entries: it returns their
# ciphertext as data, which would be hashed as if it had been examined. The flags are in the
# headers, so they are read here first. rarfile parses the same headers but holds every entry
# before returning (a hostile archive of 10^7 headers would cost GBs), hence this short
# walk over the block headers, which stops after `max_entries` file headers.
_RAR5_FILE, _RAR5_CRYPT_HEAD = 2, 4
_RAR5_EXTRA_CRYPT = 1


def _vint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(buf) and shift < 64:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad RAR 5 variable-length integer")


def rar5_encryption(source: BinaryIO, max_entries: int) -> tuple[bool, set[str]]:
    """(headers encrypted, names of encrypted files) of the RAR 5 archive in `source`.

    Damaged headers end the walk quietly: libarchive's read then reports the damage.
    """
    names: set[str] = set()
    pos = len(_RAR5_MAGIC)
    files = 0
    while files <= max_entries:
        source.seek(pos)
        pre = source.read(7)  # CRC-32 and at most 3 bytes of the header size
        if len(pre) < 5:
            break
        try:
            size, body_at = _vint(pre, 4)
        except ValueError:
            break
        if size <= 0 or size > 2 * 1024 * 1024:
            break
        source.seek(pos + body_at)
        head = source.read(size)
        if len(head) < size:
            break
        try:
            kind, p = _vint(head, 0)
            flags, p = _vint(head, p)
            extra = data = 0
            if flags & 0x0001:
                extra, p = _vint(head, p)
            if flags & 0x0002:
                data, p = _vint(head, p)
            if kind == _RAR5_CRYPT_HEAD:
                return True, names
            if kind == _RAR5_FILE:
                files += 1
                name = _rar5_name(head, p)
                if name is not None and extra and _has_crypt_record(head[size - extra :]):
                    names.add(name)
        except (ValueError, IndexError):
            break
        pos += body_at + size + data
    return False, names


def _rar5_name(head: bytes, p: int) -> str | None:
    file_flags, p = _vint(head, p)
    _, p = _vint(head, p)  # unpacked size
    _, p = _vint(head, p)  # attributes
    if file_flags & 0x0002:
        p += 4  # mtime
    if file_flags & 0x0004:
        p += 4  # data CRC-32
    _, p = _vint(head, p)  # compression information
    _, p = _vint(head, p)  # host OS
    length, p = _vint(head, p)
    raw = head[p : p + length]
    return raw.decode("utf-8", "surrogateescape") if len(raw) == length else None


def _has_crypt_record(extra: bytes) -> bool:
    p = 0
    while p < len(extra):
        size, q = _vint(extra, p)
        kind, _ = _vint(extra, q)
        if kind == _RAR5_EXTRA_CRYPT:
            return True
        p = q + size
    return False
