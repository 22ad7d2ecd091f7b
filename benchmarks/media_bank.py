"""Media-bank benchmark: what a bank built from original media finds that hash lists cannot
(crops, overlays, screenshots, collage cells, small rotations, each also re-encoded as JPEG),
against the peers in one run, with false positives counted among thousands of distinct
photos; and the cost: descriptors and bytes per bank image, description and matching
throughput at 10^4 and 10^5 images.

Series (a query "finds" its original when the original is among what it matches):
- `pdq`, `phash`: the query's hash against the originals' (default radii), as a list would;
- `crop_resistant`: imagehash's `crop_resistant_hash` (segment dHashes), `matches()` with its
  defaults, on every original, edit and negative (~0.3 s CPU an image, in worker processes);
- `pdq_grid`: the query's PDQ against the originals' sub-window PDQs (and full PDQ);
- `orb`: local features with geometric verification (`triage.verify`);
- `media_bank`: any of pdq, pdq_grid, orb, which is what a scan reports.

Scale: large indexes cannot be generated and described here in reasonable time, so they are
built from the real features of the described photos, tiled with copies whose bits are
flipped with probability 0.25 (each copy ~64 bits from its source, beyond the match radius,
keeping ORB's biased bit statistics). Matching is timed for real query images against that
index. In-case linking matches every image of a case against the case's known-bad images
only (`triage.local_match.CaseLinker`), so a case of N images with K known-bad costs N
queries against a K-image index: the rows for 100 and 1,000 known-bad images are a 10^4 and
a 10^5-image case at 1 % known-bad (linear in N at a given share), and the 10^4 row a media
bank of that size. The in-case row times `CaseLinker` itself (spilled to disk, as a scan
runs it) on a tiled case.

Run: `triage bench media_bank [--quick]` or `python -m benchmarks.media_bank [--quick]`.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image, ImageOps

from benchmarks import harness, plots
from hashing import codec
from hashing.algorithms.imagehash_family import imagehash_hashes
from hashing.algorithms.local_features import (
    MAX_KEYPOINTS,
    QUERY_KEYPOINTS,
    LocalFeatures,
    describe_query_rgb,
    describe_rgb,
)
from hashing.algorithms.pdq import pdq_from_rgb
from hashing.algorithms.pdq_windows import GRID
from hashing.registry import spec
from index.hamming import HammingIndex
from index.media_bank import FeatureSet
from synthetic_fixtures.edits import EDITS, edit_rng
from synthetic_fixtures.photos import make_photo
from triage.verify import match_features

SERIES = ("pdq", "phash", "crop_resistant", "pdq_grid", "orb", "media_bank")
JPEG_QUALITY = 70
CROP_RESISTANT_WORKERS = 2
# Candidate sub-window grids measured against the crops (the middle one is GRID).
GRIDS: dict[str, tuple[tuple[float, int], ...]] = {
    "sparse": ((0.9, 2), (0.8, 2)),
    "chosen": GRID,
    "dense": ((0.95, 4), (0.9, 5), (0.85, 5), (0.8, 6), (0.7, 7)),
}


@dataclass(frozen=True, slots=True)
class Config:
    n_originals: int
    min_width: int
    max_width: int
    n_negatives: int
    neg_min_width: int
    neg_max_width: int
    n_crop_resistant: int  # originals (and a proportional share of negatives) for the peer
    scale_items: tuple[int, ...]
    scale_queries: int
    case_images: int  # the timed in-case linking run (1 % of them known-bad)
    seed: int = 20261201


FULL = Config(40, 640, 1024, 2000, 320, 480, 40, (100, 1_000), 20, 2_000)
QUICK = Config(8, 320, 400, 40, 240, 320, 8, (100, 1_000), 20, 300)


def _crop30(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    dw, dh = round(w * 0.3), round(h * 0.3)
    left, top = int(rng.integers(0, dw + 1)), int(rng.integers(0, dh + 1))
    return img.crop((left, top, w - (dw - left), h - (dh - top)))


def _jpeg(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return im.convert("RGB")


def _collage(cells: list[Image.Image]) -> Image.Image:
    """A 2 x 2 collage, 1024 x 768, each cell an original scaled and centre-cropped to fill a
    quarter, as collage apps lay photos out (their aspect kept: a portrait photo is cropped
    to the landscape cell, never squashed into it)."""
    out = Image.new("RGB", (1024, 768), (255, 255, 255))
    for k, img in enumerate(cells):
        cell = ImageOps.fit(img, (508, 380), Image.Resampling.LANCZOS)
        out.paste(cell, ((k % 2) * 514 + 2, (k // 2) * 386 + 2))
    return out


def _edit_fns() -> dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]]:
    order = ("crop_5", "crop_10", "crop_20", "crop_30", "text_overlay", "logo_overlay",
             "screenshot", "rotate_1", "rotate_3", "rotate_5")
    return {n: _crop30 if n == "crop_30" else EDITS[n] for n in order}


@dataclass(slots=True)
class Signatures:
    """What each series needs of one image (pixels are dropped once these exist)."""

    pdq: np.ndarray  # uint8[32]
    pdq_quality: int
    phash: np.ndarray  # uint8[8]
    features: LocalFeatures
    crop_resistant: Any = None


def _crop_resistant(img: Image.Image) -> tuple[Any, float]:
    """imagehash's crop-resistant hash of one image and the CPU seconds it took (run in a
    worker process: at ~0.3 s an image it is the run's largest cost)."""
    c0 = time.process_time()
    return imagehash.crop_resistant_hash(img), time.process_time() - c0


class _CropResistantPool:
    """`_crop_resistant` in worker processes, at most `PENDING` images in flight (each is
    pickled to a worker; the pool must not hold the whole run's pixels); `workers=0` runs it
    in this process."""

    PENDING = 64

    def __init__(self, workers: int) -> None:
        self.pool = ProcessPoolExecutor(workers) if workers else None
        self.futures: list[Future[tuple[Any, float]]] = []

    def submit(self, img: Image.Image) -> Future[tuple[Any, float]]:
        if self.pool is None:
            done: Future[tuple[Any, float]] = Future()
            done.set_result(_crop_resistant(img))
            return done
        pending = [f for f in self.futures[-2 * self.PENDING:] if not f.done()]
        if len(pending) >= self.PENDING:
            wait(pending[:len(pending) - self.PENDING + 1])
        f = self.pool.submit(_crop_resistant, img.copy())
        self.futures.append(f)
        return f

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def _resolve(sigs: list[Signatures], timer: dict[str, float]) -> None:
    """Replace each pending crop-resistant hash by its segment hashes, uint8[k, 8]."""
    for s in sigs:
        if isinstance(s.crop_resistant, Future):
            multi, cpu = s.crop_resistant.result()
            timer["crop_resistant"] += cpu
            timer["crop_resistant_n"] += 1
            s.crop_resistant = (multi, _segment_codes(multi))


def _segment_codes(multi: Any) -> np.ndarray:
    return np.stack([np.packbits(np.asarray(h.hash, bool).ravel()) for h in
                     multi.segment_hashes]).astype(np.uint8)


def _sign(img: Image.Image, crop_resistant: _CropResistantPool | None,
          timer: dict[str, float], bank: bool = False) -> Signatures:
    """Signatures of a query image (described as a scan does) or, with `bank`, of a bank
    item (described as `bank import-media` does)."""
    rgb = np.asarray(img.convert("RGB"))
    t0 = time.perf_counter()
    res = pdq_from_rgb(rgb)
    ph = imagehash_hashes(img, ("phash",))["phash"]
    t1 = time.perf_counter()
    feats = describe_rgb(rgb) if bank else describe_query_rgb(rgb)
    t2 = time.perf_counter()
    timer["hash"] += t1 - t0
    timer["describe"] += t2 - t1
    timer["described"] += 1
    crh = crop_resistant.submit(img) if crop_resistant is not None else None
    return Signatures(np.frombuffer(codec.hex_to_bits("pdq", res.hash), np.uint8), res.quality,
                      np.frombuffer(codec.hex_to_bits("phash", ph), np.uint8), feats, crh)


def _size(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int]:
    w = int(rng.integers(lo, hi + 1))
    return (w, w * 3 // 4) if rng.random() < 0.75 else (w * 3 // 4, w)


def _window_codes(originals: list[Image.Image], grid: tuple[tuple[float, int], ...]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sub-window PDQs (above the quality floor) of every original and the original of each."""
    from hashing.algorithms.pdq_windows import window_hashes
    from hashing.pdq_kernels import rgb_to_luma

    floor = spec("pdq_grid").quality_floor or 0
    codes: list[bytes] = []
    owner: list[int] = []
    for i, img in enumerate(originals):
        luma = rgb_to_luma(np.ascontiguousarray(np.asarray(img.convert("RGB"))))
        for h, q in window_hashes(luma, grid):
            if q >= floor:
                codes.append(bytes.fromhex(h))
                owner.append(i)
    arr = np.frombuffer(b"".join(codes), np.uint8).reshape(-1, 32)
    return arr, np.asarray(owner, np.int64)


def _hash_hits(bank: np.ndarray, queries: np.ndarray, radius: int) -> list[set[int]]:
    lims, _, ids = HammingIndex(bank).range_search(queries, radius)
    return [set(ids[lims[q]:lims[q + 1]].tolist()) for q in range(queries.shape[0])]


def _found(orig: list[Signatures], queries: list[Signatures], windows: tuple[np.ndarray,
           np.ndarray], refs: FeatureSet, n_cr: int) -> dict[str, list[set[int]]]:
    """Per series, the originals each query matched."""
    floor = spec("pdq").quality_floor or 0
    bank_pdq = np.stack([s.pdq for s in orig])
    q_pdq = np.stack([s.pdq for s in queries])
    ok_q = [s.pdq_quality >= floor for s in queries]
    ok_b = np.array([s.pdq_quality >= floor for s in orig])
    out: dict[str, list[set[int]]] = {}
    pdq_r = spec("pdq").default_radius or 0
    out["pdq"] = [{j for j in hits if ok_b[j]} if ok else set() for hits, ok in
                  zip(_hash_hits(bank_pdq, q_pdq, pdq_r), ok_q, strict=True)]
    out["phash"] = _hash_hits(np.stack([s.phash for s in orig]), np.stack([s.phash for s in
                              queries]), spec("phash").default_radius or 0)
    w_codes, w_owner = windows
    w_hits = _hash_hits(w_codes, q_pdq, spec("pdq_grid").default_radius or 0)
    out["pdq_grid"] = [({int(w_owner[r]) for r in hits} | p) if ok else set()
                       for hits, p, ok in zip(w_hits, out["pdq"], ok_q, strict=True)]
    matches = match_features([s.features for s in queries], refs)
    orb: list[set[int]] = [set() for _ in queries]
    for m in matches:
        orb[m.query].add(m.item)
    out["orb"] = orb
    out["media_bank"] = [a | b | c for a, b, c in zip(out["pdq"], out["pdq_grid"], orb,
                                                       strict=True)]
    out["crop_resistant"] = _crop_resistant_hits(orig[:n_cr], queries)
    return out


def _crop_resistant_hits(orig: list[Signatures], queries: list[Signatures]) -> list[set[int]]:
    """What `orig[j].crop_resistant.matches(query)` says with its defaults (one segment hash
    within 25 % of 64 bits of one of the other's), for every pair at once: all originals'
    segment hashes in one exact Hamming index, each query's segments searched at radius 16.
    Checked against `matches()` itself on a sample of pairs."""
    radius = 16  # imagehash: len(segment hash) * bit_error_rate 0.25, inclusive
    codes = [s.crop_resistant[1] for s in orig]
    out: list[set[int]] = [set() for _ in queries]
    if not codes:
        return out
    owner = np.repeat(np.arange(len(codes)), [c.shape[0] for c in codes])
    index = HammingIndex(np.ascontiguousarray(np.concatenate(codes)))
    for q, s in enumerate(queries):
        if s.crop_resistant is None:
            continue
        lims, _, ids = index.range_search(s.crop_resistant[1], radius)
        out[q] = {int(owner[i]) for i in ids}
    for q in range(0, len(queries), max(1, len(queries) // 40)):
        if queries[q].crop_resistant is not None:
            for j in range(0, len(orig), max(1, len(orig) // 5)):
                want = orig[j].crop_resistant[0].matches(queries[q].crop_resistant[0])
                assert want == (j in out[q]), (q, j)
    return out


def _grid_measurement(originals: list[Image.Image], crops: dict[str, list[Signatures]]
                      ) -> list[dict[str, Any]]:
    rows = []
    r = spec("pdq_grid").default_radius or 0
    for name, grid in GRIDS.items():
        codes, owner = _window_codes(originals, grid)
        row: dict[str, Any] = {"grid": name, "windows_per_image": codes.shape[0] / len(originals)}
        for edit, sigs in crops.items():
            hits = _hash_hits(codes, np.stack([s.pdq for s in sigs]), r)
            row[edit] = float(np.mean([i in {int(owner[k]) for k in h}
                                       for i, h in enumerate(hits)]))
        rows.append(row)
    return rows


def _mutated(codes: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    bits = np.unpackbits(codes, axis=1)
    return np.packbits(bits ^ (rng.random(bits.shape) < p), axis=1)


def _scale(feats: list[LocalFeatures], queries: list[LocalFeatures], items: int,
           seed: int) -> dict[str, Any]:
    """Matching throughput of real queries against an index of `items` bank images."""
    rng = np.random.default_rng(seed)
    reps = max(1, -(-items // len(feats)))
    tiled: list[LocalFeatures] = []
    for r in range(reps):
        for f in feats:
            if len(tiled) == items:
                break
            d = f.descriptors if r == 0 else _mutated(f.descriptors, rng, 0.25)
            tiled.append(LocalFeatures(f.width, f.height, f.keypoints, d))
    t0 = time.perf_counter()
    refs = FeatureSet.build(tiled)
    plan = refs.index.prepare(40)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    matches = match_features(queries, refs)
    dt = time.perf_counter() - t0
    return {
        "items": items, "descriptors": int(refs.index.ntotal), "index_build_s": build,
        "method": plan.method, "index_bytes": refs.nbytes + refs.index.table_bytes,
        "queries": len(queries), "match_s": dt, "images_per_s": len(queries) / dt,
        "matches": len(matches),
    }


def _in_case(bad: list[LocalFeatures], copies: list[tuple[int, LocalFeatures]],
             others: list[LocalFeatures], n_images: int, seed: int, tmp: Path
             ) -> dict[str, Any]:
    """In-case linking as a scan runs it: `n_images` images spilled to `tmp`, 1 % of them
    known-bad (the first of the `bad` originals), the edited copies of those among `copies`
    ((original's position, features)), and `others` tiled with flipped bits for the rest."""
    from triage.items import CaseItem
    from triage.local_match import CaseLinker

    rng = np.random.default_rng(seed)
    n_bad = max(1, n_images // 100)
    feats: list[LocalFeatures] = []
    for k in range(n_bad):
        f = bad[k % len(bad)]
        feats.append(f if k < len(bad) else LocalFeatures(
            f.width, f.height, f.keypoints, _mutated(f.descriptors, rng, 0.25)))
    copies = [c for c in copies if c[0] < n_bad]
    want = {(n_bad + j, i) for j, (i, _) in enumerate(copies)}
    feats += [f for _, f in copies]
    k = 0
    while len(feats) < n_images:
        f = others[k % len(others)]
        feats.append(f if k < len(others) else LocalFeatures(
            f.width, f.height, f.keypoints, _mutated(f.descriptors, rng, 0.25)))
        k += 1
    case = tmp / "case"
    case.mkdir()
    t0, c0 = time.perf_counter(), time.process_time()
    with CaseLinker(case) as linker:
        for lo in range(0, len(feats), 1000):  # chunk by chunk, as the scan adds them
            linker.add([CaseItem.from_row(lo + j, {"path": "-", "status": "hashed"},
                                          f.to_bytes()) for j, f in enumerate(feats[lo:lo + 1000])])
        t1, c1 = time.perf_counter(), time.process_time()
        pairs = linker.pairs(set(range(n_bad)))
        spill = sum(p.stat().st_size for p in case.iterdir())
    t2, c2 = time.perf_counter(), time.process_time()
    got = {(a, b) for a, b, _ in pairs}
    return {
        "images": len(feats), "known_bad": n_bad, "spill_bytes": spill,
        "add_s": t1 - t0, "link_s": t2 - t1, "link_cpu_s": c2 - c1, "add_cpu_s": c1 - c0,
        "images_per_s": len(feats) / (t2 - t1), "copies": len(want),
        "copies_linked": len(got & want), "other_links": len(got - want),
    }


def _bank_bytes(originals: list[Image.Image], tmp: Path) -> dict[str, Any]:
    """Import the originals with the real importer; bytes of the store per bank image."""
    from index.banks import BankStore
    from triage.media_import import MediaImportOptions, import_media

    folder = tmp / "holdings"
    folder.mkdir()
    for i, img in enumerate(originals):
        img.save(folder / f"{i:05d}.jpg", quality=90)
    store_dir = tmp / "store"
    t0 = time.perf_counter()
    with BankStore(store_dir) as store:
        result = import_media(store, str(folder), MediaImportOptions(bank="bench", workers=2))
        store.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        feats = store.con.execute("SELECT SUM(LENGTH(features)), COUNT(*) FROM local_features"
                                  ).fetchone()
        windows = store.con.execute("SELECT COUNT(*) FROM entries WHERE algorithm = 'pdq_grid'"
                                    ).fetchone()[0]
    seconds = time.perf_counter() - t0
    total = sum(p.stat().st_size for p in store_dir.rglob("*") if p.is_file()
                and "reports" not in p.parts)
    n = len(originals)
    return {
        "images": n, "import_seconds": seconds, "import_images_per_s": n / seconds,
        "store_bytes_per_image": total / n, "feature_bytes_per_image": feats[0] / feats[1],
        "windows_per_image": windows / n, "added": result.added,
    }


def run(out_dir: str | Path, quick: bool = False, originals: int | None = None,
        negatives: int | None = None) -> dict[str, Any]:
    """`originals`/`negatives` override the config's (a finer recall grain, more negatives)."""
    cfg = QUICK if quick else FULL
    if originals is not None:
        cfg = replace(cfg, n_originals=originals)
    if negatives is not None:
        cfg = replace(cfg, n_negatives=negatives)
    out = Path(out_dir)
    t_start = time.perf_counter()
    timer: dict[str, float] = {"hash": 0.0, "describe": 0.0, "described": 0,
                               "crop_resistant": 0.0, "crop_resistant_n": 0}
    originals = []
    for i in range(cfg.n_originals):
        rng = np.random.default_rng((cfg.seed, i))
        originals.append(Image.fromarray(make_photo(rng, *_size(rng, cfg.min_width,
                                                                 cfg.max_width))))
    pool = _CropResistantPool(CROP_RESISTANT_WORKERS)

    def cr(take: bool) -> _CropResistantPool | None:
        return pool if take else None

    orig = [_sign(img, cr(i < cfg.n_crop_resistant), timer, bank=True)
            for i, img in enumerate(originals)]
    refs = FeatureSet.build([s.features for s in orig])
    windows = _window_codes(originals, GRID)
    fns = _edit_fns()
    edit_names: list[str] = []
    queries: list[Signatures] = []
    truth: list[int] = []
    by_edit: dict[str, list[int]] = {}
    crops: dict[str, list[Signatures]] = {}
    for name, fn in fns.items():
        for jpeg in (False, True):
            label = f"{name}+jpeg" if jpeg else name
            edit_names.append(label)
            for i, img in enumerate(originals):
                rng = edit_rng(cfg.seed, i, name) if name in EDITS else \
                    np.random.default_rng((cfg.seed, i, 30))
                v = fn(img, rng)
                v = _jpeg(v) if jpeg else v
                by_edit.setdefault(label, []).append(len(queries))
                queries.append(_sign(v, cr(i < cfg.n_crop_resistant), timer))
                truth.append(i)
            if name.startswith("crop") and not jpeg:
                crops[label] = [queries[k] for k in by_edit[label]]
    # collage cells: originals 4k..4k+3 in one image; each cell is one positive
    collage_queries: set[int] = set()
    for k in range(0, cfg.n_originals - 3, 4):
        for jpeg in (False, True):
            label = "collage_cell+jpeg" if jpeg else "collage_cell"
            img = _collage(originals[k:k + 4])
            img = _jpeg(img) if jpeg else img
            collage_queries.add(len(queries))
            by_edit.setdefault(label, []).append(len(queries))
            queries.append(_sign(img, cr(k < cfg.n_crop_resistant), timer))
            truth.append(k)
    edit_names += ["collage_cell", "collage_cell+jpeg"]
    negatives = []
    n_neg_cr = cfg.n_negatives * cfg.n_crop_resistant // max(1, cfg.n_originals)
    for k in range(cfg.n_negatives):
        rng = np.random.default_rng((cfg.seed, 10**6 + k))
        img = Image.fromarray(make_photo(rng, *_size(rng, cfg.neg_min_width, cfg.neg_max_width)))
        negatives.append(_sign(img, cr(k < n_neg_cr), timer))
    _resolve(orig + queries + negatives, timer)
    pool.close()

    t_match = time.perf_counter()
    found = _found(orig, queries, windows, refs, cfg.n_crop_resistant)
    neg_found = _found(orig, negatives, windows, refs, cfg.n_crop_resistant)
    match_seconds = time.perf_counter() - t_match
    n_bank_queries = len(queries) + len(negatives)

    recall: dict[str, dict[str, float]] = {}
    wrong: dict[str, int] = {s: 0 for s in SERIES}
    for label in edit_names:
        recall[label] = {}
        for s in SERIES:
            hits: list[bool] = []
            for q in by_edit[label]:
                if s == "crop_resistant" and truth[q] >= cfg.n_crop_resistant:
                    continue
                want = set(range(truth[q], truth[q] + 4)) if q in collage_queries else {truth[q]}
                if s == "crop_resistant":
                    want = {w for w in want if w < cfg.n_crop_resistant}
                got = found[s][q]
                hits.extend(w in got for w in want)
                wrong[s] += len(got - want)
            recall[label][s] = float(np.mean(hits)) if hits else float("nan")
    fp = {s: sum(1 for g in neg_found[s] if g) for s in SERIES}
    n_neg = {s: (n_neg_cr if s == "crop_resistant" else cfg.n_negatives) for s in SERIES}
    grid_rows = _grid_measurement(originals, crops)

    # scale: real features of the negatives (distinct photos) tiled to 10^4 / 10^5 items
    base = [s.features for s in negatives] + [s.features for s in orig]
    sample = [queries[k].features for k in range(0, len(queries),
                                                  max(1, len(queries) // cfg.scale_queries))]
    scale = [_scale(base, sample, n, cfg.seed) for n in cfg.scale_items]
    tmp = Path(tempfile.mkdtemp(prefix="bench-media-"))
    try:
        copies = [(truth[q], queries[q].features) for q in range(len(queries))
                  if q not in collage_queries]
        in_case = _in_case([s.features for s in orig], copies, [s.features for s in negatives],
                           cfg.case_images, cfg.seed, tmp)
        bank_cost = _bank_bytes(originals[: min(len(originals), 100)], tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kps = [len(s.features) for s in orig]
    q_kps = [len(s.features) for s in negatives]
    result: dict[str, Any] = {
        "quick": quick,
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "jpeg_quality": JPEG_QUALITY,
        "recall": recall,
        "wrong_item_matches": wrong,
        "negatives": {"images": n_neg, "false_positives": fp},
        "grid_measurement": grid_rows,
        "descriptors_per_image": {"mean": float(np.mean(kps)), "max": int(np.max(kps)),
                                  "bound": MAX_KEYPOINTS, "query_mean": float(np.mean(q_kps)),
                                  "query_bound": QUERY_KEYPOINTS},
        "describe_images_per_s": timer["described"] / timer["describe"],
        "hash_images_per_s": timer["described"] / timer["hash"],
        "crop_resistant_images_per_s": (timer["crop_resistant_n"] / timer["crop_resistant"]
                                        if timer["crop_resistant"] else None),
        "bank_match_images_per_s": n_bank_queries / match_seconds,
        "scale": scale,
        "in_case": in_case,
        "bank_cost": bank_cost,
        "load": os.getloadavg(),
    }
    out.mkdir(parents=True, exist_ok=True)
    _plot(out, edit_names, recall)
    result["total_seconds"] = time.perf_counter() - t_start
    rows = [(label, *(recall[label][s] for s in SERIES)) for label in edit_names]
    harness.write_results(out, "media_bank", result, ("edit", *SERIES), rows,
                          notes=_notes(result))
    return result


def _plot(out: Path, edit_names: list[str], recall: dict[str, dict[str, float]]) -> Path:
    fig, axes = plots.grid(1, ncols=1, panel_size=(max(8.0, 0.5 * len(edit_names)), 4.5))
    series = {s: [recall[e][s] for e in edit_names] for s in SERIES}
    plots.bars(axes[0], edit_names, series, "recall")
    axes[0].set_ylim(0, 1.05)
    return plots.save(fig, out / "media_bank.png",
                      title="Recall per edit: media bank signatures vs hash-only peers")


def _notes(r: dict[str, Any]) -> str:
    neg = r["negatives"]
    lines = [
        "### False positives",
        "",
        harness.markdown_table(
            ("series", "distinct negatives", "negatives matching any bank item",
             "positive queries matching a wrong item"),
            [(s, neg["images"][s], neg["false_positives"][s], r["wrong_item_matches"][s])
             for s in SERIES]),
        "",
        f"Bank: {r['config']['n_originals']} originals "
        f"({r['config']['min_width']}-{r['config']['max_width']} px wide); every edit is also "
        f"re-encoded as JPEG q{r['jpeg_quality']} (`+jpeg`). Collage: 2 x 2 cells of four "
        "originals in 1024 x 768; each cell counts as one positive. `crop_resistant` runs on "
        f"{r['config']['n_crop_resistant']} of the originals (their edits) and "
        f"{neg['images']['crop_resistant']} negatives, in {CROP_RESISTANT_WORKERS} worker "
        "processes (it is the slowest peer by far); its matches are `matches()`'s with its "
        "defaults, computed through one Hamming index (checked against `matches()` on a sample).",
        "",
        "### Sub-window grid (recall of plain crops by PDQ windows alone)",
        "",
        harness.markdown_table(
            ("grid", "windows per image", *[k for k in r["grid_measurement"][0]
                                            if k not in ("grid", "windows_per_image")]),
            [tuple(row.values()) for row in r["grid_measurement"]]),
        "",
        "### Cost",
        "",
        f"- descriptors per bank image: mean {r['descriptors_per_image']['mean']:.0f}, bound "
        f"{r['descriptors_per_image']['bound']}; per scanned image: mean "
        f"{r['descriptors_per_image']['query_mean']:.0f}, bound "
        f"{r['descriptors_per_image']['query_bound']}",
        f"- bytes per bank image in the store: {r['bank_cost']['store_bytes_per_image']:,.0f} "
        f"(local features {r['bank_cost']['feature_bytes_per_image']:,.0f}, "
        f"{r['bank_cost']['windows_per_image']:.0f} window PDQs); import "
        f"{r['bank_cost']['import_images_per_s']:.1f} images/s (2 workers, full hashing)",
        f"- description: {r['describe_images_per_s']:.0f} images/s (one core; PDQ + pHash "
        f"{r['hash_images_per_s']:.0f} images/s; crop_resistant_hash "
        f"{r['crop_resistant_images_per_s'] or 0:.1f} images/s)",
        f"- matching against the {r['config']['n_originals']}-image bank: "
        f"{r['bank_match_images_per_s']:.0f} images/s (all series)",
    ]
    for s in r["scale"]:
        lines.append(
            f"- {s['items']:,} bank (or case) images, {s['descriptors']:,} descriptors "
            f"({s['method']}, {s['index_bytes'] / 2**20:,.0f} MiB): matching "
            f"{s['images_per_s']:.1f} images/s ({s['queries']} query images; index built in "
            f"{s['index_build_s']:.1f} s)")
    c = r["in_case"]
    lines.append(
        f"- in-case linking (`CaseLinker`, spilled: {c['spill_bytes'] / c['images']:,.0f} bytes "
        f"an image on disk) of a {c['images']:,}-image case with {c['known_bad']} known-bad: "
        f"{c['images_per_s']:.1f} images/s ({c['link_s']:.0f} s, {c['link_cpu_s']:.0f} s CPU); "
        f"{c['copies_linked']} of {c['copies']} edited copies of a known-bad image linked, "
        f"{c['other_links']} other links")
    lines += ["", f"Load average during the run: {', '.join(f'{x:.1f}' for x in r['load'])} "
              "(2 cores shared with other developers: absolute rates are pessimistic)."]
    if r["quick"]:
        lines += ["", "**Quick mode**: a smoke run, not the published numbers."]
    return "\n".join(lines)


def main() -> None:
    """`harness.main`'s flags, plus the bank and negative counts (FULL is sized to fit the
    bench lock on a loaded machine; a quiet one affords more of both)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--out", default="benchmarks/results/media_bank")
    ap.add_argument("--originals", type=int, default=None, help=f"bank originals ({FULL.n_originals})")
    ap.add_argument("--negatives", type=int, default=None,
                    help=f"distinct negative photos ({FULL.n_negatives})")
    args = ap.parse_args()
    run(args.out, quick=args.quick, originals=args.originals, negatives=args.negatives)


if __name__ == "__main__":
    main()
