"""Read disk and volume images in place: raw/dd (and split `.001`), EWF (E01/Ex01), ISO 9660.

An image is recognised by its content, whatever its name (`image_kind`). Its partition table
(MBR, GPT) and file systems (FAT12/16/32, exFAT, NTFS, ext2/3/4, HFS+, ISO 9660) are walked
read-only through The Sleuth Kit (`pytsk3`), the library forensic tools in Python stand on;
APFS containers through libyal's `pyfsapfs` (`triage.disk_apfs`: TSK's APFS support is not
exposed by pytsk3); EWF images through libyal's `pyewf`, which also gives the acquisition
MD5/SHA-1 that `verify_ewf` checks. Nothing is extracted: every file inside becomes a `WalkItem` labelled
`laptop.E01!/p1/home/user/a.jpg` (partition, then file-system path) that carries its size,
times and inode from the file system, `deleted: true` for a deleted entry whose content the
metadata still points at, and a `locator`: the chain of steps (image file, file-system offset,
inode, ...) by which a hashing worker reopens that one file and streams it in chunks, so a
4 GiB file inside an image is never held in memory.

What cannot be examined is a row on the attention list, never silence: an encrypted volume
(BitLocker, LUKS, FileVault/CoreStorage, by their on-disk signatures: detecting them needs no
decryption library), a partition the table places outside the image, a partition with no file
system TSK knows, a directory loop, an unreadable range, a corrupt or truncated image. Limits
are the walk's: images nested in images or archives count against `max_archive_depth`,
directories against `max_dir_depth`, entries per image against `max_image_entries`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import pytsk3

from hashing.errors import TriageError
from hashing.hasher import HashOptions, hash_stream
from hashing.types import HashRecord
from triage.identity import WHOLE, Location, Segment
from triage.limits import WalkItem, WalkLimits, format_bytes
from triage.read_at_view import ReadAtView

__all__ = [
    "EWF_SIGNATURES",
    "EwfMedia",
    "Locator",
    "hash_located",
    "image_kind",
    "iter_image",
    "may_be_image",
    "read_at_of",
    "open_located",
    "verify_ewf",
]

# A locator is a tuple of steps, each a tuple of plain values so it pickles to any worker:
#   ("raw", (path, ...)) / ("ewf", (path, ...))  the image on storage (segments in order)
#   ("fs", byte_offset)                          the file system at that offset in the media
#   ("inode", address)                           a file in that file system
# A nested image continues the chain after its file's ("inode", n) step.
Step = tuple[Any, ...]
Locator = tuple[Step, ...]

_CHUNK = 1 << 20
_PROBE_BYTES = 4096  # the volume signatures checked at a partition's start lie within this
MIN_IMAGE_BYTES = 64 * 1024  # smaller files are never probed: no file system is that small

EWF_SIGNATURES = (b"EVF\x09\x0d\x0a\xff\x00", b"EVF2\x0d\x0a\x81\x00")


class DiskImageError(TriageError):
    """A disk image (or part of one) that cannot be read; `reason` goes into its row."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- recognition ------------------------------------------------------------------------


def _mbr_plausible(head: bytes) -> bool:
    """A DOS partition table: boot signature plus four entries whose boot flags are valid
    and at least one of which is in use (a bare FAT boot sector has the signature too)."""
    if len(head) < 512 or head[510:512] != b"\x55\xaa":
        return False
    entries = [head[446 + 16 * i : 462 + 16 * i] for i in range(4)]
    if any(e[0] not in (0x00, 0x80) for e in entries):
        return False
    return any(e[4] != 0 and int.from_bytes(e[12:16], "little") > 0 for e in entries)


def _fat_boot_sector(head: bytes) -> bool:
    if len(head) < 512 or head[510:512] != b"\x55\xaa" or head[0] not in (0xEB, 0xE9):
        return False
    bps = int.from_bytes(head[11:13], "little")
    return bps in (512, 1024, 2048, 4096) and head[13] in (1, 2, 4, 8, 16, 32, 64, 128)


def _ext_superblock(sb: bytes) -> bool:
    """ext2/3/4: the magic plus block size, revision and state fields in range (the two magic
    bytes alone would match one random file in 65,536)."""
    if len(sb) < 1024 or sb[56:58] != b"\x53\xef":
        return False
    log_block = int.from_bytes(sb[24:28], "little")
    rev = int.from_bytes(sb[76:80], "little")
    state = int.from_bytes(sb[58:60], "little")
    return log_block <= 6 and rev <= 1 and 1 <= state <= 7


def _hfs_mdb(mdb: bytes) -> bool:
    """A classic HFS master directory block: signature "BD", an allocation block size that
    is a non-zero multiple of 512, and a volume name length of at most 27 (Inside Macintosh:
    Files, 2-60)."""
    if len(mdb) < 0x80 or mdb[:2] != b"BD":
        return False
    block = int.from_bytes(mdb[0x14:0x18], "big")
    return block > 0 and block % 512 == 0 and mdb[0x24] <= 27


def image_kind(read_at: Callable[[int, int], bytes]) -> str | None:
    """What a file's bytes say it is as a disk or volume image, or None.

    `read_at(offset, n)` reads the file (shorter at its end); only the few ranges that hold
    signatures are read. Returns "ewf" for the first segment of an EWF image, "raw" for a
    partition table or a file system TSK reads, and the name of an encrypted volume
    ("bitlocker", "luks", "corestorage"), "udf" or "hfs" for volumes recognised but not read, and
    "apfs" for an APFS container (read by `triage.disk_apfs`).
    """
    head = read_at(0, 2048)
    if head[:8] in EWF_SIGNATURES:
        # later segments (E02, ...) carry the same signature; only the first opens the image
        return "ewf" if ewf_segment_number(head) == 1 else None
    enc = _volume_signature(head)
    if enc is not None:
        return enc
    if head[512:520] == b"EFI PART" or _mbr_plausible(head) or _fat_boot_sector(head):
        return "raw"
    if head[3:11] in (b"NTFS    ", b"EXFAT   "):
        return "raw"
    if _ext_superblock(head[1024:2048]):
        return "raw"
    if (head[1024:1026], head[1026:1028]) in ((b"H+", b"\x00\x04"), (b"HX", b"\x00\x05")):
        return "raw"  # HFS+ / HFSX volume header and its version
    if _hfs_mdb(head[1024:1536]):
        # classic HFS: TSK reads an HFS+ volume wrapped in one, not HFS itself
        return "raw" if head[1024 + 0x7C : 1024 + 0x7E] == b"H+" else "hfs"
    # the volume recognition area from sector 16 of a 2048-byte-sector disc: ISO 9660's
    # primary descriptor, or UDF's NSR descriptor (a UDF-only disc has no ISO 9660 side)
    area = read_at(32768, 2048 * 4)
    descriptors = {area[i + 1 : i + 6] for i in range(0, len(area), 2048)}
    if b"CD001" in descriptors:
        return "raw"
    if descriptors & {b"NSR02", b"NSR03"}:
        return "udf"
    return None


def ewf_segment_number(head: bytes) -> int:
    """The segment number in an EWF file header: EWF1 (E01) keeps it in 2 bytes after the
    signature and a start byte; EWF2 (Ex01) after its version bytes and 2-byte compression
    method, in 4 bytes (libewf's format documentation)."""
    if head[:8] == EWF_SIGNATURES[1]:
        return int.from_bytes(head[12:16], "little")
    return int.from_bytes(head[9:11], "little")


def may_be_image(head: bytes, size: int) -> bool:
    """Whether a file is worth probing for image signatures (`image_kind`): an EWF segment
    of any size, or a file large enough to hold a file system."""
    return head[:8] in EWF_SIGNATURES or head[:6] == b"LUKS\xba\xbe" or size >= MIN_IMAGE_BYTES


def read_at_of(source: BinaryIO) -> Callable[[int, int], bytes]:
    """`read_at` over a seekable file object."""

    def read_at(offset: int, n: int) -> bytes:
        source.seek(offset)
        return source.read(n)

    return read_at


def _volume_signature(head: bytes) -> str | None:
    """Encrypted or unsupported volume formats, by the signature at the volume's start."""
    if head[3:11] == b"-FVE-FS-":
        return "bitlocker"
    if head[:6] == b"LUKS\xba\xbe":
        return "luks"
    if head[88:90] == b"CS" and int.from_bytes(head[90:92], "little") == 1:
        return "corestorage"
    if head[32:36] == b"NXSB":
        return "apfs"
    return None


_NOT_EXAMINED = {
    "bitlocker": "encrypted: not examined (BitLocker volume)",
    "luks": "encrypted: not examined (LUKS volume)",
    "corestorage": "encrypted: not examined (FileVault 2 / CoreStorage volume)",
    "udf": "UDF-only disc: not examined (TSK reads a UDF disc through its ISO 9660 side; "
           "this one has none)",
    "hfs": "classic HFS volume (pre-HFS+): not examined (The Sleuth Kit reads HFS+ and HFSX, "
           "not HFS)",
}


# --- media: the bytes of an image, wherever they come from -----------------------------


class Media(Protocol):
    size: int

    def read_at(self, offset: int, n: int) -> bytes: ...


class _Segments:
    """Raw media over one or more files (split dd: `.001`, `.002`, ...), read with pread."""

    def __init__(self, files: Sequence[BinaryIO]) -> None:
        self._files = list(files)
        self._starts: list[int] = []
        pos = 0
        for f in self._files:
            self._starts.append(pos)
            pos += os.fstat(f.fileno()).st_size
        self.size = pos

    def read_at(self, offset: int, n: int) -> bytes:
        out = []
        for f, start in zip(self._files, self._starts, strict=True):
            end = start + os.fstat(f.fileno()).st_size
            if n <= 0:
                break
            if offset < end:
                part = os.pread(f.fileno(), min(n, end - offset), offset - start)
                out.append(part)
                offset += len(part)
                n -= len(part)
                if len(part) == 0:
                    break
        return b"".join(out)

    def close(self) -> None:
        for f in self._files:
            f.close()


class EwfMedia:
    """EWF media through pyewf, over file objects we opened read-only."""

    def __init__(self, files: Sequence[BinaryIO]) -> None:
        import pyewf

        self._files = list(files)
        self.handle = pyewf.handle()
        try:
            self.handle.open_file_objects(self._files)
        except (OSError, ValueError) as exc:
            self._files[0].seek(0)
            name = "EWF2 (Ex01)" if self._files[0].read(8) == EWF_SIGNATURES[1] else "EWF"
            raise DiskImageError(f"corrupt or truncated {name} image; not examined: "
                                 f"{_text(exc)}") from exc
        self.size = int(self.handle.get_media_size())

    def read_at(self, offset: int, n: int) -> bytes:
        return bytes(self.handle.read_buffer_at_offset(n, offset))

    def close(self) -> None:
        self.handle.close()
        for f in self._files:
            f.close()


class _StreamMedia:
    """Media over a seekable reader: an image inside an archive or inside another image."""

    def __init__(self, reader: BinaryIO, size: int) -> None:
        self._reader = reader
        self.size = size

    def read_at(self, offset: int, n: int) -> bytes:
        self._reader.seek(offset)
        return self._reader.read(n)


class _TskImage(pytsk3.Img_Info):  # type: ignore[misc]  # pytsk3 ships no stubs
    """Hands TSK the bytes of a `Media`: TSK never opens a path itself."""

    def __init__(self, media: Media) -> None:
        self._media = media
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def read(self, offset: int, size: int) -> bytes:
        if offset >= self._media.size:
            return b""
        try:
            return self._media.read_at(offset, min(size, self._media.size - offset))
        except (OSError, RuntimeError, ValueError) as exc:
            # TSK turns a Python exception in this callback into a RuntimeError that also
            # names its own call; the message we keep says which bytes were unreadable
            raise OSError(f"cannot read {size} bytes at image offset {offset}: "
                          f"{_text(exc)}") from exc

    def get_size(self) -> int:
        return self._media.size


def file_reader(entry: Any, size: int) -> ReadAtView:
    """A read-only, seekable view of one file inside a file system (TSK reads in place)."""
    return ReadAtView(lambda offset, n: entry.read_random(offset, n), size, _CHUNK)


# --- opening images ---------------------------------------------------------------------


def _segment_paths(path: str, kind: str) -> list[str]:
    """The image's segment files in order: E01, E02, ... (pyewf's glob) or x.001, x.002, ..."""
    if kind == "ewf":
        import pyewf

        try:
            return list(pyewf.glob(path))
        except (OSError, ValueError):
            return [path]
    base, ext = os.path.splitext(path)
    if not (len(ext) == 4 and ext[1:].isdigit() and int(ext[1:]) in (0, 1)):
        return [path]
    out = [path]
    width = len(ext) - 1
    n = int(ext[1:]) + 1
    while os.path.isfile(f"{base}.{n:0{width}d}"):
        out.append(f"{base}.{n:0{width}d}")
        n += 1
    return out


def _open_root(step: Step, opener: Callable[[str], BinaryIO]) -> Media:
    kind, paths = step
    files: list[BinaryIO] = []
    try:
        for p in paths:
            files.append(opener(p))
        return EwfMedia(files) if kind == "ewf" else _Segments(files)
    except BaseException:
        for f in files:
            f.close()
        raise


def _open_fs(media: Media, offset: int) -> Any:
    try:
        return pytsk3.FS_Info(_TskImage(media), offset=offset)
    except (OSError, RuntimeError) as exc:
        raise DiskImageError(f"no readable file system: {_text(exc)}") from exc


# --- per-process cache for hashing workers ---------------------------------------------

_CACHE_SIZE = 4
_fs_cache: OrderedDict[Locator, tuple[Any, list[Any]]] = OrderedDict()


def _opener(path: str) -> BinaryIO:
    from triage.walk import open_evidence

    return open_evidence(path)


def _open_entry(fs: Any, step: Step) -> tuple[io.RawIOBase, int]:
    """A reader over the file a step names in an opened file system, and its size."""
    if step[0] == "inode":
        entry = fs.open_meta(inode=step[1])
        return file_reader(entry, _size(entry)), _size(entry)
    from triage.disk_apfs import entry_reader

    entry = fs.get_file_entry_by_identifier(step[1])  # ("apfs_id", n) in an APFS volume
    return entry_reader(entry), int(entry.size or 0)


def open_located(locator: Locator) -> tuple[io.RawIOBase, int]:
    """Reopen the file a locator names: (reader, size). Raises `DiskImageError`/OSError.

    Opened images and file systems are kept in a small per-process cache, so a worker
    hashing a batch of files from one image opens it once.
    """
    fs_key = locator[:-1]
    cached = _fs_cache.get(fs_key)
    if cached is None:
        media: Media = _open_root(locator[0], _opener)
        keep: list[Any] = [media]
        fs = None
        for step in locator[1:-1]:
            if step[0] == "fs":
                fs = _open_fs(media, step[1])
            elif step[0] == "apfs":
                from triage.disk_apfs import open_container

                container, handle = open_container(media, step[1], media.size - step[1])
                keep += [container, handle]
                fs = container.get_volume(step[2])
            else:  # a file that is itself an image: the next steps are inside it
                reader, size = _open_entry(fs, step)
                media = _StreamMedia(io.BufferedReader(reader), size)
            keep.append(fs)
        cached = (fs, keep)
        _fs_cache[fs_key] = cached
        while len(_fs_cache) > _CACHE_SIZE:
            _, (_, old) = _fs_cache.popitem(last=False)
            for obj in old:
                if isinstance(obj, (_Segments, EwfMedia)):
                    obj.close()
    _fs_cache.move_to_end(fs_key)
    return _open_entry(cached[0], locator[-1])


def content_rows(img: _Image, reader: BinaryIO, label: str, size: int, mtime: float | None,
                 note: str | None, extra: dict[str, Any], locator: Locator | None,
                 segs: tuple[Segment, ...]) -> Iterator[WalkItem]:
    """A file's row, with its locator or (for an image not on storage) its bytes, then the
    rows of the archive or image it is, if it is one. Shared by every file-system reader."""
    from triage.containers import container_kind, container_rows

    data = None
    try:
        container = container_kind(reader, size)
        if locator is None and size > img.limits.max_member_bytes:
            limit = format_bytes(img.limits.max_member_bytes)
            yield img.row(label, size=size, mtime=mtime, status="skipped", error=True,
                          reason=f"file exceeds the {limit} member limit", extra=extra,
                          segs=segs)
            return
        if locator is None:
            reader.seek(0)
            data = _read_exactly(reader, size)
    except _DAMAGE as exc:
        yield img.row(label, size=size, mtime=mtime, status="error", error=True,
                      reason=f"unreadable range in the image: {_text(exc)}", extra=extra,
                      segs=segs)
        return
    item = img.row(label, size=size, mtime=mtime, reason=note, extra=extra,
                   locator=locator, data=data, segs=segs)
    yield item
    if container is not None:
        yield from container_rows(reader, item.path, size, img.limits, img.depth + 1,
                                  location=item.location)


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    """`size` bytes in chunks; a file system that yields fewer is an unreadable range."""
    chunks, got = [], 0
    while got < size:
        chunk = reader.read(min(_CHUNK, size - got))
        if not chunk:
            raise OSError(f"short read: {got} of {size} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _size(entry: Any) -> int:
    meta = entry.info.meta
    return int(meta.size) if meta is not None else 0


# --- EWF integrity ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Integrity:
    """The outcome of checking an EWF image against its stored acquisition hashes."""

    image: str
    status: str  # "verified", "mismatch", "no stored hash", "unreadable"
    stored: dict[str, str]
    computed: dict[str, str]
    media_bytes: int
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "status": self.status, "stored": self.stored,
                "computed": self.computed, "media_bytes": self.media_bytes,
                "seconds": round(self.seconds, 3), "detail": self.detail}


_EWF_HASHES = {"MD5": "md5", "SHA1": "sha1"}


def verify_ewf(media: EwfMedia, label: str) -> Integrity:
    """Read the whole media once in order and compare with the MD5/SHA-1 the image stores.

    libewf checks each chunk's checksum as it decompresses; this is the image-level check
    an examiner runs with `ewfverify`. A read error stops it and says where.
    """
    t0 = time.perf_counter()
    try:
        stored_raw = media.handle.get_hash_values() or {}
    except (OSError, ValueError):
        stored_raw = {}
    stored = {_EWF_HASHES[k]: v.lower() for k, v in stored_raw.items() if k in _EWF_HASHES}
    if not stored:
        return Integrity(label, "no stored hash", {}, {}, media.size, time.perf_counter() - t0,
                         "no acquisition MD5 or SHA-1 found (none stored, or the segment "
                         "holding it is missing or damaged); nothing to verify")
    digests = {name: hashlib.new(name) for name in stored}
    pos = 0
    try:
        while pos < media.size:
            chunk = media.read_at(pos, min(_CHUNK * 4, media.size - pos))
            if not chunk:
                raise OSError(f"no data at offset {pos}")
            for d in digests.values():
                d.update(chunk)
            pos += len(chunk)
    except (OSError, RuntimeError, ValueError) as exc:
        return Integrity(label, "unreadable", stored, {}, media.size, time.perf_counter() - t0,
                         f"read failed at offset {pos}: {_text(exc)}")
    computed = {n: d.hexdigest() for n, d in digests.items()}
    status = "verified" if computed == stored else "mismatch"
    return Integrity(label, status, stored, computed, media.size, time.perf_counter() - t0)


# --- walking ----------------------------------------------------------------------------


def _text(exc: BaseException) -> str:
    # pytsk3 prefixes its messages with the C++ source location, which tells an analyst nothing
    text = re.sub(r"^\w+: \(tsk3\.cpp:\d+\) ", "", str(exc)) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _fs_type_names() -> dict[int, str]:
    names = {}
    for n in dir(pytsk3):
        if n.startswith("TSK_FS_TYPE_") and not n.endswith(("_DETECT", "_ENUM")):
            names[int(getattr(pytsk3, n))] = n[len("TSK_FS_TYPE_"):].lower()
    return names


_FS_NAMES = _fs_type_names()
_DIR = int(pytsk3.TSK_FS_META_TYPE_DIR)
_REG = int(pytsk3.TSK_FS_META_TYPE_REG)
_LNK = int(pytsk3.TSK_FS_META_TYPE_LNK)
_VIRT_TYPES = {int(pytsk3.TSK_FS_META_TYPE_VIRT)}
_VIRT_DIR = int(pytsk3.TSK_FS_META_TYPE_VIRT_DIR)
_NAME_UNALLOC = int(pytsk3.TSK_FS_NAME_FLAG_UNALLOC)
_META_UNALLOC = int(pytsk3.TSK_FS_META_FLAG_UNALLOC)
_NTFS_FNAME = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_FNAME)
# NTFS keeps its own records in MFT entries 0-15 and under \$Extend; exFAT's bitmap and
# up-case table and HFS+'s special files appear as root files. They are file-system metadata, listed but not read.
_NTFS_SYSTEM_ENTRIES = 16
_HFS_FIRST_USER_ID = 16
_NTFS_RESERVED_ENTRIES = 24


@dataclass(slots=True)
class _Image:
    """One image being walked: its label, location, nesting depth, limits, and the labels
    and locations given out.

    A row's location is the image's location, then `scope` (the partition, APFS volume
    being walked: `Segment("partition", 2)`), then the segments naming the entry itself
    (`Segment("tsk_inode", 1234)`, `Segment("apfs_id", 77)`); a row about a volume or
    directory as a whole ends in `Segment("fs", WHOLE)`. Should two rows still meet (a
    deleted name pointing at a live inode), the later one gets `Segment("occurrence", n)`.
    """

    label: str
    depth: int
    limits: WalkLimits
    location: Location
    scope: tuple[Segment, ...] = ()
    count: int = 0
    labels: set[str] = field(default_factory=set)
    used: set[Location] = field(default_factory=set)

    def root_row(self, status: str, reason: str, error: bool,
                 extra: dict[str, Any] | None = None) -> WalkItem:
        """A row about the image as a whole, on its root label `disk.E01!/`."""
        return WalkItem(path=f"{self.label}!/", kind="image_member", size=None, mtime=None,
                        status=status, reason=reason,  # type: ignore[arg-type]
                        archive_error=error, extra=extra,
                        location=(*self.location, Segment("image", WHOLE)))

    def _location(self, segs: tuple[Segment, ...]) -> Location:
        loc: Location = (*self.location, *self.scope, *(segs or (Segment("fs", WHOLE),)))
        base, n = loc, 1
        while loc in self.used:
            n += 1
            loc = (*base, Segment("occurrence", n))
        self.used.add(loc)
        return loc

    def unique(self, rel: str) -> tuple[str, str | None]:
        path = base = f"{self.label}!/{rel}"
        n = 1
        while path in self.labels:
            n += 1
            path = f"{base} (duplicate {n})"
        self.labels.add(path)
        return path, (f"duplicate name (occurrence {n})" if n > 1 else None)

    def row(self, rel: str, *, size: int | None = None, mtime: float | None = None,
            status: str = "pending", reason: str | None = None, error: bool = False,
            extra: dict[str, Any] | None = None, locator: Locator | None = None,
            data: bytes | None = None, link_target: str | None = None,
            segs: tuple[Segment, ...] = ()) -> WalkItem:
        self.count += 1
        if self.count > self.limits.max_image_entries:
            raise DiskImageError(
                f"more than {self.limits.max_image_entries} entries; the rest were not read")
        path, dup = self.unique(rel)
        reason = "; ".join(r for r in (reason, dup) if r) or None
        return WalkItem(path=path, kind="image_member", size=size, mtime=mtime,
                        status=status, reason=reason,  # type: ignore[arg-type]
                        archive_error=error, extra=extra, locator=locator, data=data,
                        link_target=link_target, location=self._location(segs))


def iter_image(source: BinaryIO, label: str, size: int, limits: WalkLimits, depth: int = 1,
               fs_path: str | None = None, *, location: Location) -> Iterator[WalkItem]:
    """Yield the rows of the disk image in `source` (seekable), labelled under `label`;
    `location` is the image's own location, which every row's location extends.

    `fs_path` is the image's real path when it is a file on storage: then its segments are
    found beside it and its files get locators a worker can reopen; otherwise (an image in an
    archive or another image) the walk itself reads each file, bounded by the member limit.
    Nothing is yielded when `source` is not an image. Never raises for bad data.
    """
    kind = image_kind(read_at_of(source))
    source.seek(0)
    if kind is None:
        return
    img = _Image(label, depth, limits, location)
    if depth > limits.max_archive_depth:
        yield img.root_row("skipped", f"image depth limit {limits.max_archive_depth} reached; "
                           "not read", False)
        return
    if kind in _NOT_EXAMINED:
        yield img.root_row("skipped", _NOT_EXAMINED[kind], True)
        return
    try:
        yield from _image_rows(source, kind, img, size, fs_path)
    except DiskImageError as exc:
        yield img.root_row("error", exc.reason, True)
    except _DAMAGE as exc:
        yield img.root_row("error", f"corrupt disk image: {_text(exc)}", True)


def _image_rows(source: BinaryIO, kind: str, img: _Image, size: int,
                fs_path: str | None) -> Iterator[WalkItem]:
    root: Step | None = None
    media: Media
    if fs_path is not None:
        segments = _segment_paths(fs_path, kind)
        root = ("ewf" if kind == "ewf" else "raw", tuple(segments))
        media = _open_root(root, _opener)
    elif kind == "ewf":
        media = EwfMedia([source])
    else:
        media = _StreamMedia(source, size)
    notes: list[str] = []
    status, error = "skipped", False
    extra = None
    try:
        if isinstance(media, EwfMedia):
            integrity = verify_ewf(media, img.label)
            extra = {"integrity": integrity.to_dict()}
            notes.append(_INTEGRITY_NOTES[integrity.status](integrity))
            # an image whose integrity cannot be shown is worth an analyst's look too
            error = integrity.status != "verified"
            if integrity.status in ("mismatch", "unreadable"):
                status = "error"
        elif root is not None and len(root[1]) > 1:
            notes.append(f"split raw image: {len(root[1])} segments")
        try:
            yield from _volume_rows(media, img, root)
        except DiskImageError as exc:
            notes.append(exc.reason)
            status, error = "error", True
        except _DAMAGE as exc:
            notes.append(f"corrupt disk image: {_text(exc)}")
            status, error = "error", True
    finally:
        if hasattr(media, "close") and not isinstance(media, _StreamMedia):
            media.close()
    # one row about the image as a whole, after its files: integrity and whole-image damage
    if notes:
        yield img.root_row(status, "; ".join(notes), error, extra)


_INTEGRITY_NOTES: dict[str, Callable[[Integrity], str]] = {
    "verified": lambda i: "EWF image: stored " + " and ".join(k.upper() for k in i.stored)
    + " verified",
    "no stored hash": lambda i: "EWF image: " + i.detail,
    "mismatch": lambda i: "EWF image: computed hash differs from the stored acquisition "
    "hash (image altered or damaged)",
    "unreadable": lambda i: "EWF image: integrity not verified, " + i.detail,
}
# How pytsk3 and pyewf report damage they met while reading (RuntimeError wraps errors
# raised inside TSK's read callback).
_DAMAGE = (OSError, RuntimeError, ValueError, MemoryError)


def _volume_rows(media: Media, img: _Image, root: Step | None) -> Iterator[WalkItem]:
    """Partitions of the image (p1, p2, ...), or the image as one file system."""
    if _volume_signature(media.read_at(0, _PROBE_BYTES)) is not None:
        yield from _fs_rows(media, 0, "", img, root, whole=True)
        return
    tsk = _TskImage(media)
    try:
        vs = pytsk3.Volume_Info(tsk)
    except (OSError, RuntimeError):
        vs = None  # no partition table: the image is one file system (or nothing TSK reads)
    if vs is None:
        yield from _fs_rows(media, 0, "", img, root, whole=True)
        return
    block = int(vs.info.block_size)
    index = 0
    for part in vs:
        if not int(part.flags) & int(pytsk3.TSK_VS_PART_FLAG_ALLOC):
            continue
        index += 1
        img.scope = (Segment("partition", index),)
        start, length = int(part.start) * block, int(part.len) * block
        prefix = f"p{index}/"
        where = f"partition {index} (bytes {start}-{start + length})"
        if start >= media.size:
            yield img.row(f"p{index}", status="error", error=True,
                          reason=f"{where} lies outside the image ({media.size} bytes); not read")
            continue
        if start + length > media.size:
            yield img.row(f"p{index}", status="error", error=True,
                          reason=f"{where} extends past the end of the image "
                                 f"({media.size} bytes); read as far as it goes")
        yield from _fs_rows(media, start, prefix, img, root, whole=False,
                            length=min(length, media.size - start))


def _fs_rows(media: Media, offset: int, prefix: str, img: _Image, root: Step | None,
             whole: bool, length: int | None = None) -> Iterator[WalkItem]:
    head = media.read_at(offset, _PROBE_BYTES)
    enc = _volume_signature(head)
    where = prefix.rstrip("/") or "volume"
    if enc == "apfs":
        from triage.disk_apfs import apfs_rows

        try:
            yield from apfs_rows(media, offset, length or media.size - offset, prefix, img,
                                 (root,) if root is not None else None)
        except DiskImageError as exc:
            if whole:
                raise
            yield img.row(where, status="error", error=True, reason=exc.reason)
        return
    if enc is not None:
        yield img.row(where if prefix else "", status="skipped", error=True,
                      reason=_NOT_EXAMINED[enc]) if prefix else \
            img.root_row("skipped", _NOT_EXAMINED[enc], True)
        return
    try:
        fs = _open_fs(media, offset)
    except DiskImageError as exc:
        if whole:
            raise
        if _hfs_mdb(head[1024:1536]):
            yield img.row(where, status="skipped", error=True, reason=_NOT_EXAMINED["hfs"])
            return
        yield img.row(where, status="error", error=True, reason=exc.reason)
        return
    fs_name = _FS_NAMES.get(int(fs.info.ftype), str(int(fs.info.ftype)))
    locator = (root, ("fs", offset)) if root is not None else None
    walker = _FsWalk(fs, fs_name, prefix, img, locator, media)
    yield from walker.rows()


class _FsWalk:
    """Depth-first over one file system with an explicit stack and a visited set."""

    def __init__(self, fs: Any, fs_name: str, prefix: str, img: _Image,
                 locator: Locator | None, media: Media) -> None:
        self.fs, self.fs_name, self.prefix, self.img = fs, fs_name, prefix, img
        self.locator = locator
        self.media = media

    def rows(self) -> Iterator[WalkItem]:
        root_inum = int(self.fs.info.root_inum)
        try:
            top = self.fs.open_dir(inode=root_inum)
        except (OSError, RuntimeError) as exc:
            yield self.img.row(self.prefix.rstrip("/") or "", status="error", error=True,
                               reason=f"{self.fs_name}: cannot read the root directory: "
                                      f"{_text(exc)}")
            return
        visited = {root_inum}
        self.dir_inodes = {"": root_inum}  # directory label -> inode, for NTFS reclaims
        stack: list[tuple[Iterator[Any], str, int]] = [(iter(top), "", 1)]
        while stack:
            entries, dir_rel, depth = stack[-1]
            try:
                entry = next(entries, None)
            except (OSError, RuntimeError) as exc:
                stack.pop()
                yield self._error(dir_rel, f"directory unreadable: {_text(exc)}")
                continue
            if entry is None:
                stack.pop()
                continue
            name_info = entry.info.name
            raw = bytes(name_info.name)
            if raw in (b".", b".."):
                continue
            rel = dir_rel + os.fsdecode(raw)
            meta = entry.info.meta
            mtype = int(meta.type) if meta is not None else None
            if mtype in _VIRT_TYPES or raw.endswith(b"(Volume Label Entry)"):
                continue  # TSK's views of FAT tables, boot sectors and labels: not files
            if mtype == _VIRT_DIR or (mtype == _DIR):
                yield from self._enter(entry, rel, depth, visited, stack,
                                       virtual=mtype == _VIRT_DIR)
                continue
            yield from self._file_rows(entry, rel, dir_rel)

    def _error(self, rel: str, reason: str) -> WalkItem:
        return self.img.row(self.prefix + rel if rel else self.prefix.rstrip("/"),
                            status="error", error=True, reason=f"{self.fs_name}: {reason}")

    def _enter(self, entry: Any, rel: str, depth: int, visited: set[int],
               stack: list[tuple[Iterator[Any], str, int]], virtual: bool) -> Iterator[WalkItem]:
        meta = entry.info.meta
        addr = int(meta.addr)
        deleted = bool(int(entry.info.name.flags) & _NAME_UNALLOC)
        if addr in visited:
            if not deleted:  # a deleted entry may point anywhere; only live loops are errors
                yield self._error(rel + "/", f"directory loop: inode {addr} already visited; "
                                  "not entered")
            return
        if depth > self.img.limits.max_dir_depth:
            yield self._error(rel + "/", f"directory depth limit "
                              f"{self.img.limits.max_dir_depth} reached; not entered")
            return
        if deleted and not virtual:
            return  # a deleted directory's entries are reached through $OrphanFiles
        visited.add(addr)
        try:
            sub = entry.as_directory()
        except (OSError, RuntimeError) as exc:
            yield self._error(rel + "/", f"directory unreadable: {_text(exc)}")
            return
        self.dir_inodes[rel + "/"] = addr
        stack.append((iter(sub), rel + "/", depth + 1))

    def _fields(self, entry: Any, deleted: bool) -> dict[str, Any]:
        meta = entry.info.meta
        times = {}
        for t in ("mtime", "atime", "ctime", "crtime"):
            sec = int(getattr(meta, t) or 0)
            if sec:
                times[t] = sec + int(getattr(meta, f"{t}_nano", 0) or 0) / 1e9
        return {"deleted": deleted, "fs_type": self.fs_name, "inode": int(meta.addr),
                "times": times}

    def _file_rows(self, entry: Any, rel: str, dir_rel: str) -> Iterator[WalkItem]:
        name_info = entry.info.name
        meta = entry.info.meta
        deleted = bool(int(name_info.flags) & _NAME_UNALLOC)
        label = self.prefix + rel
        segs = (Segment("tsk_inode", int(name_info.meta_addr)),)
        if self._is_fs_metadata(int(name_info.meta_addr), rel, dir_rel):
            if meta is None:
                return  # an empty reserved record: not a file at all
            yield self.img.row(label, size=int(meta.size), status="skipped",
                               reason="file-system metadata; not read",
                               extra=self._fields(entry, deleted), segs=segs)
            return
        if meta is None and deleted:
            reclaimed = self._ntfs_reclaim(name_info, self.dir_inodes.get(dir_rel))
            if reclaimed is not None:
                entry, meta = reclaimed, reclaimed.info.meta
        if meta is None:
            reason = "deleted; content not recoverable from file-system metadata" if deleted \
                else "no metadata for this name"
            yield self.img.row(label, status="skipped" if deleted else "error",
                               error=not deleted, reason=reason,
                               extra={"deleted": deleted, "fs_type": self.fs_name}, segs=segs)
            return
        extra = self._fields(entry, deleted)
        size = int(meta.size)
        mtime = extra["times"].get("mtime")
        mtype = int(meta.type)
        if mtype == _LNK:
            yield self.img.row(label, size=size, mtime=mtime, status="skipped",
                               reason="symlink not followed", extra=extra,
                               link_target=self._link_target(entry, size), segs=segs)
            return
        if mtype != _REG:
            yield self.img.row(label, size=size, mtime=mtime, status="skipped",
                               reason=f"{self.fs_name} entry type {mtype} not read", extra=extra,
                               segs=segs)
            return
        note = None
        if deleted:
            note = "deleted; content recovered from file-system metadata (may be overwritten)"
            if int(meta.flags) & _META_UNALLOC == 0:
                note = "deleted name of a file whose metadata is in use again"
        yield from self._content_rows(entry, label, size, mtime, note, extra)

    def _content_rows(self, entry: Any, label: str, size: int, mtime: float | None,
                      note: str | None, extra: dict[str, Any]) -> Iterator[WalkItem]:
        reader = io.BufferedReader(file_reader(entry, size), buffer_size=_CHUNK)
        locator = None
        if self.locator is not None:
            locator = (*self.locator, ("inode", int(entry.info.meta.addr)))
        yield from content_rows(self.img, reader, label, size, mtime, note, extra, locator,
                                (Segment("tsk_inode", int(entry.info.meta.addr)),))

    def _is_fs_metadata(self, addr: int, rel: str, dir_rel: str) -> bool:
        if self.fs_name == "ntfs" and dir_rel == "$OrphanFiles/":
            return addr < _NTFS_RESERVED_ENTRIES  # reserved MFT records TSK lists as orphans
        if self.fs_name == "ntfs":
            return (addr < _NTFS_SYSTEM_ENTRIES and dir_rel == "") or dir_rel == "$Extend/"
        if self.fs_name == "exfat":
            return dir_rel == "" and rel in ("$ALLOC_BITMAP", "$UPCASE_TABLE")
        if self.fs_name in ("hfs", "hfsx"):
            # TSK lists HFS+'s special files (catalog, extents, allocation, ...) by their
            # reserved catalog node IDs, below 16 (TN1150)
            return dir_rel == "" and addr < _HFS_FIRST_USER_ID and rel.startswith("$")
        return False

    def _ntfs_reclaim(self, name_info: Any, parent: int | None) -> Any | None:
        """The MFT record of a deleted NTFS name that TSK leaves unattached, when it still
        holds that file.

        Deleting a file bumps its MFT record's sequence number, so the name left in the
        directory index carries n and the freed record n + 1, and TSK (rightly cautious)
        attaches no metadata. The record still describes the file while it is free, its
        sequence number is exactly n + 1 and one of its $FILE_NAME attributes is this name
        in this directory; then its data runs are the file's last known content.
        """
        if self.fs_name != "ntfs" or parent is None:
            return None
        try:
            record = self.fs.open_meta(inode=int(name_info.meta_addr))
            meta = record.info.meta
            if meta is None or int(meta.flags) & _META_UNALLOC == 0:
                return None  # the record holds another, live file now
            if int(meta.seq) != (int(name_info.meta_seq) + 1) & 0xFFFF:
                return None
            name = os.fsdecode(bytes(name_info.name))
            for attr in record:
                if int(attr.info.type) != _NTFS_FNAME:
                    continue
                raw = record.read_random(0, int(attr.info.size), attr.info.type, attr.info.id)
                count = raw[0x40] if len(raw) > 0x40 else 0
                if (int.from_bytes(raw[0:6], "little") == parent
                        and raw[0x42 : 0x42 + 2 * count].decode("utf-16-le", "replace") == name):
                    return record
        except (OSError, RuntimeError):
            return None
        return None

    def _link_target(self, entry: Any, size: int) -> str | None:
        link = entry.info.meta.link  # ext's short targets live in the inode itself
        if link:
            return os.fsdecode(bytes(link) if not isinstance(link, str) else link.encode())
        try:
            return os.fsdecode(entry.read_random(0, min(size, 4096)))
        except OSError:
            return None



def hash_located(locator: Locator, path: str, opts: HashOptions, *,
                 mtime: float | None = None) -> HashRecord:
    """Hash the file inside a disk image that `locator` names, streaming it in chunks.

    Runs in hashing workers. A file system or image that cannot be reopened, or a range that
    cannot be read, is an error record with the reason (it lands on the attention list).
    """
    try:
        reader, size = open_located(locator)
        return hash_stream(reader, size, path, opts, mtime=mtime)
    except DiskImageError as exc:
        return HashRecord(path=path, status="error", error=exc.reason)
    except (OSError, RuntimeError) as exc:
        return HashRecord(path=path, status="error",
                          error=f"unreadable range in the image: {_text(exc)}")
