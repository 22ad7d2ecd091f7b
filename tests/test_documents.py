"""Pictures in documents: PDF image objects and OLE pictures are members, with limits.

PDFs are written with pikepdf, OLE files with `gsf createole` (libgsf-bin), all in the test.
"""

from __future__ import annotations

import hashlib
import io
import time
import tracemalloc
import zlib

import numpy as np
import pikepdf
import pytest
from pikepdf import Dictionary, Name
from PIL import Image

from hashing.algorithms.pdq import pdq_from_rgb
from hashing.hasher import HashOptions, hash_bytes
from synthetic_fixtures.photos import make_photo
from synthetic_fixtures.seized import _ole, office_art_blip
from triage.archives import archive_format, iter_archive
from triage.documents import carve_pictures
from triage.identity import fs_location
from triage.limits import MiB, WalkItem, WalkLimits

PHOTO = make_photo(np.random.default_rng(3), 64, 48)


def jpeg(rgb: np.ndarray = PHOTO) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png(rgb: np.ndarray = PHOTO) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def rows(data: bytes, limits: WalkLimits | None = None) -> list[WalkItem]:
    return list(iter_archive(io.BytesIO(data), "ev/d", len(data), limits or WalkLimits(),
                             location=fs_location(b"/", b"/ev/d")))


def pdf_with(*streams: tuple[bytes, dict[str, object]], encryption: bool = False) -> bytes:
    pdf = pikepdf.new()
    xobjects = {}
    for k, (data, keys) in enumerate(streams):
        s = pikepdf.Stream(pdf, data)
        s.Type, s.Subtype = Name.XObject, Name.Image
        for key, value in keys.items():
            s[f"/{key}"] = value
        xobjects[f"/Im{k}"] = pdf.make_indirect(s)
    page = pdf.add_blank_page()
    page.Resources = Dictionary(XObject=Dictionary(xobjects))
    buf = io.BytesIO()
    if encryption:
        pdf.save(buf, encryption=pikepdf.Encryption(user="synthetic", owner="owner"))
    else:
        pdf.save(buf)
    return buf.getvalue()


RGB_KEYS = {"Width": 64, "Height": 48, "ColorSpace": Name.DeviceRGB, "BitsPerComponent": 8}


def test_documents_are_recognised_by_content() -> None:
    assert archive_format(pdf_with()[:512]) == "pdf"
    assert archive_format(_ole({"WordDocument": b"\x00" * 600})[:512]) == "ole"


def test_an_embedded_jpeg_is_the_member_byte_for_byte() -> None:
    data = jpeg()
    [row] = rows(pdf_with((data, {**RGB_KEYS, "Filter": Name.DCTDecode})))
    assert row.path.startswith("ev/d!/obj") and row.path.endswith(".jpg")
    assert row.status == "pending" and row.data == data


def test_a_flate_picture_is_decoded_and_hashed_by_its_pixels() -> None:
    [row] = rows(pdf_with((zlib.compress(PHOTO.tobytes()),
                           {**RGB_KEYS, "Filter": Name.FlateDecode})))
    assert row.path.endswith(".png") and row.data is not None
    assert "re-encoded from a PDF image stream" in (row.reason or "")
    rec = hash_bytes(row.data, row.path, HashOptions())
    assert rec.hashes["pdq"] == pdq_from_rgb(PHOTO).hash  # lossless: the same pixels


def test_an_image_on_no_page_is_a_member_too() -> None:
    first, other = jpeg(), jpeg(PHOTO[::-1].copy())
    pdf = pikepdf.open(io.BytesIO(pdf_with((first, {**RGB_KEYS, "Filter": Name.DCTDecode}))))
    orphan = pikepdf.Stream(pdf, other)
    orphan.Type, orphan.Subtype, orphan.Filter = Name.XObject, Name.Image, Name.DCTDecode
    orphan.Width, orphan.Height = 64, 48
    # reachable from the catalogue but drawn on no page, like content a user "deleted"
    pdf.Root.OrphanImage = pdf.make_indirect(orphan)
    buf = io.BytesIO()
    pdf.save(buf)
    assert sorted(r.data for r in rows(buf.getvalue())) == sorted([first, other])


def test_a_flate_bomb_image_is_an_error_row_in_bounded_memory() -> None:
    bomb = zlib.compress(b"\x00" * (64 * MiB), 9)  # ~64 KB inflating to 64 MiB
    tracemalloc.start()
    t0 = time.perf_counter()
    got = rows(pdf_with((bomb, {**RGB_KEYS, "Filter": Name.FlateDecode}),
                        (jpeg(), {**RGB_KEYS, "Filter": Name.DCTDecode})))
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    bad = [r for r in got if r.path.endswith(".png")]
    good = [r for r in got if r.path.endswith(".jpg")]
    assert [(r.status, r.archive_error) for r in bad] == [("error", True)]
    assert "decompression bomb" in (bad[0].reason or "")
    assert good and good[0].status == "pending"
    assert peak < 48 * MiB and elapsed < 30


def test_huge_declared_dimensions_are_refused_before_decoding() -> None:
    keys = {**RGB_KEYS, "Width": 100_000, "Height": 100_000, "Filter": Name.FlateDecode}
    [row] = rows(pdf_with((zlib.compress(b"\x00" * 1000), keys)))
    assert row.status == "error" and row.archive_error
    assert "exceeds the pixel limit" in (row.reason or "")


def test_a_broken_image_stream_is_an_error_row() -> None:
    got = rows(pdf_with((b"not zlib at all" * 10, {**RGB_KEYS, "Filter": Name.FlateDecode}),
                        (b"\xff\xd8\xff\xe0garbage", {**RGB_KEYS, "Filter": Name.DCTDecode})))
    flate = next(r for r in got if r.path.endswith(".png"))
    assert flate.status == "error" and "corrupt image stream" in (flate.reason or "")
    dct = next(r for r in got if r.path.endswith(".jpg"))
    # kept as is: the member is hashed and its decode error becomes its row's error
    assert dct.data is not None
    assert hash_bytes(dct.data, dct.path, HashOptions()).status == "error"


def test_an_image_larger_than_the_member_limit_is_refused() -> None:
    data = jpeg()
    [row] = rows(pdf_with((data, {**RGB_KEYS, "Filter": Name.DCTDecode})),
                 WalkLimits(max_member_bytes=len(data) - 1))
    assert row.status == "error" and row.archive_error


def test_a_truncated_pdf_is_repaired_or_reported() -> None:
    data = pdf_with((jpeg(), {**RGB_KEYS, "Filter": Name.DCTDecode}))
    got = rows(data[: len(data) // 2])
    assert got  # never silent: the picture before the cut, or the error row
    assert all(r.status in ("pending", "error") for r in got)
    assert any(r.status == "pending" for r in got) or got[-1].path == "ev/d!/"


def test_garbage_after_the_pdf_signature_is_a_corrupt_document_row() -> None:
    [row] = rows(b"%PDF-1.7\n" + bytes(range(256)) * 4)
    assert (row.path, row.status, row.archive_error) == ("ev/d!/", "error", True)


def test_a_pdf_needing_a_password_is_encrypted_not_examined() -> None:
    data = pdf_with((jpeg(), {**RGB_KEYS, "Filter": Name.DCTDecode}), encryption=True)
    [row] = rows(data)
    assert (row.path, row.status, row.archive_error) == ("ev/d!/", "error", True)
    assert row.reason == "encrypted: not examined (the PDF needs a password)"


def test_ole_pictures_are_cut_out_byte_identical() -> None:
    data_j, data_p = jpeg(), png()
    stream = b"\x01" * 100 + office_art_blip(data_j) + b"\x02" * 30 + data_p + b"\x00" * 7
    got = rows(_ole({"WordDocument": b"\x00" * 600, "Data": stream}))
    assert len({r.location for r in got}) == 2  # each picture its own row identity
    assert [(r.path, hashlib.md5(r.data or b"").hexdigest()) for r in got] == [
        ("ev/d!/Data@125.jpg", hashlib.md5(data_j).hexdigest()),
        (f"ev/d!/Data@{125 + len(data_j) + 30}.png", hashlib.md5(data_p).hexdigest()),
    ]


def test_an_encrypted_office_file_is_encrypted_not_examined() -> None:
    [row] = rows(_ole({"EncryptionInfo": b"\x04\x00" * 300, "EncryptedPackage": b"\x00" * 900}))
    assert row.reason == "encrypted: not examined (encrypted Office document)"
    assert row.archive_error


@pytest.mark.parametrize("cut", [10, 200, -3])
def test_carving_ignores_incomplete_pictures(cut: int) -> None:
    data = jpeg()
    assert list(carve_pictures(b"xx" + data[:cut])) == []
    assert [o for o, _, _ in carve_pictures(b"xx" + data)] == [2]
