"""Archive members read and inflated by the hashing worker that hashes them.

The walk still lists every archive in the scan's process (member rows, identity, limits
and nesting are decided there, `triage.archives`), but for a zip or plain tar that sits on
storage it sends a member as a locator (where the member's bytes start and how they are
stored) instead of the bytes: the worker reopens the archive read-only, reads that one
member under the same bounds and hashes it. So member bytes are neither decompressed in the
scan's process nor pickled to a worker, and the in-flight byte budget only counts members
that still travel as bytes.

Kept in the scan's process, with the reasons:
- members of compressed streams (tar.gz, .bz2, .xz, .zst) and of 7z/RAR: reaching a member
  means decompressing the stream from its start, so one pass in the walk is cheaper than
  each worker decompressing everything before its member again;
- members of archives inside archives, disk images or documents: their bytes exist only in
  the parent's buffer of the outer member;
- zip members stored with bzip2, LZMA or Zstandard (zipfile inflates them without an output
  bound or not at all, so the walk reads them through its own bounded readers), symlink members (their bytes are the
  target the row records), sparse tar members, and any member whose first bytes say it may
  itself be a container (its members must be walked).

A locator is a 1-step tuple of plain values, so it pickles to any worker:
  (("zip", archive path, archive size, archive mtime_ns, local header offset, method,
    compressed size, size, CRC-32, flags, name),)
  (("tar", archive path, archive size, archive mtime_ns, data offset, size),)
The archive's size and mtime are those the walk saw; a worker that finds them changed
records an error instead of hashing other bytes under the member's row.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from typing import Any, BinaryIO

from hashing.hasher import HashOptions, hash_bytes
from hashing.types import HashRecord

MEMBER_KINDS = frozenset({"zip", "tar"})
CORRUPT_PREFIX = "corrupt member: "  # the walk's own wording for a member that cannot be read
CHANGED = "archive changed while being scanned; member not read"
_LOCAL = struct.Struct("<4s5H3L2H")  # a zip local file header
_CHUNK = 1024 * 1024


class MemberReadError(Exception):
    """A located member could not be read; `reason` is the row's reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_member_locator(locator: tuple[Any, ...] | None) -> bool:
    return bool(locator) and locator[0][0] in MEMBER_KINDS  # type: ignore[index]


def is_read_error(record: HashRecord) -> bool:
    """Whether a located member's record says its bytes could not be read (an archive
    problem for the attention list, as when the walk reads a member itself)."""
    return record.status == "error" and (record.error or "").startswith((CORRUPT_PREFIX,
                                                                         CHANGED))


def zip_locator(fs_path: str, stat: os.stat_result, info: zipfile.ZipInfo) -> tuple[Any, ...]:
    return (("zip", fs_path, stat.st_size, stat.st_mtime_ns, info.header_offset,
             info.compress_type, info.compress_size, info.file_size, info.CRC, info.flag_bits,
             info.filename),)


def tar_locator(fs_path: str, stat: os.stat_result, offset: int, size: int
                ) -> tuple[Any, ...]:
    return (("tar", fs_path, stat.st_size, stat.st_mtime_ns, offset, size),)


def read_member(locator: tuple[Any, ...]) -> bytes:
    """The member's bytes, at most its declared size; raises `MemberReadError`."""
    from triage.archives import _CORRUPT, _describe
    from triage.walk import open_evidence

    kind, fs_path, size, mtime_ns, *where = locator[0]
    try:
        with open_evidence(fs_path) as f:
            st = os.fstat(f.fileno())
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                raise MemberReadError(CHANGED)
            if kind == "tar":
                offset, n = where
                f.seek(offset)
                data = f.read(n)
                if len(data) != n:
                    raise EOFError
                return data
            return _read_zip(f, *where)
    except MemberReadError:
        raise
    except _CORRUPT as exc:  # OSError included: the archive cannot be reopened or read
        raise MemberReadError(CORRUPT_PREFIX + _describe(exc)) from exc


def _read_zip(f: BinaryIO, header_offset: int, method: int, csize: int, usize: int,
              crc: int, flags: int, name: str) -> bytes:
    f.seek(header_offset)
    head = f.read(_LOCAL.size)
    if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("Bad magic number for file header")
    nlen, xlen = _LOCAL.unpack(head)[-2:]
    info = zipfile.ZipInfo(name)
    info.compress_type, info.compress_size, info.file_size = method, csize, usize
    info.CRC, info.flag_bits = crc, flags
    f.seek(header_offset + _LOCAL.size + nlen + xlen)
    # zipfile's own reader inflates and checks the CRC, never past the declared size
    with zipfile.ZipExtFile(f, "r", info) as stream:  # type: ignore[arg-type]
        buf = io.BytesIO()
        while chunk := stream.read(_CHUNK):
            buf.write(chunk)
        return buf.getvalue()


def hash_member(locator: tuple[Any, ...], path: str, opts: HashOptions, *, size: int | None,
                mtime: float | None) -> HashRecord:
    """Runs in hashing workers: read the located member and hash it as the walk's bytes
    would have been (`hash_bytes`), or an error record saying why it could not be read."""
    try:
        data = read_member(locator)
    except MemberReadError as exc:
        return HashRecord(path=path, status="error", error=exc.reason, reason=exc.reason)
    return hash_bytes(data, path, opts, size=size, mtime=mtime)
