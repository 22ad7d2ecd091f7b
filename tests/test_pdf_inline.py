"""PDF inline images (`BI ... ID ... EI` inside content streams) are members like image
objects: a JPEG drawn inline matches the JPEG's MD5, a Flate one is decoded and matches by
PDQ, one drawn from a form XObject is found too; a content-stream bomb, huge declared
dimensions and broken inline data are error rows, in bounded memory."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
import zlib

import numpy as np
import pikepdf
from PIL import Image

from hashing.algorithms.pdq import pdq_from_rgb
from hashing.hasher import HashOptions, hash_bytes
from synthetic_fixtures.photos import make_photo
from synthetic_fixtures.seized import inline_image_pdf
from triage.archives import iter_archive
from triage.identity import fs_location
from triage.limits import MiB, WalkItem, WalkLimits

PHOTO = make_photo(np.random.default_rng(8), 160, 120)


def jpeg(rgb: np.ndarray = PHOTO) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def rows(data: bytes) -> list[WalkItem]:
    return list(iter_archive(io.BytesIO(data), "ev/d.pdf", len(data), WalkLimits(),
                             location=fs_location(b"/", b"/ev/d.pdf")))


def test_inline_jpeg_is_the_jpeg_and_flate_is_decoded() -> None:
    data = inline_image_pdf([(jpeg(), "DCT", 160, 120),
                             (zlib.compress(PHOTO.tobytes()), "Fl", 160, 120)])
    got = rows(data)
    assert [(r.path, r.status) for r in got] == [("ev/d.pdf!/page1-inline1.jpg", "pending"),
                                                ("ev/d.pdf!/page1-inline2.png", "pending")]
    assert got[0].data is not None and hashlib.md5(got[0].data).hexdigest() == \
        hashlib.md5(jpeg()).hexdigest()
    assert got[1].data is not None
    decoded = np.asarray(Image.open(io.BytesIO(got[1].data)).convert("RGB"))
    assert np.array_equal(decoded, PHOTO)  # Flate is lossless: the very pixels
    pdq = hash_bytes(got[1].data, "x.png", HashOptions()).hashes["pdq"]
    assert pdq == pdq_from_rgb(PHOTO).hash
    # an inline image has no object number: its location is its page object and position
    assert [s.type for s in got[0].location[-1:]] == ["pdf_inline"]
    assert got[0].location != got[1].location


def test_inline_image_in_a_form_xobject() -> None:
    data = inline_image_pdf([(jpeg(), "DCT", 160, 120)], in_form=True, content_filter=False)
    [row] = rows(data)
    assert row.path.startswith("ev/d.pdf!/obj") and row.path.endswith("-inline1.jpg")
    assert row.data == jpeg()


def _bomb_page() -> bytes:
    """A page whose Flate content stream inflates to 64 MiB of spaces."""
    pdf = pikepdf.new()
    page = pdf.add_blank_page()
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(b" " * MiB) for _ in range(64)) + comp.flush()
    stream = pikepdf.Stream(pdf, body)
    stream.Filter = pikepdf.Name.FlateDecode
    page.Contents = pdf.make_indirect(stream)
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def test_hostile_inline_images_are_error_rows_in_bounded_memory() -> None:
    huge = inline_image_pdf([(zlib.compress(b"\x00" * 1000), "Fl", 100_000, 100_000)])
    broken = inline_image_pdf([(b"not a zlib stream " * 10, "Fl", 160, 120)])
    tracemalloc.start()
    try:
        got = {name: rows(data) for name, data in
               (("bomb", _bomb_page()), ("huge", huge), ("broken", broken))}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    [bomb] = got["bomb"]
    assert bomb.path == "ev/d.pdf!/page1-content" and bomb.status == "error"
    assert bomb.archive_error and "decompression bomb" in (bomb.reason or "")
    [big] = got["huge"]
    assert big.status == "error" and "exceeds the pixel limit" in (big.reason or "")
    [bad] = got["broken"]
    assert bad.status == "error" and bad.archive_error
    assert "corrupt image stream" in (bad.reason or "")
    assert peak < 40 * MiB
