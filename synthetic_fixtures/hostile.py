"""Hostile media and archives, each with the outcome a robust scan must give.

Evidence comes from adversaries and broken devices: truncated and corrupt images of every
format, random bytes and empty files behind media extensions, decompression bombs (a PNG and
a GIF declaring billions of pixels, a GIF with thousands of frames), unusual pixel modes,
odd EXIF, a truncated video, zip bombs (high ratio, deep nesting), members named `../x` or
`/abs`, symlink/hardlink/FIFO/device members, an encrypted zip member, truncated and corrupt
archives, a directory tree deeper than the walk limit, and optionally a sparse multi-GB file.

`write_hostile` returns a `HostileSpec`: the regular `EvidenceSpec` rows (every path on disk,
and archive members where the outcome per member is certain), plus `HostileCase`s for the
things whose exact rows depend on the scanner's limits: "some row at or under this label has
one of these statuses, and its reason contains this keyword".
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from hashing.types import Status
from synthetic_fixtures.evidence import (
    BASE_MTIME,
    ZIP_DATE,
    EvidenceBuilder,
    EvidenceSpec,
    ExpectedEntry,
    Member,
    corrupt_body,
    image_bytes,
    pack_archive,
    truncate,
)
from synthetic_fixtures.photos import make_photo
from synthetic_fixtures.videos import make_video

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class HostileCase:
    """`scope="row"`: the row with exactly `path`; `scope="under"`: at least one row whose path
    starts with `path` (an archive's `A!/` label or a directory prefix)."""

    path: str
    scope: Literal["row", "under"]
    statuses: tuple[Status, ...]
    reason: str | None  # lower-case keyword the row's reason or error should contain
    note: str


@dataclass(frozen=True, slots=True)
class HostileSpec:
    root: str
    evidence: EvidenceSpec
    cases: list[HostileCase]


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def png_pixel_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG whose header declares width x height RGB pixels; only one row is stored."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" * (1 + 3 * width), 9)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", row)
            + _png_chunk(b"IEND", b""))


def gif_canvas_bomb() -> bytes:
    """A GIF with a 65535 x 65535 logical screen holding a single 1 x 1 image."""
    buf = io.BytesIO()
    Image.new("P", (1, 1)).save(buf, "GIF")
    data = bytearray(buf.getvalue())
    data[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen width/height
    return bytes(data)


def gif_frame_bomb(rng: np.random.Generator, frames: int = 2000, size: int = 16) -> bytes:
    """A small animated GIF with thousands of (distinct) frames."""
    base = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
    imgs = []
    for k in range(frames):
        a = base.copy()
        a[k % size, (k // size) % size] ^= 0xFF  # one pixel differs, so frames are not merged
        imgs.append(Image.fromarray(a, "L").convert("P"))
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=20, loop=0)
    return buf.getvalue()


def gif_of_many_frames(frames: int = 100_000) -> bytes:
    """A 1 x 1 GIF of `frames` frames (10^5 by default), written block by block.

    Pillow's writer would hold every frame as an image; the repeated 19-byte block (graphic
    control extension, image descriptor, 3-bit LZW data: clear, pixel 0, end) is the same GIF.
    """
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = (b"\x21\xf9\x04\x00\x02\x00\x00\x00"  # 20 ms per frame
             + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
             + b"\x02\x02\x44\x01\x00")
    return header + loop + frame * frames + b"\x3b"


def _encoded(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _mode_zoo(rng: np.random.Generator) -> dict[str, bytes]:
    rgb = Image.fromarray(make_photo(rng, 160, 120))
    pa = rgb.quantize(64)
    pa.info["transparency"] = 0
    exif = Image.Exif()
    exif[0x0112] = 9  # outside 1-8: must be treated as "no rotation", not a crash
    rot = Image.Exif()
    rot[0x0112] = 6
    arr16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype("<u2")
    return {
        "cmyk.jpg": _encoded(rgb.convert("CMYK"), "JPEG", quality=90),
        "gray16.png": _encoded(Image.frombytes("I;16", rgb.size, arr16.tobytes()), "PNG"),
        "palette_alpha.png": _encoded(pa, "PNG"),
        "la.png": _encoded(rgb.convert("LA"), "PNG"),
        "bilevel.png": _encoded(rgb.convert("1"), "PNG"),
        "rgba.webp": _encoded(rgb.convert("RGBA"), "WEBP", quality=80),
        "exif_rot6.jpg": _encoded(rgb, "JPEG", quality=90, exif=rot.tobytes()),
        "exif_orientation9.jpg": _encoded(rgb, "JPEG", quality=90, exif=exif.tobytes()),
        "ycbcr.tif": _encoded(rgb.convert("YCbCr").convert("RGB"), "TIFF", compression="jpeg"),
    }


def zip_ratio_bomb(uncompressed: int = 64 * MiB) -> bytes:
    """One member of `uncompressed` zero bytes: deflate packs it about 1000:1."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("zeros.bin", date_time=ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        chunk = bytes(MiB)
        with zf.open(info, "w", force_zip64=uncompressed > 2 * GiB) as f:
            for _ in range(uncompressed // MiB):
                f.write(chunk)
    return buf.getvalue()


def zip_nested(depth: int, payload: bytes) -> bytes:
    """`payload` as x.jpg inside `depth` zips nested in each other."""
    data = pack_archive("zip", [Member("x.jpg", payload)])
    for level in range(depth - 1):
        data = pack_archive("zip", [Member(f"level{depth - 1 - level}.zip", data)])
    return data


def encrypt_flag_zip(name: str, payload: bytes) -> bytes:
    """A zip whose only member has the 'encrypted' flag (bit 0) set in both headers.

    `zipfile` cannot write encrypted members; setting the flag is enough for readers to
    refuse the member, which is what a scan must report.
    """
    data = bytearray(pack_archive("zip", [Member(name, payload)]))
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 6] |= 0x01  # general purpose flag, local file header
    data[central + 8] |= 0x01  # general purpose flag, central directory header
    return bytes(data)


SPECIAL_TAR_MEMBERS: tuple[tuple[str, bytes, str], ...] = (
    ("evil_link", tarfile.SYMTYPE, "/etc/passwd"),
    ("hard_link", tarfile.LNKTYPE, "ok.txt"),
    ("pipe", tarfile.FIFOTYPE, ""),
    ("tty", tarfile.CHRTYPE, ""),
)


def tar_with_special_members() -> bytes:
    """A tar holding one regular file plus a symlink, a hardlink, a FIFO and a device member.

    Extracting such an archive naively writes through the symlink or creates device nodes; a
    scan must record these members and read none of them.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        ok = tarfile.TarInfo("ok.txt")
        ok.size, ok.mtime, ok.mode = 5, BASE_MTIME, 0o644
        tf.addfile(ok, io.BytesIO(b"fine\n"))
        for name, kind, target in SPECIAL_TAR_MEMBERS:
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname, ti.mtime, ti.mode = kind, target, BASE_MTIME, 0o644
            if kind == tarfile.CHRTYPE:
                ti.devmajor, ti.devminor = 4, 1
            tf.addfile(ti)
    return buf.getvalue()


def zip_with_symlink_member(name: str, target: str) -> bytes:
    """A zip whose member is a Unix symlink (mode in the external attributes, target as data)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.create_system = 3  # Unix, so readers look at the mode bits
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return buf.getvalue()


def write_hostile(
    out_dir: str | os.PathLike[str],
    seed: int,
    bomb_bytes: int = 64 * MiB,
    deep_dirs: int = 300,
    sparse_bytes: int = 0,
) -> HostileSpec:
    """Write the hostile collection at `out_dir`. `sparse_bytes` > 0 adds a sparse file that size."""
    b = EvidenceBuilder(out_dir, seed)
    rng = np.random.default_rng([seed, 900])
    cases: list[HostileCase] = []

    def case(path: str | None, statuses: tuple[Status, ...], reason: str | None, note: str,
             scope: Literal["row", "under"] = "row") -> None:
        if path is not None:
            cases.append(HostileCase(path, scope, statuses, reason, note))

    # Truncated and corrupt images, one per format.
    for recipe, ext, keyword in (("jpeg", "jpg", "truncat"), ("png_rgb", "png", "truncat"),
                                 ("gif", "gif", "truncat"), ("webp", "webp", None),
                                 ("tiff", "tif", None), ("bmp", "bmp", "truncat")):
        data = image_bytes(np.random.default_rng([seed, 901, len(cases)]), recipe, (200, 150))
        note = f"{recipe} cut at 50%"
        case(b.add_file(f"truncated/{recipe}.{ext}", truncate(data, 0.5), "error", "image", note),
             ("error",), keyword, note)
        note = f"{recipe} header, random body"
        case(b.add_file(f"corrupt/{recipe}.{ext}", corrupt_body(data, rng, keep=16), "error", "image",
                        note), ("error",), None, note)

    # Not media at all, whatever the extension says.
    # The name claims media that is not there: an error row (digests still computed).
    for ext in ("jpg", "png", "mp4", "gif"):
        case(b.add_file(f"fake/empty.{ext}", b"", "error", None, "zero bytes"), ("error",), None,
             "zero bytes with a media extension")
        case(b.add_file(f"fake/random.{ext}", rng.bytes(4096), "error", None, "random bytes"),
             ("error",), None, "random bytes with a media extension")
    case(b.add_file("fake/random.dat", rng.bytes(4096), "hashed", None, "random bytes"),
         ("hashed",), None, "random bytes, no media claim: digests only")

    # Decompression bombs.
    case(b.add_file("bombs/pixels.png", png_pixel_bomb(), "error", "image", "PNG declaring 10^10 pixels"),
         ("error",), "pixel", "PNG header declares 100000 x 100000")
    case(b.add_file("bombs/canvas.gif", gif_canvas_bomb(), "error", "image", "GIF 65535^2 canvas"),
         ("error",), "pixel", "GIF logical screen 65535 x 65535")
    case(b.add_file("bombs/frames.gif", gif_frame_bomb(rng), "hashed", "image", "GIF with 2000 frames"),
         ("hashed",), None, "2000 frames: hash the first, never decode all into memory")

    # Unusual but valid modes and EXIF.
    for name, data in _mode_zoo(np.random.default_rng([seed, 902])).items():
        case(b.add_file(f"modes/{name}", data, "hashed", "image", name), ("hashed",), None, name)

    # A truncated video is an error row: an mp4 without its index cannot be opened at all; an
    # AVI still yields the frames before the cut, and the row says it is truncated.
    for ext in ("mp4", "avi"):
        rel = f"video/truncated.{ext}"
        full = b.path_for(rel).decode()
        make_video(np.random.default_rng([seed, 903]), full, seconds=3, fps=5, size=(160, 120))
        data = Path(full).read_bytes()
        os.remove(full)
        ok = ext == "avi"
        note = "AVI cut at 50%: the frames before the cut" if ok else "mp4 cut at 50%: no moov atom"
        case(b.add_file(rel, truncate(data, 0.5), "error", "video", note), ("error",),
             "truncat" if ok else None, note)

    # Archives: bombs, nesting, path tricks, encryption, truncation, corruption.
    b.add_file("archives/ratio_bomb.zip", zip_ratio_bomb(bomb_bytes), "hashed", "archive", "zip bomb")
    case("archives/ratio_bomb.zip!/", ("error", "skipped"), "ratio",
         "a row under the archive label names the expansion ratio (~1000:1)", "under")
    payload = image_bytes(np.random.default_rng([seed, 904]), "jpeg", (64, 48))
    b.add_file("archives/nested8.zip", zip_nested(8, payload), "hashed", "archive", "8 nested zips")
    case("archives/nested8.zip!/", ("error", "skipped"), "depth",
         "nesting stops at the depth limit with a row that says so", "under")
    trick = [Member("../../escape.jpg", payload, media="image", note="parent-directory member name"),
             Member("/etc/abs.jpg", payload, media="image", note="absolute member name"),
             Member("ok/inside.txt", b"fine\n")]
    b.add_archive("archives/traversal.zip", "zip", trick, "zip slip")
    b.add_archive("archives/traversal.tar", "tar", trick, "tar slip")
    key = b.add_file("archives/encrypted.zip", encrypt_flag_zip("secret.jpg", payload), "hashed",
                     "archive", "encrypted member")
    if key is not None:
        b.record(ExpectedEntry(f"{key}!/secret.jpg", "archive_member", "error", "image",
                                "encrypted member"))
        case(f"{key}!/secret.jpg", ("error",), "encrypt", "encrypted zip member")
    key = b.add_file("archives/special_members.tar", tar_with_special_members(), "hashed", "archive",
                     "tar with symlink, hardlink, FIFO and device members")
    if key is not None:
        b.record(ExpectedEntry(f"{key}!/ok.txt", "archive_member", "hashed", None, "regular member",
                               hashlib.sha256(b"fine\n").hexdigest(), 5))
        for name, _, _ in SPECIAL_TAR_MEMBERS:
            b.record(ExpectedEntry(f"{key}!/{name}", "archive_member", "skipped", None,
                                   "special tar member: recorded, never read or followed"))
            case(f"{key}!/{name}", ("skipped",), None, "special tar member")
    key = b.add_file("archives/symlink_member.zip", zip_with_symlink_member("evil", "/etc/shadow"),
                     "hashed", "archive", "zip with a Unix symlink member")
    if key is not None:
        b.record(ExpectedEntry(f"{key}!/evil", "archive_member", "skipped", None,
                               "zip symlink member: recorded, never followed"))
        case(f"{key}!/evil", ("skipped",), "symlink", "zip symlink member")
    good = pack_archive("zip", [Member(f"img{k}.jpg", payload) for k in range(4)])
    b.add_file("archives/truncated.zip", truncate(good, 0.6), "hashed", "archive", "zip cut at 60%")
    case("archives/truncated.zip!/", ("error",), None, "a truncated zip gives an error row", "under")
    tgz = pack_archive("tar.gz", [Member(f"img{k}.jpg", payload) for k in range(4)])
    b.add_file("archives/truncated.tar.gz", truncate(tgz, 0.5), "hashed", "archive", "tar.gz cut at 50%")
    case("archives/truncated.tar.gz!/", ("error",), None, "a truncated tar.gz gives an error row", "under")
    b.add_file("archives/corrupt.zip", b"PK\x03\x04" + rng.bytes(2000), "hashed", "archive",
               "zip magic, random body")
    case("archives/corrupt.zip!/", ("error",), None, "a corrupt zip gives an error row", "under")

    # A directory tree deeper than the walk's limit (256 levels by default). Its file is not
    # an entry: a scan cannot reach it, and says so in a row at the limit instead.
    if deep_dirs > 0:
        path = b.path_for("/".join(["d"] * deep_dirs) + "/bottom.txt")
        Path(os.fsdecode(path)).write_bytes(b"bottom\n")
        case("d/", ("error", "skipped"), "depth", "the walk stops at its depth limit", "under")

    # A sparse multi-GB file: cheap on disk, expensive to read; digests must stream.
    if sparse_bytes > 0:
        rel = "sparse/disk_image.dd"
        path = b.path_for(rel)
        with open(path, "wb") as f:
            f.truncate(sparse_bytes)
        b.record(ExpectedEntry(rel, "file", "hashed", None, "sparse file of zeros", None, sparse_bytes))
        case(rel, ("hashed",), None, "sparse multi-GB file of zeros")

    evidence = b.finish()
    return HostileSpec(str(out_dir), evidence, cases)
