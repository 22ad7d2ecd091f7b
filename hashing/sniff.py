"""Media type by magic bytes: what a file *is*, never what its extension claims.

Evidence is routinely renamed (a JPEG saved as `.txt`, a video as `.dat`), so every decision
about how to decode a file starts from its first bytes. Only the head is needed
(`SNIFF_BYTES`); nothing here decodes. Python's `imghdr` is gone since 3.13 and `mimetypes`
looks at names only, hence this small table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["image", "video", "archive", "other"]

# tar's "ustar" magic sits at offset 257 and an MPEG transport stream's third sync byte at 376.
SNIFF_BYTES = 512


@dataclass(frozen=True, slots=True)
class MediaKind:
    """What the head of a file says it is: a MIME type (None if unknown) and its family."""

    media_type: str | None
    family: Family


OTHER = MediaKind(None, "other")

# Fixed-prefix signatures, checked in order (longer and more specific first).
_PREFIXES: tuple[tuple[bytes, str, Family], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "image"),
    (b"\xff\xd8\xff", "image/jpeg", "image"),
    (b"GIF87a", "image/gif", "image"),
    (b"GIF89a", "image/gif", "image"),
    (b"II*\x00", "image/tiff", "image"),
    (b"MM\x00*", "image/tiff", "image"),
    (b"II+\x00", "image/tiff", "image"),  # BigTIFF
    (b"MM\x00+", "image/tiff", "image"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "image/jp2", "image"),  # JPEG 2000 (JP2 box)
    (b"\xffO\xffQ", "image/jp2", "image"),  # JPEG 2000 codestream
    (b"8BPS\x00\x01", "image/vnd.adobe.photoshop", "image"),
    (b"qoif", "image/qoi", "image"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "image/jxl", "image"),  # JPEG XL container
    (b"\xff\x0a", "image/jxl", "image"),  # JPEG XL codestream
    (b"icns", "image/icns", "image"),
    (b"\x1aE\xdf\xa3", "video/x-matroska", "video"),  # EBML; WebM refined below
    (b"FLV\x01", "video/x-flv", "video"),
    (b"\x00\x00\x01\xba", "video/mpeg", "video"),  # MPEG program stream pack header
    (b"\x00\x00\x01\xb3", "video/mpeg", "video"),  # MPEG-1/2 elementary video sequence
    (b"0&\xb2u\x8ef\xcf\x11", "video/x-ms-asf", "video"),  # ASF / WMV
    (b"PK\x03\x04", "application/zip", "archive"),
    (b"PK\x05\x06", "application/zip", "archive"),  # empty zip
    (b"PK\x07\x08", "application/zip", "archive"),  # spanned zip
    (b"\x1f\x8b", "application/gzip", "archive"),
    (b"BZh", "application/x-bzip2", "archive"),
    (b"\xfd7zXZ\x00", "application/x-xz", "archive"),
    (b"7z\xbc\xaf'\x1c", "application/x-7z-compressed", "archive"),
    (b"Rar!\x1a\x07", "application/vnd.rar", "archive"),
    (b"(\xb5/\xfd", "application/zstd", "archive"),
)

# ISO base media file format brands (the 4 bytes after "ftyp").
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
# QuickTime files may start with any top-level atom instead of ftyp.
_QT_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
# BITMAPINFOHEADER and its variants: the size field that follows BMP's 14-byte file header.
_BMP_DIB_SIZES = {12, 40, 52, 56, 64, 108, 124}


def _ftyp(head: bytes) -> MediaKind | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        if len(head) >= 8 and head[4:8] in _QT_ATOMS:
            return MediaKind("video/quicktime", "video")
        return None
    major = head[8:12]
    box_size = int.from_bytes(head[0:4], "big")
    # compatible brands follow the minor version; they decide HEIF vs video when major is generic
    brands = {major} | {
        head[i : i + 4] for i in range(16, min(box_size, len(head)) - 3, 4)
    }
    if major in _AVIF_BRANDS:
        return MediaKind("image/avif", "image")
    if major in _HEIF_BRANDS:
        return MediaKind("image/heic", "image")
    if major == b"qt  ":
        return MediaKind("video/quicktime", "video")
    if major.startswith(b"3gp"):
        return MediaKind("video/3gpp", "video")
    if major.startswith(b"3g2"):
        return MediaKind("video/3gpp2", "video")
    if brands & _AVIF_BRANDS and not brands & {b"isom", b"mp41", b"mp42"}:
        return MediaKind("image/avif", "image")
    return MediaKind("video/mp4", "video")


def _riff(head: bytes) -> MediaKind | None:
    if len(head) < 12 or head[:4] != b"RIFF":
        return None
    form = head[8:12]
    if form == b"WEBP":
        return MediaKind("image/webp", "image")
    if form == b"AVI ":
        return MediaKind("video/x-msvideo", "video")
    return None


def _mpeg_ts(head: bytes) -> bool:
    # 188-byte packets each starting with the 0x47 sync byte; one byte alone is too weak.
    if len(head) < 189 or head[0] != 0x47:
        return False
    return all(head[i] == 0x47 for i in range(188, len(head), 188))


def sniff(head: bytes) -> MediaKind:
    """Classify a file by its first bytes (pass at least `SNIFF_BYTES` when available)."""
    for magic, media_type, family in _PREFIXES:
        if head.startswith(magic):
            if media_type == "video/x-matroska" and b"webm" in head[:64]:
                return MediaKind("video/webm", "video")
            return MediaKind(media_type, family)
    for probe in (_ftyp, _riff):
        found = probe(head)
        if found is not None:
            return found
    if head[:2] == b"BM" and len(head) >= 18:
        if int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
            return MediaKind("image/bmp", "image")
    if head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") and len(head) >= 6:
        if int.from_bytes(head[4:6], "little") > 0:
            kind = "image/x-icon" if head[2] == 1 else "image/x-win-bitmap"
            return MediaKind(kind, "image")
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"1234567" and head[1:2] \
            and head[2:3] in (b" ", b"\t", b"\r", b"\n"):
        return MediaKind("image/x-portable-anymap", "image")  # PBM/PGM/PPM/PAM
    if _mpeg_ts(head):
        return MediaKind("video/mp2t", "video")
    if len(head) >= 262 and head[257:262] == b"ustar":
        return MediaKind("application/x-tar", "archive")
    return OTHER
