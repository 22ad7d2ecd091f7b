"""Pictures inside documents, read in place: PDF image objects and pictures in OLE documents.

A document is treated as a container whose members are its pictures, under the same limits
as an archive (member size, members per container, expansion ratio and total, depth):

- **PDF** through pikepdf (qpdf): it repairs damaged cross-reference tables the way viewers
  do, decrypts files that only carry an owner password, and gives each stream's raw bytes
  without decoding them. pypdf would do the same in pure Python, slower on large files.
  Every image XObject in the file, referenced from a page or not (deleted content is
  evidence), is one member named by its object number, `doc.pdf!/obj12.jpg`. A DCTDecode
  (JPEG) or JPXDecode (JPEG 2000) stream is the picture file itself, so its digests are the
  embedded JPEG's. Other streams are decoded to pixels and re-encoded as PNG for hashing;
  their digests are of that re-encoding (said in the row), their PDQ is the picture's. Before
  anything is decoded the declared dimensions are checked against the pixel limit and the
  member limit, and a Flate stream is inflated once with an output bound, so a small image
  whose stream inflates to gigabytes is an error row, never an allocation.
- **OLE** (legacy .doc/.xls/.ppt) through olefile, which reads the compound-file directory
  and streams. Office stores pictures unchanged inside its streams (PowerPoint's `Pictures`,
  Word's `Data`, Excel's drawing records, each wrapped in an OfficeArt BLIP record), so JPEG
  and PNG pictures are found by their signatures and their own structure (JPEG markers to
  EOI, PNG chunks to IEND) and cut out exactly: `doc.doc!/Data@4096.jpg` is the byte-identical
  embedded JPEG. No maintained Python library parses the OfficeArt records of all three
  formats, hence the carving; a picture in another format (EMF, WMF, PICT) is not read.

Encrypted documents (a PDF needing a user password, an OLE file with an `EncryptionInfo`
stream) are attention rows: "encrypted: not examined".
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import olefile
import pikepdf

from triage.archives import ArchiveLimitError, _Archive
from triage.archives_7z_rar import ENCRYPTED
from triage.limits import WalkItem, format_bytes

PDF_MAGIC = b"%PDF-"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_CHUNK = 1024 * 1024
# Filters whose stream is a complete picture file, kept byte for byte.
_AS_IS = {"/DCTDecode": ".jpg", "/JPXDecode": ".jp2"}
_COMPONENTS = {"/DeviceGray": 1, "/CalGray": 1, "/DeviceRGB": 3, "/CalRGB": 3, "/Lab": 3,
               "/DeviceCMYK": 4, "/Indexed": 1, "/Separation": 1}
# Other filters (LZW, RunLength, CCITT, JBIG2) are decoded by qpdf in one call; LZW's worst
# case expands about 2730:1, so their raw size times this must fit the member limit.
_WORST_RATIO = 3000
_REENCODED = "re-encoded from a PDF image stream: digests are of the PNG re-encoding"


def document_format(head: bytes) -> str | None:
    """"pdf" or "ole" from a file's first bytes, else None."""
    if head.startswith(PDF_MAGIC):
        return "pdf"
    if head.startswith(OLE_MAGIC):
        return "ole"
    return None


def document_members(source: BinaryIO, fmt: str, arc: _Archive) -> Iterator[WalkItem]:
    """Member rows of a PDF or OLE document; whole-document problems raise like archives."""
    source.seek(0)
    if fmt == "pdf":
        yield from _pdf_members(source, arc)
    else:
        yield from _ole_members(source, arc)


# --- PDF -------------------------------------------------------------------------------


def _pdf_members(source: BinaryIO, arc: _Archive) -> Iterator[WalkItem]:
    try:
        pdf = pikepdf.open(source)
    except pikepdf.PasswordError:
        yield arc.root_row("error", f"{ENCRYPTED} (the PDF needs a password)", True)
        return
    except pikepdf.PdfError as exc:
        raise ValueError(f"unreadable PDF: {_qpdf_text(exc)}") from None
    with pdf:
        try:
            objects = [o for o in pdf.objects if _is_image(o)]
        except pikepdf.PdfError as exc:
            raise ValueError(f"unreadable PDF objects: {_qpdf_text(exc)}") from None
        for obj in objects:
            yield from _pdf_image(obj, arc)
        yield from _inline_images(pdf, arc)
        warnings = pdf.get_warnings()
    if warnings:
        # qpdf repaired the file as a viewer would; what it could not recover is unknown
        first = _qpdf_text(warnings[0])[:200]
        yield arc.root_row("error", f"damaged PDF, read after repair ({len(warnings)} "
                           f"warnings, first: {first}); pictures may be missing", True)


def _qpdf_text(message: object) -> str:
    """qpdf's words without the name it gives our file handle (`stream <_io... name=18>`),
    which differs between runs and would make identical scans differ."""
    return re.sub(r"^(stream )?<[^>]*>:? ?", "", str(message)).strip() or "unreadable"


def _is_image(obj: Any) -> bool:
    return isinstance(obj, pikepdf.Stream) and obj.get("/Subtype") == pikepdf.Name.Image


def _filters(obj: pikepdf.Stream) -> list[str]:
    f = obj.get("/Filter")
    if f is None:
        return []
    if isinstance(f, pikepdf.Array):
        return [str(x) for x in f]
    return [str(f)]


def _int(obj: pikepdf.Stream, key: str) -> int | None:
    value = obj.get(key)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _pdf_image(obj: Any, arc: _Archive) -> Iterator[WalkItem]:
    """One image XObject (a `pikepdf.Stream`) as a member row."""
    num = obj.objgen[0]
    arc.index = num  # the member's location: its PDF object number
    filters = _filters(obj)
    suffix = _AS_IS.get(filters[-1], ".png") if len(filters) == 1 else ".png"
    name = f"obj{num}{suffix}"
    try:
        raw_len = int(obj.get("/Length", 0))
    except (TypeError, ValueError):
        raw_len = 0
    if raw_len > arc.limits.max_member_bytes:
        yield arc.too_large(name, raw_len, None)
        return
    try:
        raw = obj.read_raw_bytes()
    except pikepdf.PdfError as exc:
        yield arc.row(name, None, None, "error",
                      f"unreadable image stream: {_qpdf_text(exc)}", archive_error=True)
        return
    if len(raw) > arc.limits.max_member_bytes:
        yield arc.too_large(name, len(raw), None)
        return
    if suffix != ".png":
        # the stream is the picture file: its bytes are the member, nothing is decoded here
        arc.budget.charge(len(raw))
        yield from arc.member(name, raw, None)
        return
    problem = _decode_problem(obj, raw, filters, arc)
    if problem is not None:
        yield arc.row(name, len(raw), None, "error", problem, archive_error=True)
        return
    try:
        image = pikepdf.PdfImage(obj).as_pil_image()
        buf = io.BytesIO()
        image.save(buf, "PNG", compress_level=1)
    except Exception as exc:  # qpdf, the image codecs and Pillow raise many types on bad data
        yield arc.row(name, len(raw), None, "error",
                      f"undecodable image stream: {type(exc).__name__}: {exc}"[:300],
                      archive_error=True)
        return
    data = buf.getvalue()
    arc.budget.charge(len(data))
    yield arc.row(name, len(data), None, reason=_REENCODED, data=data)


def _decode_problem(obj: pikepdf.Stream, raw: bytes, filters: list[str],
                    arc: _Archive) -> str | None:
    """Why this image stream must not be decoded (dimensions, sizes), or None."""
    comps = 1 if obj.get("/ImageMask") else _components(obj.get("/ColorSpace"))
    return _size_problem(_int(obj, "/Width"), _int(obj, "/Height"),
                         _int(obj, "/BitsPerComponent") or 8, comps, raw, filters, arc)


def _size_problem(width: int | None, height: int | None, bpc: int, comps: int, raw: bytes,
                  filters: list[str], arc: _Archive) -> str | None:
    """Why an image of these dimensions and this encoded stream must not be decoded, or None."""
    if not width or not height or width < 0 or height < 0:
        return "image stream without valid /Width and /Height: not examined"
    from hashing.decode import DEFAULT_PIXEL_LIMIT

    if width * height > DEFAULT_PIXEL_LIMIT:
        return f"image {width}x{height} exceeds the pixel limit: not examined"
    # one predictor byte per row when PNG predictors are used
    expected = height * ((width * comps * bpc + 7) // 8 + 1)
    if expected > arc.limits.max_member_bytes:
        limit = format_bytes(arc.limits.max_member_bytes)
        return f"decoded image of {expected} bytes exceeds the {limit} member limit"
    try:
        arc.budget.check_ahead(expected)
    except ArchiveLimitError as exc:
        return exc.reason
    if filters == ["/FlateDecode"]:
        return _inflate_check(raw, expected)
    if filters and len(raw) * _WORST_RATIO > arc.limits.max_member_bytes:
        return (f"image stream with filters {' '.join(filters)} could expand past the member "
                "limit: not examined")
    return None


# --- PDF inline images (BI ... ID ... EI inside a content stream) ---------------------

_WHITESPACE = b" \t\r\n\f\x00"


def _inline_images(pdf: pikepdf.Pdf, arc: _Archive) -> Iterator[WalkItem]:
    """Inline images of every page and form XObject, each a member named by where it is
    drawn: `doc.pdf!/page2-inline1.jpg`, `doc.pdf!/obj31-inline1.png` (a form).

    Their location is `("pdf_inline", owner object number << 16 | position)`: an inline
    image has no object number of its own. A content stream is decoded only after the same
    bounds as an image stream (a Flate bomb is inflated with an output bound first), and
    parsed only when its bytes hold an inline image's `ID` operator.
    """
    owners: list[tuple[str, Any]] = [(f"page{n}", page.obj)
                                     for n, page in enumerate(pdf.pages, start=1)]
    owners += [(f"obj{o.objgen[0]}", o) for o in pdf.objects
               if isinstance(o, pikepdf.Stream) and o.get("/Subtype") == pikepdf.Name.Form]
    fmt = arc.fmt
    try:
        arc.fmt = "pdf_inline"
        for where, owner in owners:
            arc.index = owner.objgen[0] << 16
            try:
                images, problem = _owner_inline_images(owner, arc)
            except (pikepdf.PdfError, ValueError, TypeError) as exc:
                images, problem = [], f"unparsable content stream: {_qpdf_text(exc)}"
            if problem is not None:
                yield arc.row(f"{where}-content", None, None, "error",
                              f"content stream not read for inline images: {problem}",
                              archive_error=True)
            for k, image in enumerate(images, start=1):
                arc.index = (owner.objgen[0] << 16) | k
                yield from _inline_image(image, f"{where}-inline{k}", arc)
    finally:
        arc.fmt = fmt


def _owner_inline_images(owner: Any, arc: _Archive) -> tuple[list[Any], str | None]:
    """The inline images a page or form draws, or why its content stream was not read."""
    streams = owner if isinstance(owner, pikepdf.Stream) else owner.get("/Contents")
    if isinstance(streams, pikepdf.Stream):
        streams = [streams]
    if not isinstance(streams, (pikepdf.Array, list)):
        return [], None
    has_id = False
    for content in streams:
        if isinstance(content, pikepdf.Stream):
            problem = _content_problem(content.read_raw_bytes(), _filters(content), arc)
            if problem is not None:
                return [], problem
            has_id = has_id or b"ID" in content.read_bytes()
    if not has_id:
        return [], None
    return [op.iimage for op in pikepdf.parse_content_stream(owner)
            if isinstance(op, pikepdf.ContentStreamInlineImage)], None


def _content_problem(raw: bytes, filters: list[str], arc: _Archive) -> str | None:
    """Why a content stream must not be decoded, or None (the bounds of image streams)."""
    limit = arc.limits.max_member_bytes
    if len(raw) > limit:
        return f"{len(raw)} bytes exceed the {format_bytes(limit)} member limit"
    if filters == ["/FlateDecode"]:
        produced, problem = _inflate_bounded(raw, limit)
        if problem is not None:
            return problem.replace("image stream inflates past the", "inflates past").replace(
                " bytes its dimensions need", " byte member limit")
        try:
            # decoded content counts against the document's expansion like its pictures
            arc.budget.check_ahead(produced)
        except ArchiveLimitError as exc:
            return f"{exc.reason} (a decompression bomb)"
        arc.budget.charge(produced)
        return None
    if filters and len(raw) * _WORST_RATIO > limit:
        return f"filters {' '.join(filters)} could expand past the member limit"
    return None


def _inline_image(image: Any, name: str, arc: _Archive) -> Iterator[WalkItem]:
    """One inline image (`pikepdf.PdfInlineImage`) as a member row, as `_pdf_image` does for
    image objects: a JPEG kept byte for byte, anything else decoded and re-encoded as PNG."""
    try:
        filters = [str(f) for f in image.filters]
        raw = bytes(image.read_raw_bytes())
    except (pikepdf.PdfError, ValueError, TypeError) as exc:
        yield arc.row(f"{name}.png", None, None, "error",
                      f"unreadable inline image: {_qpdf_text(exc)}", archive_error=True)
        return
    suffix = _AS_IS.get(filters[-1], ".png") if len(filters) == 1 else ".png"
    if suffix != ".png":
        # qpdf keeps the whitespace that separates the data from EI; a JPEG ends at its EOI
        data = raw.rstrip(_WHITESPACE) if suffix == ".jpg" else raw
        if suffix == ".jpg" and not data.endswith(b"\xff\xd9"):
            data = raw
        arc.budget.charge(len(data))
        yield from arc.member(name + suffix, data, None)
        return
    try:
        comps = 1 if image.image_mask else _components(image.colorspace)
        problem = _size_problem(int(image.width), int(image.height),
                                int(image.bits_per_component or 8), comps, raw, filters, arc)
    except (pikepdf.PdfError, ValueError, TypeError, AttributeError,
            NotImplementedError) as exc:
        problem = f"inline image without valid dimensions: {exc}"
    if problem is not None:
        yield arc.row(name + ".png", len(raw), None, "error", problem, archive_error=True)
        return
    try:
        buf = io.BytesIO()
        image.as_pil_image().save(buf, "PNG", compress_level=1)
    except Exception as exc:  # qpdf, the image codecs and Pillow raise many types on bad data
        yield arc.row(name + ".png", len(raw), None, "error",
                      f"undecodable inline image: {type(exc).__name__}: {exc}"[:300],
                      archive_error=True)
        return
    data = buf.getvalue()
    arc.budget.charge(len(data))
    yield arc.row(name + ".png", len(data), None, reason=_REENCODED, data=data)


def _components(space: Any) -> int:
    """Colour components per pixel; unknown spaces count 4, so bounds err on the large side."""
    if isinstance(space, pikepdf.Array) and len(space) > 0:
        family = str(space[0])
        if family == "/ICCBased" and len(space) > 1:
            try:
                return int(space[1].get("/N", 4))
            except (TypeError, ValueError, AttributeError):
                return 4
        if family == "/DeviceN" and len(space) > 1 and isinstance(space[1], pikepdf.Array):
            return max(len(space[1]), 1)
        space = space[0]
    return _COMPONENTS.get(str(space), 4)


def _inflate_check(raw: bytes, expected: int) -> str | None:
    """Inflate with an output bound: a stream producing more than its image needs is a bomb."""
    return _inflate_bounded(raw, expected)[1]


def _inflate_bounded(raw: bytes, expected: int) -> tuple[int, str | None]:
    """Bytes a Flate stream inflates to, and why it must not be decoded (more than
    `expected`, or corrupt), inflated in chunks that are dropped as they come."""
    d = zlib.decompressobj()
    produced = 0
    pos = 0
    try:
        while pos < len(raw) or d.unconsumed_tail:
            data = d.unconsumed_tail or raw[pos : pos + _CHUNK]
            if not d.unconsumed_tail:
                pos += len(data)
            out = d.decompress(data, _CHUNK)
            produced += len(out)
            if produced > expected:
                return produced, (f"image stream inflates past the {expected} bytes its "
                                  "dimensions need (a decompression bomb): not examined")
            if d.eof:
                break
    except zlib.error as exc:
        return produced, f"corrupt image stream: {exc}"
    return produced, None


# --- OLE -------------------------------------------------------------------------------


def _ole_members(source: BinaryIO, arc: _Archive) -> Iterator[WalkItem]:
    try:
        ole = olefile.OleFileIO(source)
    except (OSError, ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"unreadable OLE file: {exc}") from None
    with ole:
        streams = ole.listdir(streams=True, storages=False)
        if any(s[-1] in ("EncryptionInfo", "EncryptedPackage") for s in streams):
            yield arc.root_row("error", f"{ENCRYPTED} (encrypted Office document)", True)
            return
        for entry in streams:
            yield from _ole_stream(ole, entry, arc)


def _ole_index(arc: _Archive) -> None:
    """Give the next OLE row its location: its position among the file's rows, which the
    directory order (olefile lists streams sorted) and the stream bytes fix."""
    arc.index = arc.count


def _ole_stream(ole: olefile.OleFileIO, entry: list[str], arc: _Archive) -> Iterator[WalkItem]:
    name = "/".join(entry)
    size = ole.get_size(entry)
    if size > arc.limits.max_member_bytes:
        _ole_index(arc)
        reason = (f"OLE stream of {size} bytes exceeds the "
                  f"{format_bytes(arc.limits.max_member_bytes)} member limit; not searched")
        yield arc.row(name, size, None, "skipped", reason, archive_error=True)
        return
    try:
        with ole.openstream(entry) as fh:
            data = fh.read()
    except (OSError, ValueError, IndexError) as exc:
        _ole_index(arc)
        yield arc.row(name, size, None, "error", f"unreadable OLE stream: {exc}",
                      archive_error=True)
        return
    for offset, ext, picture in carve_pictures(data):
        _ole_index(arc)
        arc.budget.charge(len(picture))
        yield from arc.member(f"{name}@{offset}{ext}", picture, None)


def carve_pictures(data: bytes) -> Iterator[tuple[int, str, bytes]]:
    """(offset, extension, bytes) of every complete JPEG and PNG inside `data`, in order."""
    pos = 0
    while True:
        j = data.find(b"\xff\xd8\xff", pos)
        p = data.find(b"\x89PNG\r\n\x1a\n", pos)
        starts = [x for x in (j, p) if x >= 0]
        if not starts:
            return
        start = min(starts)
        end = _jpeg_end(data, start) if start == j else _png_end(data, start)
        if end is None:
            pos = start + 1
            continue
        yield start, ".jpg" if start == j else ".png", data[start:end]
        pos = end


def _jpeg_end(data: bytes, start: int) -> int | None:
    """End offset of the JPEG at `start` (just past EOI), following its marker segments."""
    i = start + 2
    n = len(data)
    while i + 2 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return i + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        if i + 4 > n:
            return None
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            return None
        i += 2 + length
        if marker == 0xDA:  # entropy-coded data follows, up to the next real marker
            while i + 1 < n:
                if data[i] == 0xFF and data[i + 1] != 0x00 and not 0xD0 <= data[i + 1] <= 0xD7:
                    break
                i += 1
            else:
                return None
    return None


def _png_end(data: bytes, start: int) -> int | None:
    """End offset of the PNG at `start` (just past IEND's CRC), following its chunks."""
    i = start + 8
    n = len(data)
    while i + 12 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        i += 12 + length
        if i > n:
            return None
        if kind == b"IEND":
            return i
    return None
