"""`triage fixtures make`: write any or all of the synthetic fixture sets under one folder.

Layout under OUT (each set in its own subfolder, with a JSON description next to it):
photos/ + photos.json, edits/ (+ edits/variants.json), videos/ + videos.json, evidence/ +
evidence_spec.json, lists/ + lists.json, hostile/ + hostile_spec.json, demo/ (with
demo/demo_expected.json), and fixtures.json summarising what was written. The same seed and
options give the same bytes. A set is only written into a missing or empty folder (the demo
may also regenerate a demo folder it made), so nothing of anyone's is ever overwritten.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np

from synthetic_fixtures.demo import make_demo
from synthetic_fixtures.edits import write_variants
from synthetic_fixtures.evidence import make_evidence
from synthetic_fixtures.hashlists import random_entries, write_hash_lists
from synthetic_fixtures.hostile import write_hostile
from synthetic_fixtures.photos import DEFAULT_SIZES, THUMB_SIZES, PhotoInfo, write_photo_corpus
from synthetic_fixtures.videos import VideoInfo, make_video, write_video_variants

Kind = Literal["photos", "edits", "videos", "evidence", "lists", "hostile", "demo"]
KINDS: tuple[Kind, ...] = ("photos", "edits", "videos", "evidence", "lists", "hostile", "demo")
EDIT_ORIGINALS = 6  # originals per edit set: every edit of each


def _fresh(path: Path) -> Path:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path}: exists and is not empty; choose another OUT")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _dump(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str), encoding="utf-8")


def _rel(out: Path, infos: list[PhotoInfo] | list[VideoInfo]) -> list[dict[str, object]]:
    rows = []
    for info in infos:
        d = asdict(info)
        d["path"] = os.path.relpath(info.path, out)
        if d.get("original"):
            d["original"] = os.path.relpath(str(d["original"]), out)
        rows.append(d)
    return rows


def make_fixtures(
    out_dir: str | os.PathLike[str],
    seed: int = 7,
    images: int = 24,
    videos: int = 2,
    kinds: tuple[Kind, ...] = KINDS,
    quick: bool = False,
    sparse_bytes: int = 0,
) -> dict[str, object]:
    """Write the requested sets; returns (and writes to OUT/fixtures.json) a count per set."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = THUMB_SIZES if quick else DEFAULT_SIZES
    video_size = (96, 64) if quick else (320, 240)
    counts: dict[str, int] = {}

    photos: list[PhotoInfo] = []
    if "photos" in kinds:
        photos = write_photo_corpus(_fresh(out / "photos"), seed, images, sizes=sizes)
        _dump(out / "photos.json", _rel(out, photos))
        counts["photos"] = len(photos)
    if "edits" in kinds:
        # Dedicated mid-size originals: edits of thumbnails would say little about matching.
        edits_dir = _fresh(out / "edits")
        originals = write_photo_corpus(edits_dir / "originals", seed, EDIT_ORIGINALS,
                                       sizes=((160, 120),) if quick else ((640, 480), (480, 640)),
                                       formats=("jpeg", "png_rgb"), flat_every=0)
        counts["edits"] = len(write_variants(originals, edits_dir / "variants", seed))
    if "videos" in kinds:
        vdir = _fresh(out / "videos")
        written: list[VideoInfo] = []
        for j in range(videos):
            ext = ".mp4" if j % 2 == 0 else ".avi"
            info = make_video(np.random.default_rng([seed, 300, j]), vdir / f"video_{j:03d}{ext}",
                              seconds=4 if quick else 10, fps=5, size=video_size)
            written.append(info)
            written.extend(write_video_variants(info, vdir / "variants"))
        _dump(out / "videos.json", _rel(out, written))
        counts["videos"] = len(written)
    if "evidence" in kinds:
        spec = make_evidence(_fresh(out / "evidence"), seed, n_images=images, n_videos=videos,
                             sizes=sizes[:4] if quick else sizes[:6], video_size=video_size)
        (out / "evidence_spec.json").write_text(spec.to_json(), encoding="utf-8")
        counts["evidence"] = len(spec.entries)
    if "lists" in kinds:
        entries = random_entries(np.random.default_rng([seed, 400]), max(3, images))
        infos = write_hash_lists(_fresh(out / "lists"), entries, seed)
        rows = [dict(asdict(i), path=os.path.relpath(i.path, out)) for i in infos]
        _dump(out / "lists.json", rows)
        counts["lists"] = len(infos)
    if "hostile" in kinds:
        hs = write_hostile(_fresh(out / "hostile"), seed, bomb_bytes=(4 if quick else 64) * 1024 * 1024,
                           sparse_bytes=sparse_bytes)
        _dump(out / "hostile_spec.json", {
            "entries": json.loads(hs.evidence.to_json())["entries"],
            "cases": [asdict(c) for c in hs.cases],
        })
        counts["hostile"] = len(hs.cases)
    if "demo" in kinds:
        demo = make_demo(out / "demo", seed=seed)
        files = demo.expected["files"]
        counts["demo"] = len(files) if isinstance(files, dict) else 0
    summary: dict[str, object] = {"seed": seed, "images": images, "videos": videos, "quick": quick,
                                  "counts": counts}
    _dump(out / "fixtures.json", summary)
    return summary
