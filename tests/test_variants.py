"""Canonical variants (`hashing.variants`): each detector recovers the original framing of
generated letterbox / padding / screenshot / rotation / caption cases, well enough that the
variant's PDQ is within the match radius of the original's; clean photos yield none; and a
false-positive check over distinct images with every query a default scan sends."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from hashing.algorithms.pdq import exact_dihedral, pdq_from_luma, pdq_from_rgb
from hashing.hasher import HashOptions, hash_bytes
from hashing.pdq_kernels import rgb_to_luma
from hashing.registry import spec
from hashing.variants import Variant, canonical_images, find_variants, render
from synthetic_fixtures.edits import EDITS, edit_rng
from synthetic_fixtures.photos import make_photo

RADIUS = spec("pdq").default_radius or 0
SEED = 16


def _bits(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _photo(i: int, w: int = 400, h: int = 300) -> Image.Image:
    return Image.fromarray(make_photo(np.random.default_rng((SEED, i)), w, h))


def _jpeg(img: Image.Image, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB"))


def _only(rgb: np.ndarray, name: str) -> Variant:
    found = [v for v in find_variants(rgb) if v.name == name]
    assert len(found) == 1, find_variants(rgb)
    return found[0]


@pytest.mark.parametrize("i", range(3))
def test_clean_photos_yield_no_variants(i: int) -> None:
    img = _photo(i, *((300, 400) if i % 2 else (480, 360)))
    assert find_variants(np.asarray(img)) == ()
    assert find_variants(_jpeg(img, 60)) == ()
    assert find_variants(rgb_to_luma(np.asarray(img))) == ()


@pytest.mark.parametrize(("edit", "box"), [
    ("letterbox", (0.2 / 1.4, 0.0, 1.2 / 1.4, 1.0)),
    ("pillarbox", (0.0, 0.2 / 1.4, 1.0, 1.2 / 1.4)),
    ("border", (0.08 / 1.16, 0.08 / 1.16, 1.08 / 1.16, 1.08 / 1.16)),
])
def test_trim_recovers_padding(edit: str, box: tuple[float, ...]) -> None:
    img = _photo(10)
    edited = _jpeg(EDITS[edit](img, edit_rng(SEED, 10, edit)), 50)  # JPEG noise at the edge
    v = _only(edited, "trim")
    assert max(abs(a - b) for a, b in zip(v.box, box, strict=True)) < 0.01, v
    assert v.detail.startswith("trimmed ")
    assert _bits(pdq_from_rgb(render(v, edited)).hash, pdq_from_rgb(np.asarray(img)).hash) <= 12


def test_trim_reason_reads_as_the_share_removed() -> None:
    img = _photo(11)
    v = _only(np.asarray(EDITS["letterbox"](img, edit_rng(SEED, 11, "letterbox"))), "trim")
    assert v.detail == "trimmed 29% top/bottom"


@pytest.mark.parametrize("edit", ["screenshot", "screenshot_phone"])
def test_embedded_region_of_a_screenshot(edit: str) -> None:
    img = _photo(12)
    shot = EDITS[edit](img, edit_rng(SEED, 12, edit))
    rgb = np.asarray(shot)
    found = canonical_images(rgb)
    best = min(_bits(pdq_from_rgb(px).hash, pdq_from_rgb(np.asarray(img)).hash)
               for _, px in found)
    assert best <= 16, [v.detail for v, _ in found]
    if edit == "screenshot":
        v = _only(rgb, "embedded")
        assert v.detail == "embedded region 42% of frame"  # 1 / (1.6 * 1.5) of the frame
        ph, pw = render(v, rgb).shape[:2]
        assert abs(ph - img.height) <= 3 and abs(pw - img.width) <= 3


@pytest.mark.parametrize(("edit", "i"), [("rotate_3", 13), ("rotate_5", 14),
                                         ("rotate_4_expand", 15)])
def test_deskew_estimates_and_undoes_small_rotations(edit: str, i: int) -> None:
    img = _photo(i)
    rotated = np.asarray(EDITS[edit](img, edit_rng(SEED, i, edit)))  # either way round
    v = _only(rotated, "deskew")
    degrees = float(edit.split("_")[1])
    assert abs(abs(v.angle) - degrees) <= 0.3, v
    assert v.detail == f"deskewed {v.angle:+.1f}°"
    undone = render(v, rotated)
    if edit.endswith("expand"):  # the fill border left after undoing is trimmed
        assert abs(undone.shape[0] - img.height) <= 4 and abs(undone.shape[1] - img.width) <= 4
    assert _bits(pdq_from_rgb(undone).hash, pdq_from_rgb(np.asarray(img)).hash) <= 20


def test_caption_bar_is_removed() -> None:
    img = _photo(16)
    captioned = np.asarray(EDITS["caption_bar"](img, edit_rng(SEED, 16, "caption_bar")))
    v = _only(captioned, "caption")
    assert abs(v.box[0] - 60 / 360) < 0.01 and v.box[2] == 1.0, v
    assert v.detail == "caption bar removed 17% top"
    assert _bits(pdq_from_rgb(render(v, captioned)).hash, pdq_from_rgb(np.asarray(img)).hash) <= 12


def test_render_is_the_same_geometry_for_luma_and_rgb() -> None:
    img = _photo(17)
    boxed = np.asarray(EDITS["letterbox"](img, edit_rng(SEED, 17, "letterbox")))
    v = _only(boxed, "trim")
    assert render(v, rgb_to_luma(boxed)).shape == render(v, boxed).shape[:2]


def test_exact_dihedral_undoes_rotations_and_mirrors_bit_for_bit() -> None:
    """Round 1's coefficient-derived variants miss the transformed pixels' hash by 16-18
    bits here; the exact ones hold it."""
    rgb = make_photo(np.random.default_rng(3), 320, 240)
    luma = rgb_to_luma(rgb)
    original = pdq_from_luma(luma).hash
    coefficient = pdq_from_rgb(rgb, dihedral=True).dihedral
    assert coefficient is not None
    for k, turned in enumerate((np.rot90(luma, 1), np.rot90(luma, 2), np.rot90(luma, 3),
                                luma[::-1], luma[:, ::-1], luma.T, np.rot90(luma, 2).T)):
        exact = exact_dihedral(np.ascontiguousarray(turned))
        assert original in {r.hash for r in exact}, k
        assert exact[0].hash == pdq_from_luma(np.ascontiguousarray(turned)).hash
    # the identity is the reference-compatible stored-pixel hash
    assert exact_dihedral(luma)[0].hash == original == coefficient[0]
    approx = pdq_from_rgb(np.ascontiguousarray(np.rot90(rgb, 2)), dihedral=True).dihedral
    assert approx is not None and min(_bits(h, original) for h in approx) > 4


def test_exact_dihedral_of_a_large_image_uses_block_means_and_still_undoes_rotations() -> None:
    """Over EXACT_MAX_SIDE the turned planes are 2x2 block means on the full-size grid: the
    identity stays the full-size hash and undoing a rotation or mirror still gives it."""
    rgb = make_photo(np.random.default_rng(6), 1500, 1100)
    luma = rgb_to_luma(rgb)
    original = pdq_from_luma(luma).hash
    assert original == pdq_from_rgb(rgb).hash
    for turned in (np.rot90(luma, 1), np.rot90(luma, 2), luma[:, ::-1], luma.T):
        exact = exact_dihedral(np.ascontiguousarray(turned))
        assert min(_bits(original, r.hash) for r in exact) <= 2
    assert exact_dihedral(luma)[0].hash == original


def test_exact_dihedral_order_matches_the_coefficient_order() -> None:
    rgb = make_photo(np.random.default_rng(4), 64, 64)  # no blur: both methods agree closely
    exact = exact_dihedral(rgb_to_luma(rgb))
    approx = pdq_from_rgb(rgb, dihedral=True).dihedral
    assert approx is not None
    for e, a in zip(exact, approx, strict=True):
        assert _bits(e.hash, a) <= 4


def test_hasher_records_variants_only_when_found() -> None:
    img = _photo(18)
    opts = HashOptions(algorithms=("pdq", "phash", "md5"), dihedral=True, variants=True)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    clean = hash_bytes(buf.getvalue(), "clean.png", opts)
    assert clean.variants is None and "variants" not in clean.to_dict()
    buf = io.BytesIO()
    EDITS["letterbox"](img, edit_rng(SEED, 18, "letterbox")).save(buf, "PNG")
    boxed = hash_bytes(buf.getvalue(), "boxed.png", opts)
    assert boxed.variants is not None
    (v,) = boxed.variants
    assert v.name == "trim" and set(v.hashes) == {"pdq", "phash"}
    assert _bits(v.hashes["pdq"], clean.hashes["pdq"]) <= 12
    d = boxed.to_dict()
    assert d["variants"][0]["detail"] == v.detail
    assert type(boxed).from_dict(d, ("pdq", "phash", "md5")) == boxed


def test_distinct_images_stay_apart_with_every_query() -> None:
    """Every query a default scan sends (8 exact dihedral + variants) against every other
    image's stored hash: no pair of distinct generated photos (and their framed copies)
    within the radius."""
    n = 12
    bank, queries = [], []
    for i in range(n):
        img = _photo(100 + i, 256, 192)
        bank.append(pdq_from_rgb(np.asarray(img)).hash)
        for edit in ("letterbox", "screenshot", "rotate_5"):
            rgb = np.asarray(EDITS[edit](img, edit_rng(SEED, 100 + i, edit)))
            hashes = [r.hash for r in exact_dihedral(rgb_to_luma(rgb))]
            hashes += [pdq_from_rgb(px).hash for _, px in canonical_images(rgb)]
            queries.append((i, hashes))
    for i, hashes in queries:
        for j, b in enumerate(bank):
            if i != j:
                assert min(_bits(h, b) for h in hashes) > RADIUS, (i, j)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), seed=st.integers(0, 2**16),
       kind=st.sampled_from(["noise", "flat", "bars", "blocks"]))
def test_any_plane_gives_valid_variants(h: int, w: int, seed: int, kind: str) -> None:
    """Hostile shapes and contents: never raises, every variant renders to a non-empty image
    inside the frame."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        plane = rng.integers(0, 256, (h, w), dtype=np.uint8)
    elif kind == "flat":
        plane = np.full((h, w), rng.integers(0, 256), np.uint8)
    elif kind == "bars":
        plane = np.zeros((h, w), np.uint8)
        plane[h // 4: h - h // 4] = rng.integers(0, 256, (h - 2 * (h // 4), w), dtype=np.uint8)
    else:
        plane = np.kron(rng.integers(0, 256, (max(1, h // 16), max(1, w // 16))),
                        np.ones((16, 16))).astype(np.uint8)
    for v in find_variants(plane):
        out = render(v, plane)
        assert out.ndim == 2 and out.size > 0
        assert all(0.0 <= x <= 1.0 for x in v.box) and v.box[0] < v.box[2] and v.box[1] < v.box[3]
