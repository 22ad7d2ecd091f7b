"""Evidence as it is seized: known pictures planted where phones, shares and documents keep them.

`make_seized` writes an evidence folder and a bank list. Known pictures are planted
byte-identical (found by MD5) or re-encoded (found by PDQ) inside every container and decoder
the scan reads beyond plain files and zip/tar: HEIC, AVIF and JPEG XL photos; 7z and RAR
archives; a PDF (an embedded JPEG kept as is, and a picture as a Flate stream); Office Open
XML, ODF and EPUB (zips); a legacy OLE presentation; animated GIF/WebP/APNG with the known
picture on a later frame and a multi-page TIFF with it on page 2. Encrypted 7z and RAR
archives are planted too: those must be on the attention list, never pass as clean.

Also planted: a tar.zst and a zip with Zstandard members, and a PDF drawing pictures as inline
images (`BI ... ID ... EI`).

Every byte is generated. Writers: Pillow, pillow-heif and pillow-jxl-plugin (images), py7zr
(7z), `synthetic_fixtures.rar` (RAR 4 and 5, stored), backports.zstd's tarfile and zipfile
(zstd), pikepdf (PDF), zipfile (OOXML, ODF, EPUB) and
GNOME's `gsf createole` (OLE; Debian package libgsf-bin, installed by
scripts/ensure_fixture_tools.sh), since no Python library writes a new compound file.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from synthetic_fixtures.photos import make_photo
from synthetic_fixtures.rar import RarMember, rar4_stored, rar5_stored
from synthetic_fixtures.sevenzip import make_7z

How = Literal["md5", "pdq", "frame"]


@dataclass(frozen=True, slots=True)
class Planted:
    """A known picture at `path` (relative to the evidence root, members after `!/`), which
    the scan must match to bank entry `entry`: by digest, by PDQ, or by PDQ on one frame
    (`frame` is the reason's label then, e.g. "page 2")."""

    path: str
    entry: str
    how: How
    container: str
    frame: str | None = None


@dataclass(frozen=True, slots=True)
class SeizedSpec:
    evidence: Path
    bank_csv: Path
    planted: tuple[Planted, ...]
    encrypted: tuple[str, ...]  # rows that must be attention rows "encrypted: not examined"
    # hostile containers: (row path, keyword of its reason), each an attention row
    hostile: tuple[tuple[str, str], ...] = ()


def _save(rgb: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kw)
    return buf.getvalue()


def _animation(frames: list[np.ndarray], fmt: str, **kw: object) -> bytes:
    imgs = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    imgs[0].save(buf, fmt, save_all=True, append_images=imgs[1:], **kw)
    return buf.getvalue()


def _pdf(jpeg: bytes, rgb: np.ndarray) -> tuple[bytes, int, int]:
    """A one-page PDF showing an embedded JPEG (DCTDecode, as is) and a Flate picture;
    returns (bytes, object number of the JPEG, object number of the Flate image)."""
    import pikepdf
    from pikepdf import Dictionary, Name

    pdf = pikepdf.new()
    h, w = rgb.shape[:2]

    def image(data: bytes, flt: Name) -> pikepdf.Stream:
        s = pikepdf.Stream(pdf, data)
        s.Type, s.Subtype, s.Width, s.Height = Name.XObject, Name.Image, w, h
        s.ColorSpace, s.BitsPerComponent, s.Filter = Name.DeviceRGB, 8, flt
        return s

    jpeg_obj = pdf.make_indirect(image(jpeg, Name.DCTDecode))
    flate_obj = pdf.make_indirect(image(zlib.compress(rgb.tobytes()), Name.FlateDecode))
    page = pdf.add_blank_page(page_size=(2 * w + 30, h + 20))
    page.Resources = Dictionary(XObject=Dictionary(Im1=jpeg_obj, Im2=flate_obj))
    page.Contents = pikepdf.Stream(
        pdf, f"q {w} 0 0 {h} 10 10 cm /Im1 Do Q q {w} 0 0 {h} {w + 20} 10 cm /Im2 Do Q".encode())
    buf = io.BytesIO()
    pdf.save(buf)
    data = buf.getvalue()
    with pikepdf.open(io.BytesIO(data)) as back:  # object numbers as written
        nums = {bytes(o.read_raw_bytes()) == jpeg: o.objgen[0] for o in back.objects
                if isinstance(o, pikepdf.Stream) and o.get("/Subtype") == Name.Image}
    return data, nums[True], nums[False]


def inline_image_pdf(images: list[tuple[bytes, str, int, int]], in_form: bool = False,
                     content_filter: bool = True) -> bytes:
    """A one-page PDF drawing `images` as inline images (`BI ... ID data EI` in the content
    stream), each (data, filter abbreviation such as "DCT" or "Fl", width, height) of 8-bit
    RGB; with `in_form`, drawn from a Form XObject instead of the page's own content."""
    import pikepdf
    from pikepdf import Dictionary, Name

    ops = []
    for k, (data, flt, w, h) in enumerate(images):
        # qpdf finds EI by a delimiter before it; data holding one is rejected here
        assert not re.search(rb"[\s]EI[\s/]", data), "inline data would end early"
        ops.append(b"q %d 0 0 %d %d 10 cm BI /W %d /H %d /CS /RGB /BPC 8 /F /%s ID %s\nEI Q"
                   % (w, h, 10 + k * (w + 10), w, h, flt.encode(), data))
    content = b" ".join(ops)
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(400, 200))
    stream = pikepdf.Stream(pdf, zlib.compress(content) if content_filter else content)
    if content_filter:
        stream.Filter = Name.FlateDecode
    if in_form:
        stream.Type, stream.Subtype, stream.BBox = Name.XObject, Name.Form, [0, 0, 400, 200]
        page.Resources = Dictionary(XObject=Dictionary(Fm0=pdf.make_indirect(stream)))
        page.Contents = pikepdf.Stream(pdf, b"/Fm0 Do")
    else:
        page.Contents = pdf.make_indirect(stream)
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _ole(streams: dict[str, bytes]) -> bytes:
    """An OLE compound file with these root streams, written by `gsf createole`."""
    gsf = shutil.which("gsf")
    if gsf is None:
        raise RuntimeError("gsf not found: install Debian's libgsf-bin "
                           "(bash scripts/ensure_fixture_tools.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, data in streams.items():
            p = Path(tmp) / name
            p.write_bytes(data)
            paths.append(str(p))
        out = Path(tmp) / "out.ole"
        subprocess.run([gsf, "createole", str(out), *paths], check=True, capture_output=True)
        return out.read_bytes()


def office_art_blip(jpeg: bytes) -> bytes:
    """An OfficeArtBlipJPEG record (MS-ODRAW 2.2.27) holding `jpeg` as PowerPoint stores it:
    an 8-byte record header, a 16-byte picture UID, a tag byte, then the JPEG unchanged."""
    body = bytes(range(16)) + b"\xff" + jpeg
    return (0x46A0).to_bytes(2, "little") + (0xF01D).to_bytes(2, "little") + \
        len(body).to_bytes(4, "little") + body


def make_seized(out: Path, seed: int = 13, with_hostile: bool = True) -> SeizedSpec:
    """Write `out/evidence` and `out/bank.csv`; return what the scan must find."""
    rng = np.random.default_rng(seed)
    ev = out / "evidence"
    ev.mkdir(parents=True)
    photos = [make_photo(rng, 160, 120) for _ in range(18)]
    decoys = [make_photo(rng, 160, 120) for _ in range(4)]  # never in the bank
    # drawn after the decoys, so every earlier picture stays what it was
    later = [make_photo(rng, 160, 120) for _ in range(4)]
    bank: list[tuple[str, str, str]] = []  # entry id, md5, pdq
    planted: list[Planted] = []

    def known_md5(entry: str, data: bytes) -> bytes:
        import hashlib

        bank.append((entry, hashlib.md5(data).hexdigest(), ""))
        return data

    def known_pdq(entry: str, rgb: np.ndarray) -> None:
        from hashing.algorithms.pdq import pdq_from_rgb

        bank.append((entry, "", pdq_from_rgb(rgb).hash))

    def put(rel: str, data: bytes) -> None:
        p = ev / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    # phone camera formats, re-encoded: found by PDQ
    for i, (name, fmt) in enumerate((("phone/DCIM/IMG_0001.HEIC", "HEIF"),
                                     ("phone/DCIM/IMG_0002.avif", "AVIF"),
                                     ("phone/DCIM/IMG_0003.jxl", "JXL"))):
        known_pdq(f"K-{fmt}", photos[i])
        put(name, _save(photos[i], fmt, quality=90))
        planted.append(Planted(name, f"K-{fmt}", "pdq", fmt.lower()))

    jpegs = [_save(p, "JPEG", quality=90) for p in photos]
    # 7z: one byte-identical, one re-encoded; RAR: one byte-identical
    known_pdq("K-7Z-EDIT", photos[4])
    put("shared/pack.7z", make_7z({
        "pics/holiday.jpg": known_md5("K-7Z", jpegs[3]),
        "pics/edited.jpg": _save(photos[4], "JPEG", quality=45),
        "readme.txt": b"synthetic\n",
    }))
    planted += [Planted("shared/pack.7z!/pics/holiday.jpg", "K-7Z", "md5", "7z"),
                Planted("shared/pack.7z!/pics/edited.jpg", "K-7Z-EDIT", "pdq", "7z")]
    put("shared/pack.rar", rar4_stored([RarMember("x/known.jpg", known_md5("K-RAR", jpegs[5])),
                                        RarMember("x/other.jpg", _save(decoys[0], "JPEG"))]))
    planted.append(Planted("shared/pack.rar!/x/known.jpg", "K-RAR", "md5", "rar"))
    put("shared/pack5.rar", rar5_stored([RarMember("y/known.jpg", known_md5("K-RAR5", jpegs[0]))]))
    planted.append(Planted("shared/pack5.rar!/y/known.jpg", "K-RAR5", "md5", "rar5"))
    put("shared/locked.7z", make_7z({"secret.jpg": jpegs[6]}, password="synthetic"))
    put("shared/locked.rar", rar4_stored([RarMember("secret.jpg", b"\x00" * 512,
                                                    encrypted=True)]))
    put("shared/locked5.rar", rar5_stored([RarMember("secret.jpg", b"\x00" * 512,
                                                     encrypted=True)]))
    encrypted = ("shared/locked.7z!/secret.jpg", "shared/locked.rar!/secret.jpg",
                 "shared/locked5.rar!/secret.jpg")

    # documents
    known_pdq("K-PDF-FLATE", photos[8])
    pdf, jpeg_obj, flate_obj = _pdf(known_md5("K-PDF-JPEG", jpegs[7]), photos[8])
    put("docs/report.pdf", pdf)
    planted += [Planted(f"docs/report.pdf!/obj{jpeg_obj}.jpg", "K-PDF-JPEG", "md5", "pdf"),
                Planted(f"docs/report.pdf!/obj{flate_obj}.png", "K-PDF-FLATE", "pdq", "pdf")]
    put("docs/letter.docx", _zip({"[Content_Types].xml": b"<Types/>",
                                  "word/document.xml": b"<w:document/>",
                                  "word/media/image1.jpeg": known_md5("K-DOCX", jpegs[9])}))
    put("docs/notes.odt", _zip({"mimetype": b"application/vnd.oasis.opendocument.text",
                                "Pictures/1000.png": known_md5("K-ODT", _save(photos[10], "PNG"))}))
    put("docs/book.epub", _zip({"mimetype": b"application/epub+zip",
                                "OEBPS/images/cover.jpg": known_md5("K-EPUB", jpegs[11])}))
    planted += [Planted("docs/letter.docx!/word/media/image1.jpeg", "K-DOCX", "md5", "ooxml"),
                Planted("docs/notes.odt!/Pictures/1000.png", "K-ODT", "md5", "odf"),
                Planted("docs/book.epub!/OEBPS/images/cover.jpg", "K-EPUB", "md5", "epub")]
    pictures = b"\x00" * 64 + office_art_blip(known_md5("K-OLE", jpegs[12]))
    put("docs/slides.ppt", _ole({"PowerPoint Document": b"\x00" * 600, "Pictures": pictures}))
    planted.append(Planted(f"docs/slides.ppt!/Pictures@{64 + 25}.jpg", "K-OLE", "md5", "ole"))

    # zstd: a tar.zst with a byte-identical picture, a zip with Zstandard members (method
    # 93) holding a re-encoded one; a PDF drawing a JPEG and a Flate picture inline
    from backports.zstd import tarfile as zstd_tarfile
    from backports.zstd import zipfile as zstd_zipfile

    tar = io.BytesIO()
    with zstd_tarfile.open(fileobj=tar, mode="w:zst") as tf:
        member = known_md5("K-TZST", _save(later[0], "JPEG", quality=90))
        info = zstd_tarfile.TarInfo("camera/known.jpg")
        info.size = len(member)
        tf.addfile(info, io.BytesIO(member))
    put("shared/photos.tar.zst", tar.getvalue())
    known_pdq("K-ZIPZST", later[1])
    zz = io.BytesIO()
    with zstd_zipfile.ZipFile(zz, "w", compression=zstd_zipfile.ZIP_ZSTANDARD) as zf:
        zf.writestr("edited.jpg", _save(later[1], "JPEG", quality=50))
    put("shared/pack-zstd.zip", zz.getvalue())
    planted += [Planted("shared/photos.tar.zst!/camera/known.jpg", "K-TZST", "md5", "zstd"),
                Planted("shared/pack-zstd.zip!/edited.jpg", "K-ZIPZST", "pdq", "zip-zstd")]
    known_pdq("K-PDF-INLINE-FLATE", later[3])
    put("docs/inline.pdf", inline_image_pdf([
        (known_md5("K-PDF-INLINE", _save(later[2], "JPEG", quality=90)), "DCT", 160, 120),
        (zlib.compress(later[3].tobytes()), "Fl", 160, 120)]))
    planted += [Planted("docs/inline.pdf!/page1-inline1.jpg", "K-PDF-INLINE", "md5",
                        "pdf-inline"),
                Planted("docs/inline.pdf!/page1-inline2.png", "K-PDF-INLINE-FLATE", "pdq",
                        "pdf-inline")]

    # every frame and page: the known picture is never the first frame
    for rel, fmt, kw, entry, label, known in (
            ("anim/loop.gif", "GIF", {"duration": 80, "loop": 0}, "K-GIF", "frame 3", 13),
            ("anim/loop.webp", "WEBP", {"duration": 80, "lossless": True}, "K-WEBP", "frame 3",
             15),
            ("anim/loop.png", "PNG", {"duration": 80}, "K-APNG", "frame 3", 16)):
        known_pdq(entry, photos[known])
        put(rel, _animation([decoys[1], decoys[2], photos[known]], fmt, **kw))
        planted.append(Planted(rel, entry, "frame", fmt.lower(), label))
    known_pdq("K-TIFF", photos[14])
    put("scans/fax.tiff", _animation([decoys[3], photos[14]], "TIFF"))
    planted.append(Planted("scans/fax.tiff", "K-TIFF", "frame", "tiff", "page 2"))

    hostile = _hostile(put, photos[17]) if with_hostile else ()

    bank_csv = out / "bank.csv"
    with open(bank_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "md5", "pdq", "category"])
        for entry, md5, pdq in bank:
            w.writerow([entry, md5, pdq, "1"])
    return SeizedSpec(ev, bank_csv, tuple(planted), encrypted, hostile)


def _hostile(put: Callable[[str, bytes], None], rgb: np.ndarray) -> tuple[tuple[str, str], ...]:
    """A 7z bomb, a RAR bomb by its header, a zstd bomb, PDFs with a Flate bomb, huge declared dimensions
    and a broken stream, and a GIF of 10^5 frames; returns the attention rows they must give."""
    import pikepdf
    from pikepdf import Name

    from synthetic_fixtures.hostile import gif_of_many_frames

    put("hostile/bomb.7z", make_7z({"zeros.bin": b"\x00" * (48 << 20)}))
    put("hostile/bomb.rar", rar4_stored([RarMember("huge.bin", b"\x00" * 4096,
                                                   declared_size=64 << 30)]))
    pdf = pikepdf.new()
    h, w = rgb.shape[:2]
    xobjects = pikepdf.Dictionary()
    for k, (data, width, height, flt) in enumerate((
            (zlib.compress(b"\x00" * (64 << 20), 9), w, h, Name.FlateDecode),  # bomb
            (zlib.compress(b"\x00" * 1000), 100_000, 100_000, Name.FlateDecode),  # huge
            (b"broken stream " * 20, w, h, Name.FlateDecode))):  # not zlib
        s = pikepdf.Stream(pdf, data)
        s.Type, s.Subtype, s.Width, s.Height = Name.XObject, Name.Image, width, height
        s.ColorSpace, s.BitsPerComponent, s.Filter = Name.DeviceRGB, 8, flt
        xobjects[f"/Im{k}"] = pdf.make_indirect(s)
    pdf.add_blank_page().Resources = pikepdf.Dictionary(XObject=xobjects)
    buf = io.BytesIO()
    pdf.save(buf)
    put("hostile/bad-images.pdf", buf.getvalue())
    put("hostile/many-frames.gif", gif_of_many_frames(100_000))
    from backports import zstd

    comp = zstd.ZstdCompressor(level=19)
    put("hostile/bomb.bin.zst",
        b"".join(comp.compress(bytes(1 << 20)) for _ in range(64)) + comp.flush())
    return (("hostile/bomb.bin.zst!/", "exceeds 200"),
            ("hostile/bomb.7z!/zeros.bin", "expansion ratio"),
            ("hostile/bomb.rar!/huge.bin", "member exceeds"),
            ("hostile/bad-images.pdf!/", "decompression bomb|pixel limit|corrupt image stream"),
            ("hostile/many-frames.gif", "frame limit"))
