"""Descriptor search for local-feature matching: the exact scan against the inverted file.

A media bank's (or a case's known-bad) ORB descriptors are searched once per query keypoint.
The exact `HammingIndex` scan costs a query image time linear in the bank's descriptors; past
`media_bank.APPROXIMATE_FROM` descriptors a `FeatureSet` is searched through an inverted file
(FAISS `IndexBinaryIVF`, centroids sampled from the descriptors, `IVF_PROBES` lists probed).
This measures both on the same queries, in the same process, through `match_features` (the
scan's call, geometric verification included):

- bank: `BANK` generated originals (the media_scale photos: JPEG q85, 320-400 px, described as
  `triage bank import-media` does, up to 500 keypoints); the 10,000-image row adds 9,000 more
  generated photos of the same kind, described the same way. Real descriptors, not tiled
  copies with flipped bits: those are near-uniform codes that an inverted file files under the
  few centroids nearest the codes' mean, which measured a tenfold cost no real bank shows;
- queries: `EDITS` edited copies of bank originals, cycling through `QUERY_EDITS` (crops 5-20 %,
  text and logo overlays, caption bar, screenshots, rotations 1-5°, half size; each re-encoded)
  and as many distinct photos, described as a scan does (up to 1,000 keypoints).

Reported per bank size and engine: CPU ms per query image for the search and the whole
match, index build CPU, edited copies verified against their original, distinct photos or
edits verified against any other item, and the share of the exact search's putative pairs
the inverted file returns. The exact scan at 10,000 images runs on a tenth of the queries
(its cost per image is what is compared).

Run: `python -m benchmarks.descriptor_search [--quick] [--out DIR]`.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.harness import main, write_results
from benchmarks.media_scale import SEED, _photo
from benchmarks.plots import grid, save
from hashing.algorithms.local_features import LocalFeatures, describe_query_rgb, describe_rgb
from index.faiss_store import FaissBinaryIndex, range_pairs
from index.media_bank import FeatureSet
from synthetic_fixtures.edits import EDITS as EDIT_FNS
from synthetic_fixtures.edits import edit_rng
from triage.verify import match_features

BANK = 1000
EDITS = 200
RADIUS = 40  # verify.MATCH_RADIUS
QUERY_EDITS = ("crop_5", "crop_10", "crop_20", "text_overlay", "logo_overlay", "caption_bar",
               "screenshot", "screenshot_phone", "rotate_1", "rotate_3", "rotate_5", "resize_50")


@dataclass(frozen=True, slots=True)
class Config:
    bank: int  # originals the edits are made from
    edits: int  # edited queries (and as many distinct photos)
    sizes: tuple[int, ...]  # bank images per row
    exact_every: int  # the exact scan on the largest row runs on every n-th query


FULL = Config(BANK, EDITS, (1_000, 10_000), 10)
QUICK = Config(100, 20, (100, 1_000), 2)


def _decoded(img: Image.Image) -> np.ndarray:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=85)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB"))


def _bank_item(i: int) -> LocalFeatures:
    return describe_rgb(_decoded(_photo((0, i))))


def _query(args: tuple[int, int]) -> LocalFeatures:
    k, bank = args
    if k < 0:  # a distinct photo
        return describe_query_rgb(_decoded(_photo((1, -k))))
    i = (k * 7) % bank
    name = QUERY_EDITS[k % len(QUERY_EDITS)]
    return describe_query_rgb(_decoded(EDIT_FNS[name](_photo((0, i)), edit_rng(SEED, i, name))))


def _extra_item(k: int) -> LocalFeatures:
    return describe_rgb(_decoded(_photo((2, k))))


def _measure(refs: FeatureSet, queries: list[LocalFeatures], truth: list[int],
             kinds: list[str]) -> dict[str, Any]:
    codes = np.concatenate([q.descriptors for q in queries])
    c0 = time.process_time()
    result = refs.index.range_search(codes, RADIUS)
    search = time.process_time() - c0
    pairs = range_pairs(result)
    c0 = time.process_time()
    found = match_features(queries, refs)
    match = time.process_time() - c0
    right = {m.query for m in found if truth[m.query] == m.item}
    return {
        "queries": len(queries), "search_ms_per_image": 1e3 * search / len(queries),
        "match_ms_per_image": 1e3 * match / len(queries),
        "edits": sum(t >= 0 for t in truth), "edits_verified": len(right),
        "edits_missed": dict(sorted(Counter(kinds[k] for k, t in enumerate(truth)
                                            if t >= 0 and k not in right).items())),
        "wrong_or_distinct_verified": sum(1 for m in found if truth[m.query] != m.item),
        "_pairs": pairs,
    }


def run(out: str | Path, quick: bool = False) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    bank, n_edits = cfg.bank, cfg.edits
    workers = min(2, os.cpu_count() or 1)
    with ProcessPoolExecutor(workers) as pool:
        feats = list(pool.map(_bank_item, range(bank), chunksize=20))
        keys = [(k, bank) for k in range(n_edits)] + [(-k, bank) for k in range(1, n_edits + 1)]
        queries = list(pool.map(_query, keys, chunksize=10))
        feats += pool.map(_extra_item, range(max(cfg.sizes) - bank), chunksize=20)
    truth = [(k * 7) % bank for k in range(n_edits)] + [-1] * n_edits
    kinds = [QUERY_EDITS[k % len(QUERY_EDITS)] for k in range(n_edits)] + ["distinct"] * n_edits
    # compile the exact scan's kernels and load FAISS before any clock runs
    for approximate in (False, True):
        warm = FeatureSet.build(feats[:4], approximate=approximate)
        match_features(queries[:1], warm)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="descriptor-search-") as scratch:
        for items in cfg.sizes:
            tiled = feats[:items]
            every = cfg.exact_every if items == max(cfg.sizes) else 1
            sub = list(range(0, len(queries), every))
            by_engine: dict[str, dict[str, Any]] = {}
            for engine, approximate in (("exact", False), ("ivf", True)):
                # the inverted file is saved as a media bank saves it, then opened again as the
                # next scan does (features concatenated, codes hashed, file read and checked)
                saved = os.path.join(scratch, f"{items}.ivf") if approximate else None
                c0 = time.process_time()
                refs = FeatureSet.build(tiled, approximate=approximate, saved=saved)
                build = time.process_time() - c0
                c0 = time.process_time()
                if saved is not None:
                    refs = FeatureSet.build(tiled, approximate=True, saved=saved)
                reopen = time.process_time() - c0 if saved is not None else None
                on = sub if engine == "exact" else range(len(queries))
                got = _measure(refs, [queries[k] for k in on], [truth[k] for k in on],
                               [kinds[k] for k in on])
                got.update(items=items, descriptors=int(refs.index.ntotal), engine=engine,
                           build_cpu_s=build, reopen_cpu_s=reopen, index_mib=refs.nbytes / 2**20,
                           lists=(refs.index.nlist
                                  if isinstance(refs.index, FaissBinaryIndex) else 0))
                by_engine[engine] = got
            exact, ivf = by_engine["exact"], by_engine["ivf"]
            want = exact.pop("_pairs")
            ivf.pop("_pairs")
            sub_codes = np.concatenate([queries[k].descriptors for k in sub])
            got_pairs = range_pairs(refs.index.range_search(sub_codes, RADIUS))  # the inverted file
            ivf["pair_recall"] = len(want & got_pairs) / len(want) if want else 1.0
            exact["pair_recall"] = 1.0
            ivf["speedup"] = exact["match_ms_per_image"] / ivf["match_ms_per_image"]
            rows += [exact, ivf]
            print(f"{items:,} items: exact {exact['match_ms_per_image']:.0f} ms, ivf "
                  f"{ivf['match_ms_per_image']:.0f} ms an image, pairs {ivf['pair_recall']:.3f}",
                  flush=True)
    result = {"quick": quick, "config": {"bank": bank, "edits": n_edits,
                                         "sizes": list(cfg.sizes)},
              "rows": rows, "load": list(os.getloadavg())}
    columns = ("bank images", "descriptors", "engine", "lists", "build CPU s",
               "saved index reopen CPU s", "search ms/image", "match ms/image", "speed-up",
               "edits verified", "edits missed", "other verified", "pairs kept", "index MiB",
               "queries")
    table = [(r["items"], f"{r['descriptors']:,}", r["engine"], r["lists"] or "",
              f"{r['build_cpu_s']:.1f}",
              "" if r.get("reopen_cpu_s") is None else f"{r['reopen_cpu_s']:.2f}",
              f"{r['search_ms_per_image']:.1f}",
              f"{r['match_ms_per_image']:.1f}", f"{r.get('speedup', 1.0):.1f}x",
              f"{r['edits_verified']} / {r['edits']}",
              ", ".join(f"{k} {n}" for k, n in r["edits_missed"].items()) or "none",
              r["wrong_or_distinct_verified"],
              f"{r['pair_recall']:.3f}", f"{r['index_mib']:.0f}", r["queries"])
             for r in rows]
    notes = ("CPU time of one process (FAISS and numba may use 2 threads: CPU, not wall, is "
             "compared). Queries: edited copies of bank originals and as many distinct "
             "photos; 'other verified' counts a distinct photo or an edit verified against "
             "any item but its original. Pairs kept: the exact search's (query keypoint, bank "
             f"descriptor) pairs within {RADIUS} bits that the inverted file also returns. "
             f"Load average: {', '.join(f'{x:.1f}' for x in result['load'])}.")
    write_results(out, "descriptor_search", result, columns, table, notes)
    fig, (ax,) = grid(1, 1, (5.5, 4.0))
    for engine in ("exact", "ivf"):
        pts = [(r["items"], r["match_ms_per_image"]) for r in rows if r["engine"] == engine]
        ax.plot(*zip(*pts, strict=True), marker="o", label=engine)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bank images (500 descriptors each)")
    ax.set_ylabel("CPU ms per query image (match)")
    ax.legend()
    save(fig, Path(out) / "descriptor_search.png", "Local-feature matching cost")
    return result


if __name__ == "__main__":
    main(run, "descriptor_search", __doc__)
