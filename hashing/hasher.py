"""One file (or in-memory member) in, one `HashRecord` out.

Walking many files, batching them and running the batches in processes is the scan's
runner (`triage.runner`), which `triage hash` uses too: one walker, one executor.

The bytes of a file are read once: digests and decoding use the same buffer. Files that are
not media, or larger than `max_media_bytes`, are streamed through the digests in chunks
instead of being held whole (a large video is then decoded from the same read-only handle).
Evidence is opened read-only, with O_NOATIME where the kernel allows it so reading does not
even touch access times, and symlinks and special files are recorded, never followed or
read. Bad media never raises: the record says `status: "error"` with the reason and still
carries the digests.
"""

from __future__ import annotations

import errno
import io
import mimetypes
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, BinaryIO

from hashing.algorithms.digests import digest_bytes, digest_stream
from hashing.algorithms.imagehash_family import NAMES as IMAGEHASH_NAMES
from hashing.algorithms.imagehash_family import imagehash_hashes
from hashing.decode import (
    DEFAULT_MAX_DECODE_BYTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_PIXEL_LIMIT,
    DecodedImage,
    DecodeMode,
    Need,
    decode_image,
    exif_transposed,
    iter_frames,
)
from hashing.errors import DecodeTimeoutError, MediaError
from hashing.registry import DEFAULT_ALGORITHMS, DIGESTS, SPECS, spec
from hashing.sniff import SNIFF_BYTES, MediaKind, sniff
from hashing.time_limit import time_limit
from hashing.types import FrameHash, HashRecord, VariantHash

# A file larger than this is never held in memory whole: images above it are reported, videos
# above it are decoded from the open handle after the digest pass.
DEFAULT_MAX_MEDIA_BYTES = 512 * 1024 * 1024
# Wall-clock seconds decoding one file may take (images and videos); the digests are always
# computed. A progressive JPEG of repeated scans decodes at ~30 s per MB without it.
DEFAULT_DECODE_SECONDS = 60.0
_NOT_MEDIA = "unsupported media: content is not a recognised image or video format"


@dataclass(frozen=True, slots=True)
class HashOptions:
    """What to compute and how. Validated on construction (unknown algorithms raise)."""

    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    dihedral: bool = False
    decode_mode: DecodeMode = "fast"
    pixel_limit: int = DEFAULT_PIXEL_LIMIT
    exif_transpose: bool = False
    video_fps: float = 1.0
    max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES
    max_frames: int = DEFAULT_MAX_FRAMES
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES
    decode_seconds: float = DEFAULT_DECODE_SECONDS
    variants: bool = False  # also hash the query-side canonical variants (hashing.variants)
    digests: tuple[str, ...] = field(init=False)
    perceptual: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        for name in self.algorithms:
            spec(name)
        if self.decode_mode not in ("fast", "exact"):
            raise ValueError(f"decode_mode must be 'fast' or 'exact', not {self.decode_mode!r}")
        if min(self.pixel_limit, self.max_media_bytes, self.video_fps, self.max_frames,
               self.max_decode_bytes, self.decode_seconds) <= 0:
            raise ValueError("pixel_limit, max_media_bytes, max_frames, video_fps, "
                             "max_decode_bytes and decode_seconds must be positive")
        object.__setattr__(self, "digests", tuple(a for a in self.algorithms if a in DIGESTS))
        object.__setattr__(
            self, "perceptual", tuple(a for a in self.algorithms if a not in DIGESTS)
        )

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON values, by field name (what a resume key digests)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in fields(self) if f.init}


def _claims_media(path: str) -> bool:
    guess = mimetypes.guess_type(os.fsdecode(path))[0] or ""
    return guess.startswith(("image/", "video/"))


def _image_fields(img: DecodedImage, opts: HashOptions) -> dict[str, Any]:
    from hashing.algorithms.pdq import block_reduce, exact_dihedral, pdq_from_luma

    hashes: dict[str, str] = {}
    out: dict[str, Any] = {}
    # one block reduction of a large luma plane serves the dihedral hashes and the variants
    reduced = block_reduce(img.luma) if img.luma is not None and (
        opts.dihedral or opts.variants) else None
    if "pdq" in opts.perceptual:
        assert img.luma is not None
        if opts.dihedral:
            # exact variants: the hashes of the rotated/mirrored pixels (identity first)
            turned = exact_dihedral(img.luma, reduced=reduced)
            res = turned[0]
            out["pdq_dihedral"] = tuple(r.hash for r in turned)
        else:
            res = pdq_from_luma(img.luma)
            out["pdq_dihedral"] = None
        hashes["pdq"] = res.hash
        out["pdq_quality"] = res.quality
    if img.pil is not None:
        hashes.update(imagehash_hashes(img.pil, opts.perceptual))
    out["hashes"] = hashes
    if "orb" in opts.perceptual or "pdq_grid" in opts.perceptual:
        out.update(_media_bank_fields(img, opts))
    if opts.exif_transpose and img.pil is not None and img.exif_orientation not in (None, 1):
        out["exif_hashes"] = _transposed_hashes(img, opts)
    if opts.variants:
        out["variants"] = _variant_hashes(img, opts, reduced) or None
    return out


def _media_bank_fields(img: DecodedImage, opts: HashOptions) -> dict[str, Any]:
    """Local features and sub-window PDQs (bank-side signatures; never in a hash record's
    output)."""
    from hashing.algorithms.local_features import describe, describe_query
    from hashing.algorithms.pdq_windows import window_hashes

    assert img.luma is not None
    out: dict[str, Any] = {}
    if "orb" in opts.perceptual:
        # a media-bank import (the only caller that asks for sub-windows) describes bank
        # items; a scan describes query images, with more keypoints from more candidates
        how = describe if "pdq_grid" in opts.perceptual else describe_query
        out["local_features"] = how(img.luma, img.width, img.height).to_bytes()
    if "pdq_grid" in opts.perceptual:
        out["pdq_windows"] = window_hashes(img.luma)
    return out


def _variant_hashes(img: DecodedImage, opts: HashOptions,
                    reduced: tuple[Any, int] | None) -> tuple[VariantHash, ...]:
    """Hashes of each canonical variant the detectors find (none for a clean image), for the
    perceptual algorithms whose spec says variants are worth hashing. PDQ of a variant is
    taken from the block-reduced luma with the full-size grid (a crop is approximate
    anyway), so a variant of a 12 MP photo costs a 1 MP hash."""
    import numpy as np

    from hashing.algorithms.pdq import pdq_from_luma
    from hashing.variants import find_variants, render

    wanted = [a for a in opts.perceptual if spec(a).variants]
    plane = reduced[0] if reduced is not None else (
        np.asarray(img.pil.convert("L")) if img.pil is not None else None)
    if not wanted or plane is None:
        return ()
    found = find_variants(plane)
    if not found:
        return ()
    rgb = np.asarray(img.pil.convert("RGB")) if img.pil is not None and any(
        a in IMAGEHASH_NAMES for a in wanted) else None
    out = []
    for v in found:
        hashes: dict[str, str] = {}
        quality = None
        if "pdq" in wanted and reduced is not None:
            small, f = reduced
            crop = render(v, small)
            full = (crop.shape[0] * f, crop.shape[1] * f) if f > 1 else None
            res = pdq_from_luma(crop, full_size=full)
            hashes["pdq"], quality = res.hash, res.quality
        if rgb is not None:
            from PIL import Image

            hashes.update(imagehash_hashes(Image.fromarray(render(v, rgb)), wanted))
        out.append(VariantHash(v.name, v.detail, hashes, quality))
    return tuple(out)


def _transposed_hashes(img: DecodedImage, opts: HashOptions) -> dict[str, str]:
    """Hashes of the image as displayed; only when the orientation actually changes pixels."""
    import numpy as np

    from hashing.algorithms.pdq import pdq_from_rgb

    assert img.pil is not None
    shown = exif_transposed(img.pil)
    hashes: dict[str, str] = {}
    if "pdq" in opts.perceptual:
        hashes["pdq"] = pdq_from_rgb(np.asarray(shown.convert("RGB"))).hash
    hashes.update(imagehash_hashes(shown, opts.perceptual))
    return hashes


def _needs(opts: HashOptions) -> set[Need]:
    needs: set[Need] = set()
    if any(a in opts.perceptual for a in ("pdq", "orb", "pdq_grid")):
        needs.add("luma")
    if any(a in IMAGEHASH_NAMES for a in opts.perceptual) or opts.exif_transpose:
        needs.add("pil")
    return needs


def _hash_image(data: bytes, path: str, opts: HashOptions) -> dict[str, Any]:
    img = decode_image(
        data, path=path, mode=opts.decode_mode, pixel_limit=opts.pixel_limit,
        need=_needs(opts), max_decode_bytes=opts.max_decode_bytes,
    )
    fields = _image_fields(img, opts)
    fields.update(
        media_type=img.media_type, width=img.width, height=img.height,
        exif_orientation=img.exif_orientation,
    )
    if img.multi_frame and "pdq" in opts.perceptual:
        fields.update(_frame_fields(data, path, opts))
    return fields


def _frame_fields(data: bytes, path: str, opts: HashOptions) -> dict[str, Any]:
    """PDQ and a pixel MD5 of every frame (or page) of a multi-frame image, up to the limit.

    The first frame is hashed as the image itself too; frames make a match on any later frame
    (or page) a match of the file. A frame limit or a broken later frame leaves the good
    frames and a note (`unexamined`) that puts the file on the attention list.
    """
    import hashlib

    from hashing.algorithms.pdq import pdq_from_rgb

    frames: list[FrameHash] = []
    note: str | None = None
    try:
        for f in iter_frames(data, path=path, pixel_limit=opts.pixel_limit,
                             max_frames=opts.max_frames):
            res = pdq_from_rgb(f.rgb)
            md5 = hashlib.md5(f.rgb.tobytes(), usedforsecurity=False).hexdigest()
            frames.append(FrameHash(f.t, res.hash, res.quality, frame=f.index, md5=md5))
    except MediaError as exc:
        note = exc.reason
    out: dict[str, Any] = {"pdq_frames": tuple(frames), "duration": frames[-1].t if frames else 0.0}
    if note is not None:
        out["unexamined"] = note
    return out


def hash_pixels(rgb: Any, opts: HashOptions, path: str = "<pixels>") -> HashRecord:
    """The perceptual part of a record for pixels already in memory (uint8[H, W, 3]), through
    the same code as a file's: what the accuracy benchmark measures is what a scan does."""
    import numpy as np
    from PIL import Image

    from hashing.pdq_kernels import rgb_to_luma

    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    needs = _needs(opts)
    img = DecodedImage(
        media_type="image/x-raw", width=arr.shape[1], height=arr.shape[0],
        exif_orientation=None, luma=rgb_to_luma(arr) if "luma" in needs else None,
        pil=Image.fromarray(arr) if "pil" in needs else None,
    )
    fields = _image_fields(img, opts)
    return HashRecord(path=path, status="hashed", media_type=img.media_type, width=img.width,
                      height=img.height, **fields)


def _hash_video(source: bytes | io.BufferedIOBase, path: str, opts: HashOptions,
                media_type: str | None) -> dict[str, Any]:
    from hashing.algorithms.video import hash_video

    res = hash_video(source, path=path, fps=opts.video_fps, pixel_limit=opts.pixel_limit,
                     max_decode_bytes=opts.max_decode_bytes)
    fields: dict[str, Any] = dict(
        media_type=media_type, width=res.width, height=res.height,
        pdq_frames=res.frames, duration=res.duration, hashes={},
    )
    if res.error is not None:
        fields.update(status="error", error=res.error)
    return fields


def _media_fields(
    kind: MediaKind, source: bytes | io.BufferedIOBase, path: str, opts: HashOptions
) -> dict[str, Any]:
    """Perceptual part of a record; an error dict instead of raising for bad media.

    Decoding runs under the per-file time limit (`opts.decode_seconds`): past it, the
    record is an error row (the digests are already computed) and the next file goes on.
    """
    timeout = DecodeTimeoutError(
        path, f"decoding took longer than the {opts.decode_seconds:g} s per-file time limit")
    try:
        with time_limit(opts.decode_seconds, timeout):
            if kind.family == "video":
                if "pdq" not in opts.perceptual:
                    return {"media_type": kind.media_type}
                return _hash_video(source, path, opts, kind.media_type)
            if isinstance(source, bytes):
                return _hash_image(source, path, opts)
            return {"media_type": kind.media_type, "status": "error",
                    "error": f"image larger than max_media_bytes ({opts.max_media_bytes})"}
    except MediaError as exc:
        return {"media_type": kind.media_type, "status": "error", "error": exc.reason}
    except MemoryError:
        return {"media_type": kind.media_type, "status": "error",
                "error": "out of memory while decoding"}
    except Exception as exc:  # one hostile file must not abort a whole case
        return {"media_type": kind.media_type, "status": "error",
                "error": f"decoder failed: {type(exc).__name__}: {exc}"}


def _record(path: str, kind: MediaKind, digests: dict[str, str],
            media: dict[str, Any] | None, size: int | None, mtime: float | None) -> HashRecord:
    fields: dict[str, Any] = {"status": "hashed", "media_type": kind.media_type}
    if media is not None:
        fields.update(media)
    hashes = dict(fields.pop("hashes", None) or {})
    hashes.update(digests)
    ordered = {a: hashes[a] for a in SPECS if a in hashes}  # registry order, whatever --algo said
    return HashRecord(path=path, hashes=ordered, size=size, mtime=mtime, **fields)


def _classify(data_head: bytes, opts: HashOptions) -> tuple[MediaKind, bool]:
    """(what the bytes are, whether to decode them). Only content with a media signature is
    decoded: signature-less formats would turn random bytes into "images"."""
    kind = sniff(data_head)
    return kind, bool(opts.perceptual) and kind.family in ("image", "video")


def _unsigned(kind: MediaKind, path: str, opts: HashOptions) -> dict[str, Any] | None:
    """A file not decoded: an error row if its name claims media (disguised, encrypted or
    corrupt evidence is worth a look), else nothing beyond the digests."""
    if opts.perceptual and kind.family == "other" and _claims_media(path):
        return {"status": "error", "media_type": None, "error": _NOT_MEDIA}
    return None


def hash_bytes(data: bytes, path: str, opts: HashOptions, *, size: int | None = None,
               mtime: float | None = None) -> HashRecord:
    """Hash bytes already in memory (a small file or an archive member). Never raises for bad
    media; `path` names the item in the record."""
    kind, try_decode = _classify(data[:SNIFF_BYTES], opts)
    digests = digest_bytes(data, opts.digests)
    media: dict[str, Any] | None = None
    media = _media_fields(kind, data, path, opts) if try_decode else _unsigned(kind, path, opts)
    return _record(path, kind, digests, media, len(data) if size is None else size, mtime)


_NOATIME = getattr(os, "O_NOATIME", 0)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | \
    getattr(os, "O_CLOEXEC", 0)


def _open_readonly(path: str) -> int:
    try:
        return os.open(path, _OPEN_FLAGS | _NOATIME)
    except OSError as exc:
        # O_NOATIME is refused (EPERM) for files the caller does not own
        if _NOATIME and exc.errno == errno.EPERM:
            return os.open(path, _OPEN_FLAGS)
        raise


def _read_all(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = max(size, 0) + 1  # one more byte so a file that grew is still read to its end
    while True:
        chunk = os.read(fd, max(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def hash_path(path: str, opts: HashOptions,
              inspect: Callable[[BinaryIO], None] | None = None) -> HashRecord:
    """Hash one file on disk, read-only and read once. Never raises for bad or odd files.

    `inspect`, if given, is called with the file still open after it was read (a
    read-only, seekable file object), so a caller can look at more of the file without
    opening it a second time (the scan asks whether it is a container).
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        return HashRecord(path=path, status="error", error=f"cannot stat: {exc.strerror}")
    if stat.S_ISLNK(st.st_mode):
        try:
            target: str | None = os.readlink(path)
        except OSError:
            target = None
        return HashRecord(path=path, status="skipped", kind="symlink", reason="symlink not followed",
                          link_target=target, size=st.st_size, mtime=st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        return _directory_record(path, st.st_mtime)
    if not stat.S_ISREG(st.st_mode):
        return HashRecord(path=path, status="skipped", kind="special",
                          reason="not a regular file", mtime=st.st_mtime)
    try:
        fd = _open_readonly(path)
    except OSError as exc:
        return HashRecord(path=path, status="error", error=f"cannot open: {exc.strerror}",
                          size=st.st_size, mtime=st.st_mtime)
    try:
        st = os.fstat(fd)  # the file actually opened, in case the name was swapped meanwhile
        if not stat.S_ISREG(st.st_mode):
            return HashRecord(path=path, status="skipped", kind="special",
                              reason="not a regular file", mtime=st.st_mtime)
        rec = _hash_open_file(fd, path, opts, st)
        after = os.fstat(fd)
        if _changed(st, after, rec.size):
            # Written to while we read it: the size and digests of one read would describe
            # no state the file was ever in. Read once more; the row says what happened.
            again = _hash_open_file(fd, path, opts, after)
            final = os.fstat(fd)
            note = CHANGED_DURING_READ if not _changed(after, final, again.size) else \
                f"{CHANGED_DURING_READ}, twice: size and digests are of the second read"
            rec = replace(again, reason="; ".join(r for r in (again.reason, note) if r))
        if inspect is not None:
            with io.FileIO(fd, "rb", closefd=False) as raw:
                inspect(raw)  # type: ignore[arg-type]
        return rec
    except OSError as exc:
        return HashRecord(path=path, status="error", error=f"read failed: {exc.strerror}",
                          size=st.st_size, mtime=st.st_mtime)
    finally:
        os.close(fd)


CHANGED_DURING_READ = "changed during read; read again"


def _changed(before: os.stat_result, after: os.stat_result, read: int | None) -> bool:
    """True when the file was modified while it was read (or the read saw another size)."""
    return (before.st_size, before.st_mtime_ns, before.st_ctime_ns) != (
        after.st_size, after.st_mtime_ns, after.st_ctime_ns) or read != after.st_size


def _hash_open_file(fd: int, path: str, opts: HashOptions, st: os.stat_result) -> HashRecord:
    """One read of the open file from its start: size and digests come from the same bytes."""
    os.lseek(fd, 0, os.SEEK_SET)
    if st.st_size <= opts.max_media_bytes:
        data = _read_all(fd, st.st_size)
        return hash_bytes(data, path, opts, size=len(data), mtime=st.st_mtime)
    return _hash_large(fd, path, opts, st.st_mtime)


def _directory_record(path: str, mtime: float) -> HashRecord:
    """A directory handed over as a file (it could not be listed, or is a race): say why."""
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        return HashRecord(path=path, status="error", kind="special", mtime=mtime,
                          error=f"cannot list directory: {exc.strerror}")
    return HashRecord(path=path, status="skipped", kind="special", reason="directory",
                      mtime=mtime)


def _hash_large(fd: int, path: str, opts: HashOptions, mtime: float) -> HashRecord:
    with io.FileIO(fd, "rb", closefd=False) as raw:
        return _hash_streamed(raw, path, opts, mtime)


def _hash_streamed(raw: io.RawIOBase, path: str, opts: HashOptions,
                   mtime: float | None) -> HashRecord:
    raw.seek(0)
    head = raw.read(SNIFF_BYTES) or b""
    kind, try_decode = _classify(head, opts)
    raw.seek(0)
    digests, size = digest_stream(raw, opts.digests)  # type: ignore[arg-type]
    media = _unsigned(kind, path, opts)
    if try_decode:
        raw.seek(0)
        media = _media_fields(kind, io.BufferedReader(raw), path, opts)
    return _record(path, kind, digests, media, size, mtime)


def hash_stream(raw: io.RawIOBase, size: int, path: str, opts: HashOptions, *,
                mtime: float | None = None) -> HashRecord:
    """Hash a seekable read-only stream of `size` bytes (a file inside a disk image).

    Up to `max_media_bytes` it is read once into memory like a file; beyond, it is streamed
    through the digests in chunks and never held whole. Raises `OSError` for read errors.
    """
    if size > opts.max_media_bytes:
        return _hash_streamed(raw, path, opts, mtime)
    raw.seek(0)
    chunks: list[bytes] = []
    got = 0
    while got <= size:
        chunk = raw.read(min(1 << 20, size + 1 - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if got > opts.max_media_bytes:  # a stream longer than it said: digests only, streamed
        return _hash_streamed(raw, path, opts, mtime)
    return hash_bytes(b"".join(chunks), path, opts, size=got, mtime=mtime)

