"""Tests of the labelled edits: each edit does what its name says, and variants are reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image

from synthetic_fixtures.edits import (
    EDIT_FAMILIES,
    EDITS,
    FAMILY_OF,
    edit_rng,
    load_rgb,
    write_variants,
)
from synthetic_fixtures.photos import make_photo, write_photo_corpus

W, H = 160, 120


@pytest.fixture(scope="module")
def img() -> Image.Image:
    return Image.fromarray(make_photo(np.random.default_rng(11), W, H))


def _a(im: Image.Image) -> np.ndarray:
    return np.asarray(im).astype(np.int32)


def test_families_cover_every_edit_once() -> None:
    names = [n for fam in EDIT_FAMILIES.values() for n in fam]
    assert sorted(names) == sorted(EDITS)
    assert set(FAMILY_OF) == set(EDITS)


@pytest.mark.parametrize("name", sorted(EDITS))
def test_every_edit_returns_rgb_and_is_deterministic(img: Image.Image, name: str) -> None:
    a = EDITS[name](img, np.random.default_rng(1))
    b = EDITS[name](img, np.random.default_rng(1))
    assert a.mode == "RGB"
    assert np.array_equal(_a(a), _a(b))
    if name != "format_png":
        assert a.size != img.size or not np.array_equal(_a(a), _a(img)), "edit changed nothing"


def test_geometric_edits(img: Image.Image) -> None:
    r = np.random.default_rng(0)
    src = _a(img)
    assert np.array_equal(_a(EDITS["rotate90"](img, r)), np.rot90(src, 1))
    assert np.array_equal(_a(EDITS["rotate180"](img, r)), np.rot90(src, 2))
    assert np.array_equal(_a(EDITS["rotate270"](img, r)), np.rot90(src, 3))
    assert np.array_equal(_a(EDITS["mirror"](img, r)), src[:, ::-1])
    assert np.array_equal(_a(EDITS["flip"](img, r)), src[::-1])
    assert np.array_equal(_a(EDITS["transpose"](img, r)), src.transpose(1, 0, 2))
    assert EDITS["resize_50"](img, r).size == (W // 2, H // 2)
    assert EDITS["resize_200"](img, r).size == (W * 2, H * 2)
    assert EDITS["crop_10"](img, r).size == (W - 16, H - 12)
    assert EDITS["stretch_h"](img, r).size == (round(W * 1.3), H)
    lb = _a(EDITS["letterbox"](img, r))
    assert lb.shape[:2] == (H + 48, W) and lb[:20].max() == 0 and lb[-20:].max() == 0
    pb = _a(EDITS["pillarbox"](img, r))
    assert pb.shape[:2] == (H, W + 64) and pb[:, :30].max() == 0
    assert (_a(EDITS["border"](img, r))[:5] == 255).all()
    sc = EDITS["screenshot"](img, r)
    assert sc.width > W and sc.height > H
    rot = EDITS["rotate_3"](img, r)
    assert rot.size == img.size


def test_photometric_edits(img: Image.Image) -> None:
    r = np.random.default_rng(0)
    src = _a(img)
    assert _a(EDITS["brightness_up"](img, r)).mean() > src.mean() + 5
    assert _a(EDITS["brightness_down"](img, r)).mean() < src.mean() - 5
    assert _a(EDITS["contrast_up"](img, r)).std() > src.std()
    assert _a(EDITS["contrast_down"](img, r)).std() < src.std()
    assert _a(EDITS["gamma_0.6"](img, r)).mean() > src.mean()
    g = _a(EDITS["grayscale"](img, r))
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()

    def hf(a: np.ndarray) -> float:
        return float(np.abs(np.diff(a.mean(axis=2), axis=1)).mean())

    assert hf(_a(EDITS["blur_3"](img, r))) < 0.5 * hf(src)
    assert hf(_a(EDITS["noise_15"](img, r))) > hf(src)
    q30 = _a(EDITS["jpeg_q30"](img, r))
    assert 0 < np.abs(q30 - src).mean() < 12
    assert np.array_equal(_a(EDITS["format_png"](img, r)), src)


def test_mild_edits_stay_near_and_strong_ones_move_far() -> None:
    img = Image.fromarray(make_photo(np.random.default_rng(12), 320, 240))
    h0 = pdqhash.compute(np.asarray(img))[0]

    def dist(name: str) -> int:
        out = EDITS[name](img, np.random.default_rng(0))
        return int((pdqhash.compute(np.asarray(out))[0] != h0).sum())

    for name in ("jpeg_q70", "resize_50", "blur_1", "noise_5", "grayscale", "format_webp"):
        assert dist(name) <= 31, name
    for name in ("rotate90", "mirror", "screenshot"):
        assert dist(name) > 64, name


def test_write_variants_files_equal_in_memory_edits(tmp_path: Path) -> None:
    originals = write_photo_corpus(tmp_path / "orig", seed=2, n=2, sizes=((96, 72),), formats=("jpeg", "png_rgba"))
    names = ["jpeg_q50", "format_gif", "crop_5", "noise_5", "rotate90", "text_overlay"]
    variants = write_variants(originals, tmp_path / "var", seed=5, edits=names)
    assert len(variants) == 2 * len(names)
    labels = json.loads((tmp_path / "var" / "variants.json").read_text())
    assert [(lab["edit"], lab["family"]) for lab in labels] == [(v.edit, v.family) for v in variants]
    assert all((tmp_path / "var" / lab["original"]).resolve() == Path(v.original).resolve()
               for lab, v in zip(labels, variants, strict=True))
    for k, v in enumerate(variants):
        i = k // len(names)
        assert v.original == originals[i].path
        expected = EDITS[v.edit](load_rgb(v.original), edit_rng(5, i, v.edit))
        assert np.array_equal(_a(load_rgb(v.path)), _a(expected)), v.edit
