"""Tests of the demo case: every expected outcome holds for the reference PDQ (pdqhash oracle)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image

from synthetic_fixtures.demo import FAR_MIN, MARKER, NEAR_MAX, RADIUS, DemoSpec, make_demo
from synthetic_fixtures.videos import read_frames


def ref_pdq(rgb: np.ndarray) -> tuple[str, int]:
    h, q = pdqhash.compute(np.ascontiguousarray(rgb))
    return np.packbits(h).tobytes().hex(), int(q)


def _bits(hex_: str) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(hex_), np.uint8))


def _dist(a: np.ndarray, b: np.ndarray) -> int:
    return int((a != b).sum())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSpec:
    out = tmp_path_factory.mktemp("demo")
    return make_demo(out, seed=7, n_series=4, n_unrelated=3, pdq=ref_pdq)


def _bytes_of(spec: DemoSpec, key: str) -> bytes:
    """Bytes of a file or (nested) archive member named as in the spec."""
    parts = key.split("!/")
    data = Path(spec.evidence_dir, parts[0]).read_bytes()
    for member in parts[1:]:
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                data = zf.read(member)
        else:
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                data = tf.extractfile(member).read()
    return data


def _rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def test_every_expected_path_is_in_the_evidence(demo: DemoSpec) -> None:
    files = demo.expected["files"]
    assert demo.evidence is not None
    assert set(files) <= set(demo.evidence.entries)
    counts = demo.expected["counts"]
    for outcome in ("exact", "near", "dihedral", "cluster", "video", "known_good", "unmatched",
                    "non_media", "error"):
        assert counts.get(outcome, 0) >= 1, outcome
    marker = json.loads((Path(demo.evidence_dir).parent / MARKER).read_text())
    assert marker["expected"]["counts"] == counts


def test_bank_lists_hold_the_known_items(demo: DemoSpec) -> None:
    md5s: dict[str, set[str]] = {}
    for path, fmt, bank, known_good in demo.bank_files:
        text = Path(path).read_text(encoding="utf-8")
        if fmt == "vics":
            doc = json.loads(text)
            md5s[bank] = {m["MD5"].lower() for c in doc["value"] for m in c["Media"]}
            assert all(m["AlternativeHashes"][0]["HashName"] == "PDQ" for c in doc["value"] for m in c["Media"])
        elif fmt == "csv":
            md5s[bank] = {r["md5"] for r in csv.DictReader(text.splitlines())}
        else:
            assert fmt == "nsrl" and known_good
            md5s[bank] = {r["MD5"].lower() for r in csv.DictReader(text.splitlines())}
    for key, row in demo.expected["files"].items():
        if row["expect"] in ("exact", "known_good"):
            md5 = hashlib.md5(_bytes_of(demo, key)).hexdigest()
            assert md5 in md5s[row["bank"]], key
            assert demo.entries[row["entry"]].md5 == md5


def test_perceptual_expectations_hold(demo: DemoSpec) -> None:
    bad = {e.id: _bits(e.pdq) for e in demo.entries.values() if e.pdq is not None}
    assert len(bad) >= 4
    images = {}
    for key, row in demo.expected["files"].items():
        entry = demo.evidence.entries[key]
        if entry.media != "image" or row["expect"] == "error":
            continue
        rgb = _rgb(_bytes_of(demo, key))
        images[key] = _bits(ref_pdq(rgb)[0])
        d = {i: _dist(images[key], b) for i, b in bad.items()}
        hashes, _ = pdqhash.compute_dihedral(np.ascontiguousarray(rgb))
        dihedral = {i: min(_dist(np.asarray(h), b) for h in hashes) for i, b in bad.items()}
        outcome = row["expect"]
        if outcome in ("exact", "near"):
            assert d[row["entry"]] <= NEAR_MAX, key
        elif outcome == "dihedral":
            assert d[row["entry"]] > RADIUS and dihedral[row["entry"]] <= NEAR_MAX, key
        elif outcome in ("cluster", "unmatched", "known_good"):
            assert min(dihedral.values()) >= FAR_MIN, key
    # Each cluster shot is linked to its series through another evidence image.
    for key, row in demo.expected["files"].items():
        if row["expect"] == "cluster":
            links = [k for k, r in demo.expected["files"].items()
                     if k in images and k != key and r.get("entry") == row["entry"]
                     and r["expect"] in ("near", "exact") and _dist(images[k], images[key]) <= NEAR_MAX]
            assert links, key


def test_video_shows_the_known_picture(demo: DemoSpec) -> None:
    key, row = next((k, r) for k, r in demo.expected["files"].items() if r["expect"] == "video")
    target = _bits(demo.entries[row["entry"]].pdq)
    dists = [_dist(_bits(ref_pdq(f)[0]), target) for f in read_frames(os.path.join(demo.evidence_dir, key))]
    assert min(dists) <= NEAR_MAX
    assert sum(d <= NEAR_MAX for d in dists) >= 4  # shown for 2 s at 4 fps, minus codec luck
    assert max(dists) > RADIUS


def test_regenerating_is_identical_and_refuses_foreign_folders(demo: DemoSpec, tmp_path: Path) -> None:
    root = Path(demo.evidence_dir).parent

    def digest() -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}

    before = digest()
    again = make_demo(root, seed=7, n_series=4, n_unrelated=3, pdq=ref_pdq)
    assert digest() == before
    assert again.expected == demo.expected
    (tmp_path / "precious.txt").write_text("not ours")
    with pytest.raises(FileExistsError):
        make_demo(tmp_path, seed=7, pdq=ref_pdq)
    assert (tmp_path / "precious.txt").read_text() == "not ours"


def test_default_pdq_is_the_projects_and_agrees_with_the_reference() -> None:
    pytest.importorskip("hashing.algorithms.pdq")
    from synthetic_fixtures.demo import project_pdq
    from synthetic_fixtures.photos import make_photo

    for seed in range(3):
        rgb = make_photo(np.random.default_rng(seed), 200, 150)
        ours, ref = project_pdq(rgb), ref_pdq(rgb)
        assert _dist(_bits(ours[0]), _bits(ref[0])) <= 4
        assert abs(ours[1] - ref[1]) <= 1
