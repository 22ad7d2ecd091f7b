"""Media type by content: real files written by Pillow, OpenCV and the stdlib archivers,
hand-built headers for the rest, and bytes that only look like media."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from hashing.sniff import SNIFF_BYTES, MediaKind, sniff


def _image_bytes(fmt: str, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mode", "expected"),
    [
        ("JPEG", "RGB", "image/jpeg"),
        ("PNG", "RGBA", "image/png"),
        ("GIF", "P", "image/gif"),
        ("WEBP", "RGB", "image/webp"),
        ("BMP", "RGB", "image/bmp"),
        ("TIFF", "RGB", "image/tiff"),
        ("ICO", "RGBA", "image/x-icon"),
        ("PPM", "RGB", "image/x-portable-anymap"),
        ("PPM", "L", "image/x-portable-anymap"),
        ("JPEG2000", "RGB", "image/jp2"),
        ("QOI", "RGB", "image/qoi"),
    ],
)
def test_images_written_by_pillow(fmt: str, mode: str, expected: str) -> None:
    assert sniff(_image_bytes(fmt, mode)[:SNIFF_BYTES]) == MediaKind(expected, "image")


def test_avif_written_by_pillow() -> None:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF encoder")
    assert sniff(_image_bytes("AVIF")) == MediaKind("image/avif", "image")


def test_heic_brand() -> None:
    head = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 40
    assert sniff(head) == MediaKind("image/heic", "image")


@pytest.mark.parametrize(
    ("fourcc", "suffix", "expected"),
    [("mp4v", ".mp4", "video/mp4"), ("MJPG", ".avi", "video/x-msvideo")],
)
def test_videos_written_by_opencv(tmp_path, fourcc: str, suffix: str, expected: str) -> None:
    path = str(tmp_path / f"v{suffix}")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 5, (32, 32))
    for i in range(3):
        w.write(np.full((32, 32, 3), i * 40, np.uint8))
    w.release()
    with open(path, "rb") as f:
        assert sniff(f.read(SNIFF_BYTES)) == MediaKind(expected, "video")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "video/quicktime"),
        (b"\x00\x00\x00\x08wide\x00\x00\x10\x00mdat", "video/quicktime"),
        (b"\x00\x00\x00\x14ftyp3gp5\x00\x00\x00\x00isom", "video/3gpp"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4"),
        (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\x82\x84webm", "video/webm"),
        (b"\x1aE\xdf\xa3\xa3B\x86\x81\x01B\x82\x88matroska", "video/x-matroska"),
        (b"FLV\x01\x05\x00\x00\x00\x09", "video/x-flv"),
        (b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01", "video/mpeg"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "video/x-msvideo"),
        ((b"\x47\x40\x00\x10" + b"\xff" * 184) * 3, "video/mp2t"),
    ],
)
def test_video_headers(head: bytes, expected: str) -> None:
    assert sniff(head) == MediaKind(expected, "video")


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("a.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "abc")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_zip(), "application/zip"),
        (_tar(), "application/x-tar"),
        (gzip.compress(b"x"), "application/gzip"),
        (bz2.compress(b"x"), "application/x-bzip2"),
        (lzma.compress(b"x"), "application/x-xz"),
        (b"7z\xbc\xaf'\x1c\x00\x04" + b"\x00" * 24, "application/x-7z-compressed"),
        (b"Rar!\x1a\x07\x01\x00" + b"\x00" * 24, "application/vnd.rar"),
    ],
    ids=["zip", "tar", "gzip", "bzip2", "xz", "7z", "rar"],  # gzip bytes hold a timestamp
)
def test_archives(data: bytes, expected: str) -> None:
    assert sniff(data[:SNIFF_BYTES]) == MediaKind(expected, "archive")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is a text file pretending to be a .jpg\n" * 20,
        b"\x47" + b"\x00" * 400,  # one TS sync byte is not a transport stream
        b"BM" + b"\x00" * 40,  # "BM" text without a DIB header size
        b"RIFF\x00\x00\x00\x00WAVEfmt ",  # RIFF but audio
        b"\x00\x00\x01\x00\x00\x00",  # ICO with zero images
        b"P9 not a pixmap",
        _image_bytes("TGA"),  # no signature: never claimed from content alone
        np.random.default_rng(7).integers(1, 255, 4096, dtype=np.uint8).tobytes()[:SNIFF_BYTES],
    ],
    ids=["empty", "text", "ts-sync-once", "bm-text", "riff-wave", "ico-empty", "p9", "tga",
         "random"],
)
def test_not_media(data: bytes) -> None:
    assert sniff(data) == MediaKind(None, "other")


def test_extension_is_ignored_content_decides() -> None:
    # the sniffer never sees a name; a JPEG is a JPEG whatever it is called
    assert sniff(_image_bytes("JPEG")).media_type == "image/jpeg"
