"""Synthetic evidence folders, and the expected manifest row of every path in them.

`EvidenceBuilder` writes files, archives (zip, tar, tar.gz, nested), symlinks and FIFOs and
records, for each path, the manifest `kind` and `status` a correct scan must report, so scan
tests can assert that every file is accounted for. `make_evidence` uses it to build a folder
with every awkward case an investigator meets.

Expected statuses follow the issue-4 rules:
- a regular file or archive member that can be read gets its digests: `hashed`, whether or
  not it is media (text, PDF-like, random bytes, empty files and archives themselves too);
- content that claims to be media by its magic bytes but cannot be decoded: `error`;
- non-media content under an image or video extension (by `mimetypes`, e.g. text named
  `.jpg`, an empty `.png`): `error`, because the name claims media that is not there
  (`EvidenceBuilder.add_file` applies this rule itself);
- symlinks (to a file, dangling, looping) are recorded, never followed: kind `symlink`, `skipped`;
- FIFOs: kind `special`, `skipped`, never opened.
Archive members are named `ARCHIVE!/member/path`, nested ones `outer.zip!/inner.tar!/x.jpg`,
with ARCHIVE the archive's path relative to the evidence root. Directories have no rows.

Everything is deterministic: archive timestamps and owners are fixed, gzip headers carry no
time or name, and every path's mtime is set from the seed with `os.utime`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import mimetypes
import os
import stat
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from hashing.types import EntryKind, Status, path_to_text
from synthetic_fixtures.photos import RECIPES, encode, make_flat, make_photo
from synthetic_fixtures.videos import make_video

Media = Literal["image", "video", "archive"] | None
ArchiveFormat = Literal["zip", "tar", "tar.gz"]

# 2021-01-01T00:00:00Z; every mtime is this plus a per-path offset, never the wall clock.
BASE_MTIME = 1_609_459_200
ZIP_DATE = (2021, 1, 1, 0, 0, 0)

EVIDENCE_RECIPES = (
    "jpeg", "jpeg_exif6", "png_rgb", "webp", "jpeg", "png_rgba", "gif", "jpeg_exif3", "bmp",
    "png_p", "tiff", "jpeg_gray", "gif_anim", "jpeg_exif8", "png_i16", "jpeg_exif1",
)
EVIDENCE_SIZES: tuple[tuple[int, int], ...] = ((320, 240), (640, 480), (240, 320), (200, 150), (800, 600))


@dataclass(frozen=True, slots=True)
class ExpectedEntry:
    """The manifest row a scan must produce for one path (or archive member)."""

    path: str  # relative to the evidence root, "/"-separated; members as "A!/m"
    kind: EntryKind
    status: Status
    media: Media = None
    note: str = ""
    sha256: str | None = None  # of the bytes, for files and members
    size: int | None = None
    link_target: str | None = None

    def to_dict(self) -> dict[str, object]:
        text, raw_hex = path_to_text(self.path)
        d: dict[str, object] = {"path": text}
        if raw_hex is not None:
            d["path_bytes_hex"] = raw_hex
        d.update(kind=self.kind, status=self.status, media=self.media, note=self.note,
                 sha256=self.sha256, size=self.size)
        if self.link_target is not None:
            d["link_target"] = path_to_text(self.link_target)[0]
        return d


@dataclass(frozen=True, slots=True)
class EvidenceSpec:
    """An evidence folder and the expected manifest row of each path in it, keyed by path."""

    root: str
    entries: dict[str, ExpectedEntry]
    skipped_features: tuple[str, ...] = ()  # e.g. "fifo" where the platform cannot make one

    def absolute(self, rel: str) -> str:
        """Filesystem path of a top-level (non-member) entry."""
        return os.path.join(self.root, *rel.split("/"))

    def to_json(self) -> str:
        """Entries sorted by path; non-UTF-8 names also as `path_bytes_hex` (lossless)."""
        return json.dumps(
            {"root": self.root, "skipped_features": list(self.skipped_features),
             "entries": [self.entries[k].to_dict() for k in sorted(self.entries)]},
            indent=1,
        )


@dataclass(frozen=True, slots=True)
class Member:
    """An archive member: its name, bytes and expectation; `children` if it is itself an archive."""

    name: str
    data: bytes
    status: Status = "hashed"
    media: Media = None
    note: str = ""
    children: tuple[Member, ...] = ()


def pack_archive(fmt: ArchiveFormat, members: Sequence[Member]) -> bytes:
    """Deterministic archive bytes: fixed dates, owners and modes, members in the given order."""
    buf = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w") as zf:
            for m in members:
                zinfo = zipfile.ZipInfo(m.name, date_time=ZIP_DATE)
                zinfo.compress_type = zipfile.ZIP_DEFLATED
                zinfo.external_attr = 0o644 << 16
                zf.writestr(zinfo, m.data)
        return buf.getvalue()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for m in members:
            tinfo = tarfile.TarInfo(m.name)
            tinfo.size = len(m.data)
            tinfo.mtime = BASE_MTIME
            tinfo.mode = 0o644
            tf.addfile(tinfo, io.BytesIO(m.data))
    data = buf.getvalue()
    # mtime=0 and no file name in the gzip header: same input, same bytes.
    return gzip.compress(data, compresslevel=6, mtime=0) if fmt == "tar.gz" else data


def archive_member(name: str, fmt: ArchiveFormat, children: Sequence[Member], note: str = "") -> Member:
    """A member that is itself an archive of `children`."""
    return Member(name, pack_archive(fmt, children), "hashed", "archive", note, tuple(children))


def claims_media(name: str | bytes) -> bool:
    """Whether a file name's extension says image or video."""
    guess = mimetypes.guess_type(os.fsdecode(name))[0] or ""
    return guess.startswith(("image/", "video/"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class EvidenceBuilder:
    """Writes an evidence tree and records the expected manifest row of everything it writes."""

    def __init__(self, root: str | os.PathLike[str], seed: int) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self.entries: dict[str, ExpectedEntry] = {}
        self.skipped: list[str] = []
        self._order: list[str] = []

    def path_for(self, rel: str | bytes) -> bytes:
        """The filesystem path (bytes) of `rel` under the root, its directories created."""
        raw = os.fsencode(rel)
        path = os.path.join(os.fsencode(self.root), raw)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def record(self, entry: ExpectedEntry) -> None:
        """Add an expected row for something written by other means."""
        if entry.path in self.entries:
            raise ValueError(f"{entry.path!r} written twice")
        self.entries[entry.path] = entry
        self._order.append(entry.path)

    def add_file(self, rel: str | bytes, data: bytes, status: Status = "hashed",
                 media: Media = None, note: str = "") -> str | None:
        """Write a regular file; returns its key, or None where the OS refuses the name.

        Non-media content (`media` None) under a media extension is expected as an error.
        """
        if media is None and status == "hashed" and claims_media(rel):
            status = "error"
        try:
            path = self.path_for(rel)
            with open(path, "xb") as f:
                f.write(data)
        except FileExistsError:
            raise
        except (OSError, UnicodeError):
            self.skipped.append(f"name:{os.fsdecode(rel)!r}")
            return None
        key = os.fsdecode(rel)
        self.record(ExpectedEntry(key, "file", status, media, note, _sha(data), len(data)))
        return key

    def add_existing(self, rel: str, status: Status, media: Media, note: str = "") -> str:
        """Record a file written by someone else (e.g. OpenCV's VideoWriter) under the root."""
        data = Path(self.path_for(rel).decode()).read_bytes()
        self.record(ExpectedEntry(rel, "file", status, media, note, _sha(data), len(data)))
        return rel

    def add_archive(self, rel: str, fmt: ArchiveFormat, members: Sequence[Member], note: str = "") -> str:
        data = pack_archive(fmt, members)
        key = self.add_file(rel, data, "hashed", "archive", note)
        assert key is not None
        self._add_members(key, members)
        return key

    def _add_members(self, prefix: str, members: Sequence[Member]) -> None:
        for m in members:
            key = f"{prefix}!/{m.name}"
            self.record(ExpectedEntry(key, "archive_member", m.status, m.media, m.note,
                                       _sha(m.data), len(m.data)))
            if m.children:
                self._add_members(key, m.children)

    def add_symlink(self, rel: str, target: str, note: str = "") -> str | None:
        try:
            os.symlink(target, self.path_for(rel))
        except FileExistsError:
            raise
        except (OSError, NotImplementedError):
            self.skipped.append(f"symlink:{rel}")
            return None
        self.record(ExpectedEntry(rel, "symlink", "skipped", None, note, link_target=target))
        return rel

    def add_fifo(self, rel: str, note: str = "") -> str | None:
        mkfifo = getattr(os, "mkfifo", None)
        if mkfifo is None:
            self.skipped.append("fifo")
            return None
        try:
            mkfifo(self.path_for(rel))
        except FileExistsError:
            raise
        except OSError:
            self.skipped.append("fifo")
            return None
        self.record(ExpectedEntry(rel, "special", "skipped", None, note))
        return rel

    def finish(self) -> EvidenceSpec:
        """Fix every mtime (files, links, then directories deepest first) and return the spec."""
        root = os.fsencode(self.root)
        for i, key in enumerate(sorted(k for k in self._order if "!/" not in k)):
            t = BASE_MTIME + 3600 * (i + 1)
            os.utime(os.path.join(root, os.fsencode(key)), (t, t), follow_symlinks=False)
        dirs = sorted((d for d, _, _ in os.walk(root)), key=lambda d: (-d.count(b"/"), d))
        for d in dirs:
            if not stat.S_ISLNK(os.lstat(d).st_mode):
                os.utime(d, (BASE_MTIME, BASE_MTIME))
        return EvidenceSpec(str(self.root), dict(self.entries), tuple(self.skipped))


def image_bytes(rng: np.random.Generator, recipe: str, size: tuple[int, int], flat: bool = False) -> bytes:
    """Encoded bytes of one synthetic image in the named photos.RECIPES recipe."""
    rgb = make_flat(rng, *size) if flat else make_photo(rng, *size)
    return encode(rgb, RECIPES[recipe], rng)[0]


def truncate(data: bytes, fraction: float) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


def corrupt_body(data: bytes, rng: np.random.Generator, keep: int = 64) -> bytes:
    """Keep the header (so it still sniffs as media), replace the rest with random bytes."""
    return data[:keep] + rng.bytes(max(0, len(data) - keep))


_DIRS = (
    "DCIM/100CAMERA", "DCIM/101CAMERA", "Users/alice/Pictures/holiday 2020",
    "Users/alice/Downloads", "Users/bob/Documents/scans", "phone_dump/WhatsApp/Media/Images",
    "a/b/c/d/e/f/g/h",
)


def make_evidence(
    out_dir: str | os.PathLike[str],
    seed: int,
    n_images: int = 24,
    n_videos: int = 2,
    sizes: Sequence[tuple[int, int]] = EVIDENCE_SIZES,
    video_seconds: float = 3.0,
    video_fps: float = 5.0,
    video_size: tuple[int, int] = (160, 120),
) -> EvidenceSpec:
    """Build an evidence folder at `out_dir` with every awkward case; see the module docstring."""
    b = EvidenceBuilder(out_dir, seed)
    rng = np.random.default_rng([seed, 101])
    images: list[tuple[str, bytes]] = []
    for i in range(n_images):
        recipe = EVIDENCE_RECIPES[i % len(EVIDENCE_RECIPES)]
        flat = i % 12 == 11
        irng = np.random.default_rng([seed, 102, i])
        data = image_bytes(irng, recipe, sizes[i % len(sizes)], flat)
        ext = RECIPES[recipe].ext
        rel = f"{_DIRS[i % len(_DIRS)]}/IMG_{1000 + i}.{ext}"
        b.add_file(rel, data, "hashed", "image", f"{recipe}{' flat' if flat else ''}")
        images.append((rel, data))

    for j in range(n_videos):
        vrel = f"Users/alice/Videos/clip_{j}.{'mp4' if j % 2 == 0 else 'avi'}"
        path = b.path_for(vrel).decode()
        make_video(np.random.default_rng([seed, 103, j]), path, video_seconds, video_fps, video_size)
        b.add_existing(vrel, "hashed", "video", "synthetic pans")

    # Exact duplicates under other names and in other folders.
    for k, (rel, data) in enumerate(images[: max(1, n_images // 6)]):
        b.add_file(f"backup/old_phone/copy_{k}_{Path(rel).name}", data, "hashed", "image", f"duplicate of {rel}")
    if images:
        b.add_file("Users/bob/Documents/invoice.txt", images[0][1], "hashed", "image", "JPEG named .txt")
    b.add_file("Users/alice/Pictures/notes.jpg", b"shopping list\nmilk\neggs\n", "error", None,
               "text named .jpg")

    # Corrupt, truncated and empty files.
    jpeg = image_bytes(np.random.default_rng([seed, 104]), "jpeg", (320, 240))
    png = image_bytes(np.random.default_rng([seed, 105]), "png_rgb", (320, 240))
    b.add_file("damaged/truncated.jpg", truncate(jpeg, 0.4), "error", "image", "JPEG cut at 40%")
    b.add_file("damaged/truncated.png", truncate(png, 0.5), "error", "image", "PNG cut at 50%")
    b.add_file("damaged/corrupt.jpg", corrupt_body(jpeg, rng), "error", "image", "JPEG header, random body")
    b.add_file("damaged/empty.jpg", b"", "error", None, "empty file with an image extension")
    b.add_file("damaged/empty", b"", "hashed", None, "empty file")

    # Non-media files.
    b.add_file("Users/bob/Documents/readme.txt", b"Nothing to see here.\n" * 20, "hashed", None, "text")
    b.add_file("Users/bob/Documents/report.pdf", _pdf_like(), "hashed", None, "PDF-like")
    b.add_file("Users/bob/Documents/data.bin", rng.bytes(4096), "hashed", None, "random bytes")
    b.add_file("Users/bob/.hidden_config", b"[core]\nkey=value\n", "hashed", None, "hidden dotfile")

    # Archives, nested both ways.
    arng = np.random.default_rng([seed, 106])
    a1 = image_bytes(arng, "jpeg", (320, 240))
    a2 = image_bytes(arng, "png_rgb", (200, 150))
    a3 = image_bytes(arng, "webp", (240, 320))
    a4 = image_bytes(arng, "jpeg", (160, 120))
    zip_members = [
        Member("holiday/beach.jpg", a1, media="image", note="zip member"),
        Member("holiday/sunset.png", a2, media="image", note="zip member"),
        Member("readme.txt", b"archive readme\n", note="text member"),
        Member("broken.jpg", truncate(a1, 0.3), "error", "image", "truncated member"),
    ]
    b.add_archive("Users/alice/Downloads/photos.zip", "zip", zip_members, "zip")
    tar_members = [Member("scan_001.webp", a3, media="image"), Member("docs/list.txt", b"a\nb\n")]
    b.add_archive("backup/backup.tar", "tar", tar_members, "tar")
    b.add_archive("backup/backup.tar.gz", "tar.gz",
                  [Member("img/x.jpg", a4, media="image"), Member("img/y.webp", a3, media="image",
                                                                  note="same bytes as backup.tar member")],
                  "tar.gz")
    inner_tar = archive_member("inner.tar", "tar", [Member("x.jpg", a4, media="image")], "tar in zip")
    b.add_archive("outer.zip", "zip", [inner_tar, Member("top.png", a2, media="image")], "zip with a tar inside")
    inner_zip = archive_member("nested/inner.zip", "zip", [Member("deep/y.jpg", a1, media="image")],
                               "zip in tar.gz")
    b.add_archive("phone_dump/export.tar.gz", "tar.gz", [inner_zip], "tar.gz with a zip inside")

    # Links and a FIFO: recorded, never followed or opened.
    if images:
        first = images[0][0]
        depth = "Users/alice/Pictures".count("/") + 1
        b.add_symlink("Users/alice/Pictures/link_to_photo.jpg", "../" * depth + first, "link to a file")
    b.add_symlink("Users/alice/Pictures/dangling.jpg", "does/not/exist.jpg", "dangling link")
    b.add_symlink("loops/loop_a", "loop_b", "link loop")
    b.add_symlink("loops/loop_b", "loop_a", "link loop")
    b.add_symlink("loops/self_dir", ".", "link to its own directory")
    b.add_fifo("pipes/evidence.fifo", "named pipe")

    # Odd names: non-UTF-8 bytes, a newline, a leading '=', spaces and non-ASCII.
    odd = image_bytes(np.random.default_rng([seed, 107]), "jpeg", (160, 120))
    b.add_file(b"odd names/caf\xe9_latin1.jpg", odd, "hashed", "image", "non-UTF-8 name")
    b.add_file("odd names/new\nline.jpg", odd, "hashed", "image", "newline in name")
    b.add_file("odd names/=HYPERLINK(\"x\").jpg", odd, "hashed", "image", "leading '='")
    b.add_file("odd names/ space and ünïcödé 写真.jpg", odd, "hashed", "image", "spaces and non-ASCII")
    b.add_file("odd names/-starts-with-dash.jpg", odd, "hashed", "image", "leading '-'")
    return b.finish()


def _pdf_like() -> bytes:
    """A tiny valid PDF without pictures: non-media by content, a common evidence file type.

    Its cross-reference table is right, so a scan reads it as a document with no pictures
    (no rows of its own), not as a damaged one."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer << /Root 1 0 R /Size %d >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out
