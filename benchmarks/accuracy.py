"""Accuracy benchmark: how often each matcher still finds an edited copy of a listed image, and
how often it matches an unrelated one, side by side:

* `pdq_ref`: the reference PDQ (`pdqhash` bindings) on both sides, quality floor on both sides
  (what a reference matcher such as HMA does);
* `pdq_dihedral`: round 1's scan: our PDQ with the 8 dihedral hashes derived from the query's
  DCT (as the reference's `compute_dihedral`), quality floor;
* `scan`: today's default scan, through the scan's own hashing code (`hashing.hasher`): the
  8 exact dihedral hashes plus the canonical variants (trim, caption, embedded, deskew), and
  hashes under the quality floor matched only within the low-quality radius;
* `phash`, `dhash`: imagehash at their default radii.

Originals are generated photo-like images; every edit in `synthetic_fixtures.edits.EDITS` is
applied to each. A positive pair is (original, its edit): the original plays the bank entry (its
stored-pixel hash) and the edit the query, as in a scan. Negatives are every ordered pair of
distinct originals and every (original, edit of another original); per edit family the false-
positive rate is taken over that family's cross pairs. Distances are kept as histograms over
0..bits, so recall and false-positive rate at any threshold (the ROC curves) are cumulative sums.

A separate low-information corpus (`synthetic_fixtures.photos.make_low_info`: flat, gradient,
sky, dark, blurred) measures what hashes under the PDQ quality floor do at tight radii: false
matches between distinct such images, and how many of their copies are found; the scan's
low-quality radius is chosen from these numbers.

Crop-robust rows: the same run also runs the media-bank benchmark (`benchmarks.media_bank`:
a bank built from original media; crops 5-30 %, text and logo overlays, screenshots, collage
cells, small rotations and their JPEG re-encodes) and puts its recall per edit, and its false
positives among thousands of distinct photos, in one table beside PDQ, pHash and imagehash's
`crop_resistant_hash` (`accuracy_crop_robust.png`).

Run: `triage bench accuracy [--quick]` or `python -m benchmarks.accuracy [--quick]`;
`python -m benchmarks.accuracy --merge-media-bank MEDIA_RESULT [--out DIR]` re-renders a saved
accuracy result with a separately run media-bank result's rows.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from benchmarks import harness, media_bank, plots
from hashing import codec
from hashing.algorithms.imagehash_family import imagehash_hashes
from hashing.algorithms.pdq import pdq_from_rgb
from hashing.hasher import HashOptions, hash_pixels
from hashing.registry import spec
from synthetic_fixtures.edits import EDITS, FAMILY_OF, edit_rng
from synthetic_fixtures.photos import LOW_INFO_KINDS, make_flat, make_low_info, make_photo
from triage.policy import LOW_QUALITY_RADIUS

Rule = Literal["none", "floor", "low_radius"]


@dataclass(frozen=True, slots=True)
class Series:
    """One matcher: its algorithm, how many query hashes an image sends, and how quality is
    treated (`floor`: under the floor on either side never matches; `low_radius`: then only
    within the low-quality radius)."""

    name: str
    algo: str
    queries: int
    rule: Rule


VARIANT_SLOTS = 4  # canonical variants kept per image (the detectors find at most 4)
SERIES_SPECS = (
    Series("pdq_ref", "pdq", 1, "floor"),
    Series("pdq_dihedral", "pdq", 8, "floor"),
    Series("scan", "pdq", 8 + VARIANT_SLOTS, "low_radius"),
    Series("phash", "phash", 1, "none"),
    Series("dhash", "dhash", 1, "none"),
)
SERIES = tuple(s.name for s in SERIES_SPECS)
SPEC_OF = {s.name: s for s in SERIES_SPECS}
IMAGEHASH_ALGOS = ("phash", "dhash")
SCAN_OPTIONS = HashOptions(algorithms=("pdq",), dihedral=True, variants=True)
# A recall below this at the default radius is called out as a weakness in the Markdown.
WEAK_RECALL = 0.9
GOAL_RECALL, GOAL_FPR = 0.80, 1e-5
LOW_INFO_RADII = (0, 2, 4, 8, 12, 16, 24, 31)
LOW_INFO_EDITS = ("format_png", "jpeg_q95", "jpeg_q70", "resize_50")


@dataclass(frozen=True, slots=True)
class Config:
    n_originals: int
    min_width: int
    max_width: int
    # Low-information images (near-solid colour): negatives only, to show what the floor is for.
    n_flat: int
    n_low_info: int = 0  # per kind, for the low-information study
    seed: int = 20261123


FULL = Config(n_originals=100, min_width=640, max_width=1024, n_flat=20, n_low_info=40)
QUICK = Config(n_originals=20, min_width=160, max_width=256, n_flat=6, n_low_info=4)


def _series_algorithm(series: str) -> str:
    return SPEC_OF[series].algo


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distance over the last axis of two broadcastable packed-bit arrays."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int32)


def _unpack(algo: str, hex_: str) -> np.ndarray:
    return np.frombuffer(codec.hex_to_bits(algo, hex_), np.uint8)


class HashTable:
    """Per series, the bank-side hash and the query hashes of a set of images, filled one
    image at a time (images are not kept). Unused query slots are marked invalid."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.bank: dict[str, np.ndarray] = {}
        self.bank_quality: dict[str, np.ndarray] = {}
        self.query: dict[str, np.ndarray] = {}
        self.query_quality: dict[str, np.ndarray] = {}
        self.valid: dict[str, np.ndarray] = {}
        for s in SERIES_SPECS:
            nbytes = spec(s.algo).nbytes
            self.bank[s.name] = np.zeros((*shape, nbytes), np.uint8)
            self.bank_quality[s.name] = np.zeros(shape, np.int32)
            self.query[s.name] = np.zeros((*shape, s.queries, nbytes), np.uint8)
            self.query_quality[s.name] = np.zeros((*shape, s.queries), np.int32)
            self.valid[s.name] = np.zeros((*shape, s.queries), bool)
        self.n_variants = np.zeros(shape, np.int32)

    def _set(self, name: str, where: tuple[int, ...], bank: str, bank_q: int,
             queries: list[tuple[str, int]]) -> None:
        algo = SPEC_OF[name].algo
        self.bank[name][where] = _unpack(algo, bank)
        self.bank_quality[name][where] = bank_q
        for k, (h, q) in enumerate(queries[: SPEC_OF[name].queries]):
            self.query[name][(*where, k)] = _unpack(algo, h)
            self.query_quality[name][(*where, k)] = q
            self.valid[name][(*where, k)] = True

    def put(self, where: tuple[int, ...], img: Image.Image) -> None:
        import pdqhash

        rgb = np.ascontiguousarray(np.asarray(img.convert("RGB")))
        bits, ref_q = pdqhash.compute(rgb)
        ref = codec.bitvector_to_hex(bits)
        self._set("pdq_ref", where, ref, int(ref_q), [(ref, int(ref_q))])
        r1 = pdq_from_rgb(rgb, dihedral=True)
        assert r1.dihedral is not None  # asked for above
        self._set("pdq_dihedral", where, r1.hash, r1.quality,
                  [(h, r1.quality) for h in r1.dihedral])
        rec = hash_pixels(rgb, SCAN_OPTIONS)
        q = rec.pdq_quality or 0
        scan_queries = [(h, q) for h in rec.pdq_dihedral or ()]
        scan_queries += [(v.hashes["pdq"], v.quality or 0) for v in rec.variants or ()]
        self.n_variants[where] = len(rec.variants or ())
        self._set("scan", where, rec.hashes["pdq"], q, scan_queries)
        for algo, text in imagehash_hashes(img, IMAGEHASH_ALGOS).items():
            self._set(algo, where, text, 0, [(text, 0)])

    @property
    def quality(self) -> np.ndarray:
        """Our PDQ quality of each image's stored pixels."""
        return self.bank_quality["scan"]


def series_distance(name: str, bank: np.ndarray, bank_q: np.ndarray, query: np.ndarray,
                    query_q: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Distance a matcher sees between bank hashes (..., nbytes) and query sets
    (..., K, nbytes), broadcast: the nearest valid query, with the series' quality rule; a
    pair that can never match gets bits + 1 (one past any threshold)."""
    s = SPEC_OF[name]
    never = spec(s.algo).bits + 1
    d = _hamming(bank[..., None, :], query)
    if s.rule != "none":
        floor = spec(s.algo).quality_floor or 0
        low = (np.asarray(bank_q)[..., None] < floor) | (query_q < floor)
        if s.rule == "floor":
            d = np.where(low, never, d)
        else:
            d = np.where(low & (d > LOW_QUALITY_RADIUS), never, d)
    return np.where(valid, d, never).min(axis=-1)


def _original_size(rng: np.random.Generator, cfg: Config) -> tuple[int, int]:
    w = int(rng.integers(cfg.min_width, cfg.max_width + 1))
    h = w * 3 // 4
    return (w, h) if rng.random() < 0.75 else (h, w)


def hash_flats(cfg: Config) -> HashTable:
    flats = HashTable((cfg.n_flat,))
    for k in range(cfg.n_flat):
        # A 4-word seed: a stream no original (seed, i) or edit (seed, i, j) generator uses.
        rng = np.random.default_rng((cfg.seed, 0, k, 0))
        flats.put((k,), Image.fromarray(make_flat(rng, *_original_size(rng, cfg))))
    return flats


def generate_and_hash(cfg: Config, edit_names: list[str]) -> tuple[HashTable, HashTable, float]:
    """Make the originals and all their edits, hashing each image as soon as it exists."""
    n, e = cfg.n_originals, len(edit_names)
    originals, edited = HashTable((n,)), HashTable((n, e))
    hash_seconds = 0.0
    for i in range(n):
        rng = np.random.default_rng((cfg.seed, i))
        img = Image.fromarray(make_photo(rng, *_original_size(rng, cfg)))
        t0 = time.perf_counter()
        originals.put((i,), img)
        hash_seconds += time.perf_counter() - t0
        for j, name in enumerate(edit_names):
            variant = EDITS[name](img, edit_rng(cfg.seed, i, name))
            t0 = time.perf_counter()
            edited.put((i, j), variant)
            hash_seconds += time.perf_counter() - t0
    return originals, edited, hash_seconds


def _dist(name: str, bank: HashTable, bsel: Any, query: HashTable, qsel: Any) -> np.ndarray:
    return series_distance(name, bank.bank[name][bsel], bank.bank_quality[name][bsel],
                           query.query[name][qsel], query.query_quality[name][qsel],
                           query.valid[name][qsel])


def positive_distances(orig: HashTable, edit: HashTable) -> dict[str, np.ndarray]:
    """Distance from each original to each of its edits: `int32[n, e]` per series."""
    return {s: _dist(s, orig, (slice(None), None), edit, (slice(None), slice(None)))
            for s in SERIES}


def _empty_histograms() -> dict[str, np.ndarray]:
    return {s: np.zeros(spec(_series_algorithm(s)).bits + 2, np.int64) for s in SERIES}


def _add(hist: np.ndarray, d: np.ndarray) -> None:
    hist += np.bincount(np.asarray(d).ravel(), minlength=len(hist))


def pair_histograms(table: HashTable) -> dict[str, np.ndarray]:
    """Distance histograms (length bits + 2) over every ordered pair (bank j, query i), i != j,
    of one set of images. Ordered pairs because a query set is not symmetric."""
    n = table.shape[0]
    off_diag = ~np.eye(n, dtype=bool)
    out = _empty_histograms()
    for s in SERIES:
        # rows are queries i, columns bank images j
        d = _dist(s, table, (None, slice(None)), table, (slice(None), None))
        _add(out[s], d[off_diag])
    return out


def cross_histograms(orig: HashTable, edit: HashTable,
                     columns: list[int] | None = None) -> dict[str, np.ndarray]:
    """Distance histograms over every (bank original j, query = an edit of original i), i != j,
    over the edit columns given (all by default)."""
    n = orig.shape[0]
    cols = list(range(edit.shape[1])) if columns is None else columns
    out = _empty_histograms()
    # one bank row at a time keeps the query-set XOR array small
    for j in range(n):
        others = np.flatnonzero(np.arange(n) != j)
        sel = (others[:, None], np.asarray(cols)[None, :])
        for s in SERIES:
            _add(out[s], _dist(s, orig, (j,), edit, sel))
    return out


def phash_radius_study(pos: dict[str, np.ndarray], edit_names: list[str],
                       radii: tuple[int, ...] = (8, 6, 4)) -> dict[str, Any]:
    """What a smaller pHash radius costs a scan, which also matches PDQ: per radius, edited
    pairs pHash finds and pairs pHash or the scan's PDQ finds; for each step down, the pairs
    only the larger radius found that PDQ does not (by edit). pHash distances are even (32
    ones), so 6 is the step below the default 8."""
    ph, pdq = pos["phash"], pos["scan"]
    by_pdq = pdq <= (spec("pdq").default_radius or 0)
    rows: dict[str, Any] = {"pairs": int(ph.size), "radii": {}}
    for r in radii:
        rows["radii"][str(r)] = {"phash": int((ph <= r).sum()),
                                 "phash_or_pdq": int(((ph <= r) | by_pdq).sum())}
    for hi, lo in zip(radii, radii[1:], strict=False):
        edge = (ph > lo) & (ph <= hi)
        lost = edge & ~by_pdq
        rows[f"{hi}->{lo}"] = {
            "edge_pairs": int(edge.sum()), "found_by_pdq": int((edge & by_pdq).sum()),
            "lost_by_edit": {edit_names[j]: int(lost[:, j].sum())
                             for j in range(len(edit_names)) if lost[:, j].any()},
        }
    return rows


def rate_at(hist: np.ndarray, radius: int) -> float:
    """Fraction of a distance histogram at or under `radius` (inclusive, as matching is)."""
    total = int(hist.sum())
    return float(hist[: radius + 1].sum() / total) if total else 0.0


def curve(hist: np.ndarray) -> np.ndarray:
    """Cumulative rate at every threshold 0..bits."""
    c = np.cumsum(hist[:-1])  # drop the "excluded by quality floor" bin
    return c / max(1, int(hist.sum()))


def reference_deviation(cfg: Config, orig: HashTable) -> dict[str, Any]:
    """Bits by which our PDQ (the scan's bank-side hash) differs from the `pdqhash` reference."""
    d = _hamming(orig.bank["pdq_ref"], orig.bank["scan"])
    return {"images": int(d.size), "mean_bits": float(d.mean()), "max_bits": int(d.max()),
            "identical": int((d == 0).sum())}


def _jpeg_or_resize(img: Image.Image, name: str) -> Image.Image:
    if name == "resize_50":
        return img.resize((max(1, img.width // 2), max(1, img.height // 2)),
                          Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if name == "format_png":
        img.save(buf, "PNG")
    else:
        img.save(buf, "JPEG", quality=int(name.removeprefix("jpeg_q")))
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return im.convert("RGB")


def low_info_study(cfg: Config) -> dict[str, Any]:
    """Raw PDQ (no floor) on low-information images: the quality they get, how close distinct
    ones come (to each other and to photos), and how many of their copies each radius finds."""
    hashes, quality, kinds = [], [], []
    copies: dict[str, list[int]] = {e: [] for e in LOW_INFO_EDITS}
    for k, kind in enumerate(LOW_INFO_KINDS):
        for i in range(cfg.n_low_info):
            rng = np.random.default_rng((cfg.seed, 1, k, i))
            img = Image.fromarray(make_low_info(rng, *_original_size(rng, cfg), kind))
            res = pdq_from_rgb(np.asarray(img))
            hashes.append(_unpack("pdq", res.hash))
            quality.append(res.quality)
            kinds.append(kind)
            for e in LOW_INFO_EDITS:
                copy = pdq_from_rgb(np.asarray(_jpeg_or_resize(img, e))).hash
                copies[e].append(int(_hamming(_unpack("pdq", copy), hashes[-1])))
    codes, q = np.array(hashes), np.array(quality)
    low = q < (spec("pdq").quality_floor or 0)
    lc = codes[low]
    d = _hamming(lc[:, None, :], lc[None, :, :])[~np.eye(len(lc), dtype=bool)]
    photos = []
    for i in range(min(cfg.n_originals, 50)):
        rng = np.random.default_rng((cfg.seed, i))
        photos.append(_unpack("pdq", pdq_from_rgb(make_photo(rng, *_original_size(rng, cfg))).hash))
    dp = _hamming(lc[:, None, :], np.array(photos)[None, :, :]).ravel() if len(lc) else \
        np.zeros(0, np.int32)
    low_copies = {e: np.array(v)[low] for e, v in copies.items()}
    return {
        "images": int(len(q)),
        "kinds": list(LOW_INFO_KINDS),
        "below_floor": int(low.sum()),
        "median_quality_by_kind": {
            kind: float(np.median(q[[k == kind for k in kinds]])) for kind in LOW_INFO_KINDS},
        "pairs": int(d.size),
        "pairs_vs_photos": int(dp.size),
        "min_pair_distance": int(d.min()) if d.size else None,
        "min_distance_to_photos": int(dp.min()) if dp.size else None,
        "fpr_at_radius": {str(r): float((d <= r).mean()) if d.size else 0.0
                          for r in LOW_INFO_RADII},
        "fpr_vs_photos_at_radius": {str(r): float((dp <= r).mean()) if dp.size else 0.0
                                    for r in LOW_INFO_RADII},
        "copy_recall_at_radius": {
            e: {str(r): float((v <= r).mean()) if v.size else 0.0 for r in LOW_INFO_RADII}
            for e, v in low_copies.items()},
        "chosen_radius": LOW_QUALITY_RADIUS,
    }


def plot_roc(out_dir: Path, families: dict[str, list[int]], pos: dict[str, np.ndarray],
             neg_family: dict[str, dict[str, np.ndarray]]) -> Path:
    """One panel per edit family: recall against false-positive rate as the radius sweeps."""
    fig, axes = plots.grid(len(families), ncols=4)
    for ax, (family, cols) in zip(axes, families.items(), strict=True):
        neg = neg_family[family]
        n_neg = int(next(iter(neg.values())).sum())
        for k, series in enumerate(SERIES):
            algo = _series_algorithm(series)
            bits = spec(algo).bits
            hist = np.bincount(pos[series][:, cols].ravel(), minlength=bits + 2)
            recall, fpr = curve(hist), curve(neg[series])
            ax.plot(fpr, recall, color=plots.colour(k), label=series, lw=1.4)
            r = spec(algo).default_radius or 0
            ax.plot([fpr[r]], [recall[r]], "o", color=plots.colour(k), ms=6, mec="black")
        ax.set_xscale("symlog", linthresh=1.0 / max(n_neg, 1))
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{family} ({len(cols)} edits)")
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("recall")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", loc="lower right")
    return plots.save(
        fig, out_dir / "accuracy_roc.png",
        title="Recall vs false-positive rate per edit family (dot = default radius)",
    )


def plot_recall_bars(out_dir: Path, edit_names: list[str],
                     recall: dict[str, dict[str, float]]) -> Path:
    fig, axes = plots.grid(1, ncols=1, panel_size=(max(8.0, 0.45 * len(edit_names)), 4.5))
    series = {s: [recall[e][s] for e in edit_names] for s in SERIES}
    plots.bars(axes[0], edit_names, series, "recall at default radius")
    axes[0].set_ylim(0, 1.05)
    return plots.save(fig, out_dir / "accuracy_recall.png", title="Recall per edit")


def _family_table(result: dict[str, Any]) -> str:
    fam = result["family_recall"]
    ffpr = result["family_fpr"]
    rows = [(f, len(result["families"][f]), *(f"{fam[f][s]:.2f} / {ffpr[f][s]:.1e}"
                                            for s in SERIES)) for f in fam]
    return harness.markdown_table(("family", "edits", *(f"{s} recall / FPR" for s in SERIES)),
                                  rows)


def _low_info_notes(li: dict[str, Any]) -> list[str]:
    radii = list(li["fpr_at_radius"])
    rows = [("FPR, distinct low-info pairs", *(li["fpr_at_radius"][r] for r in radii)),
            ("FPR, low-info vs photos", *(li["fpr_vs_photos_at_radius"][r] for r in radii))]
    rows += [(f"recall of `{e}` copies", *(v[r] for r in radii))
             for e, v in li["copy_recall_at_radius"].items()]
    med = ", ".join(f"{k} {v:.0f}" for k, v in li["median_quality_by_kind"].items())
    return [
        "### Low-information images (PDQ quality under the floor)",
        "",
        f"{li['images']} generated images ({', '.join(li['kinds'])}; median quality {med}); "
        f"{li['below_floor']} under the floor. Raw PDQ distances, no floor, over "
        f"{li['pairs']:,} ordered pairs of distinct low-information images and "
        f"{li['pairs_vs_photos']:,} pairs with photos; the closest distinct pair is "
        f"{li['min_pair_distance']} bits apart ({li['min_distance_to_photos']} to a photo).",
        "",
        harness.markdown_table(("radius", *radii), rows),
        "",
        "Their hashes are mostly noise: distinct images stay far apart, but copies drift "
        "(a re-encode moves the bits that carried no signal), so a wide radius buys little "
        "recall for risk that a generated corpus cannot bound. The scan matches them within "
        f"**{li['chosen_radius']} bits** as a separate `low_quality` reason (low confidence, "
        "listed after near matches): byte- and pixel-identical copies and lossless "
        "conversions are found, at a quarter of the radius and well inside the closest "
        f"distinct pair seen ({li['min_pair_distance']} bits).",
    ]


def _hist_median(hist: list[int]) -> int:
    c = np.cumsum(hist)
    return int(np.searchsorted(c, c[-1] / 2))


def _dihedral_note(result: dict[str, Any]) -> str:
    """How far the nearest dihedral query lands from the listed hash on exact rotations and
    mirrors: round 1's coefficient-derived hashes against the scan's pixel-plane ones."""
    hist = {s: result["histograms"][s]["positives"].get("dihedral") for s in
            ("pdq_dihedral", "scan")}
    if not all(hist.values()):
        return ""
    med = {s: _hist_median(h) for s, h in hist.items() if h}
    exact0 = {s: h[0] / max(1, sum(h)) for s, h in hist.items() if h}
    return (f"On the 7 exact rotations/mirrors the nearest dihedral hash is a median "
            f"{med['pdq_dihedral']} bits from the listed hash with round 1's coefficient "
            f"variants ({exact0['pdq_dihedral']:.0%} identical) and {med['scan']} bits with the "
            f"scan's pixel-plane variants ({exact0['scan']:.0%} identical).")


def _phash_radius_notes(study: dict[str, Any] | None) -> list[str]:
    """The pHash radius trade-off in a scan that also matches PDQ (older results lack it)."""
    if not study:
        return []
    per = study["radii"]
    lines = ["", "### pHash radius in a scan that also matches PDQ", "",
             harness.markdown_table(
                 ("pHash radius", "edited pairs pHash finds", "pHash or the scan's PDQ"),
                 [(r, v["phash"], v["phash_or_pdq"]) for r, v in per.items()]), ""]
    for step, v in study.items():
        if "->" in step:
            lost = ", ".join(f"{k} {n}" for k, n in v["lost_by_edit"].items()) or "none"
            lines.append(f"- {step}: {v['edge_pairs']} pairs only the larger radius finds, "
                         f"{v['found_by_pdq']} of them found by PDQ anyway; lost: {lost}.")
    return lines + [f"(of {study['pairs']:,} edited pairs)"]


def _markdown_notes(result: dict[str, Any]) -> str:
    fpr = result["false_positive_rate"]
    flat = result["flat_images"]
    recall = result["recall"]
    rows = [
        (s, fpr[s]["radius"], fpr[s]["original_pairs"], fpr[s]["cross_pairs"],
         flat["false_positive_rate"][s], result["mean_recall"][s])
        for s in SERIES
    ]
    goal = result["goal"]
    lines = [
        "### Per edit family: recall / false-positive rate at the default radius",
        "",
        _family_table(result),
        "",
        "### False-positive rate at the default radius",
        "",
        harness.markdown_table(
            ("series", "radius", "FPR original pairs", "FPR original vs others' edits",
             "FPR flat-image pairs", "mean recall (all edits)"),
            rows,
        ),
        "",
        f"Negatives: {fpr['scan']['n_original_pairs']:,} ordered pairs of distinct originals, "
        f"{fpr['scan']['n_cross_pairs']:,} (original, another original's edit) pairs, and "
        f"{flat['pairs']:,} pairs of {flat['images']} flat, low-information images (median PDQ "
        f"quality {flat['median_quality']:.0f}). A rate of 0 means under 1 in that many pairs.",
        "",
        f"Goal (issue #16): mean recall >= {GOAL_RECALL} at FPR <= {GOAL_FPR:g} over distinct "
        f"pairs. Default scan: mean recall **{goal['mean_recall']:.3f}**, FPR "
        f"**{goal['fpr']:.2e}** ({goal['false_positives']} of {goal['pairs']:,} pairs): "
        f"{'met' if goal['met'] else 'NOT met'}. Images with a canonical variant: "
        f"{result['variant_share']['originals']:.1%} of clean originals, "
        f"{result['variant_share']['edits']:.1%} of edits.",
        "",
        "### Where the default scan is weak",
        "",
    ]
    weak = result["weak_scan_edits"]
    if weak:
        lines += [f"Edits where the default scan's recall is under {WEAK_RECALL:.0%} "
                  "(reference PDQ; pHash):", ""]
        lines += [f"- `{n}` ({result['edit_family'][n]}): {recall[n]['scan']:.2f} "
                  f"({recall[n]['pdq_ref']:.2f}; {recall[n]['phash']:.2f})" for n in weak]
        lines += ["", "Crops remove content no reframing can restore and overlays cover it; "
                  "these are for local (keypoint) matching."]
    else:
        lines.append(f"No edit brought the default scan's recall under {WEAK_RECALL:.0%}.")
    lines += _phash_radius_notes(result.get("phash_radius"))
    ref = result["pdq_vs_pdqhash"]
    lines += [
        "",
        f"Our PDQ (the scan's stored-pixel hash) against the `pdqhash` reference on "
        f"{ref['images']} originals: mean {ref['mean_bits']:.2f} bits apart, max "
        f"{ref['max_bits']}, {ref['identical']} identical.",
        "",
        "Round 1's dihedral hashes come from the query's DCT (the reference's "
        "`compute_dihedral`); the scan's are the hashes of the rotated/mirrored pixels "
        "(`hashing.algorithms.pdq.exact_dihedral`), so an exact rotation is undone bit for bit. "
        + _dihedral_note(result),
        "",
        *_low_info_notes(result["low_information"]),
    ]
    if result["quick"]:
        lines += ["", "**Quick mode** (few, small images): a smoke run, not the published numbers."]
    lines += ["", "Plots: `accuracy_roc.png` (per family), `accuracy_recall.png` (per edit)."]
    return "\n".join(lines)


CROP_ROBUST_SERIES = ("pdq", "phash", "crop_resistant", "pdq_grid", "orb", "media_bank")


def crop_robust(media: dict[str, Any]) -> dict[str, Any]:
    """What the accuracy table keeps of a media-bank result: recall per edit and series,
    false positives among distinct photos, where and when it ran."""
    neg = media["negatives"]
    return {
        "recall": media["recall"],
        "negatives": neg["images"],
        "false_positives": neg["false_positives"],
        "wrong_item_matches": media["wrong_item_matches"],
        "originals": media["config"]["n_originals"],
        "crop_resistant_originals": media["config"]["n_crop_resistant"],
        "jpeg_quality": media["jpeg_quality"],
        "commit": media.get("machine", {}).get("commit"),
        "load": media.get("load"),
        "quick": media["quick"],
    }


def plot_crop_robust(out_dir: Path, cr: dict[str, Any]) -> Path:
    edits = list(cr["recall"])
    fig, axes = plots.grid(1, ncols=1, panel_size=(max(8.0, 0.5 * len(edits)), 4.5))
    series = {s: [cr["recall"][e][s] for e in edits] for s in CROP_ROBUST_SERIES}
    plots.bars(axes[0], edits, series, "recall")
    axes[0].set_ylim(0, 1.05)
    return plots.save(fig, out_dir / "accuracy_crop_robust.png",
                      title="Crop-robust edits: media bank vs hash lists and crop_resistant_hash")


def _crop_robust_notes(cr: dict[str, Any]) -> list[str]:
    rows: list[tuple[object, ...]] = [
        (e, *(cr["recall"][e][s] for s in CROP_ROBUST_SERIES)) for e in cr["recall"]]
    rows.append(("distinct photos matching any bank item",
                 *(f"{cr['false_positives'][s]} of {cr['negatives'][s]:,}"
                   for s in CROP_ROBUST_SERIES)))
    rows.append(("edits matching a wrong bank item",
                 *(cr["wrong_item_matches"][s] for s in CROP_ROBUST_SERIES)))
    load = ", ".join(f"{x:.1f}" for x in cr["load"] or ())
    return [
        "", "### Crop-robust edits: media bank vs PDQ, pHash and crop_resistant_hash", "",
        f"A bank built from {cr['originals']} original photos (`triage bank import-media`): "
        "`media_bank` is what a scan reports (PDQ, sub-window PDQs `pdq_grid`, local features "
        "`orb` with geometric verification); `pdq` and `phash` are the originals' hashes as a "
        "hash list holds them; `crop_resistant` is imagehash's `crop_resistant_hash` with its "
        f"default `matches()`, on {cr['crop_resistant_originals']} originals, all their edits "
        f"and {cr['negatives']['crop_resistant']:,} distinct photos. `+jpeg`: re-encoded at "
        f"q{cr['jpeg_quality']}. Collage cells: 2 x 2 collages, each cell one positive. From "
        f"`benchmarks.media_bank` at commit {cr['commit']} (load {load})"
        + (f"; the rows above from commit {cr['accuracy_commit']} (merged with "
           "`--merge-media-bank`)." if cr.get("accuracy_commit") else "."),
        "",
        harness.markdown_table(("edit", *CROP_ROBUST_SERIES), rows),
    ]


def write_markdown(out_dir: str | Path, result: dict[str, Any]) -> None:
    """result.json + accuracy.md from a result (also used to re-render a saved one)."""
    edit_names = list(result["recall"])
    rows = [
        (name, result["edit_family"][name], *(result["recall"][name][s] for s in SERIES),
         result["pdq_median_quality"][name])
        for name in edit_names
    ]
    payload = {k: v for k, v in result.items() if k not in ("benchmark", "machine")}
    notes = _markdown_notes(result)
    if "crop_robust" in result:
        notes += "\n" + "\n".join(_crop_robust_notes(result["crop_robust"]))
        plot_crop_robust(Path(out_dir), result["crop_robust"])
    harness.write_results(out_dir, "accuracy", payload,
                          ("edit", "family", *SERIES, "PDQ quality (median)"), rows,
                          notes=notes)


def run(out_dir: str | Path, quick: bool = False) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    out = Path(out_dir)
    edit_names = list(EDITS)
    family_of = {name: FAMILY_OF.get(name, "other") for name in edit_names}
    t0 = time.perf_counter()
    orig, edit, hash_seconds = generate_and_hash(cfg, edit_names)
    flats = hash_flats(cfg)
    pos = positive_distances(orig, edit)
    neg_orig = pair_histograms(orig)
    families: dict[str, list[int]] = {}
    for j, name in enumerate(edit_names):
        families.setdefault(family_of[name], []).append(j)
    neg_fam = {f: cross_histograms(orig, edit, cols) for f, cols in families.items()}
    neg_cross = {s: sum(h[s] for h in neg_fam.values()) for s in SERIES}
    neg_flat = pair_histograms(flats)
    neg = {s: neg_orig[s] + neg_cross[s] for s in SERIES}

    radii = {s: spec(_series_algorithm(s)).default_radius or 0 for s in SERIES}
    recall = {
        name: {s: float(np.mean(pos[s][:, j] <= radii[s])) for s in SERIES}
        for j, name in enumerate(edit_names)
    }
    median_quality = {name: float(np.median(edit.quality[:, j]))
                      for j, name in enumerate(edit_names)}
    fpr = {
        s: {
            "radius": radii[s],
            "original_pairs": rate_at(neg_orig[s], radii[s]),
            "cross_pairs": rate_at(neg_cross[s], radii[s]),
            "n_original_pairs": int(neg_orig[s].sum()),
            "n_cross_pairs": int(neg_cross[s].sum()),
        }
        for s in SERIES
    }
    family_recall = {
        f: {s: float(np.mean(pos[s][:, cols] <= radii[s])) for s in SERIES}
        for f, cols in families.items()
    }
    family_fpr = {f: {s: rate_at(neg_orig[s] + h[s], radii[s]) for s in SERIES}
                  for f, h in neg_fam.items()}
    histograms = {
        s: {
            "negatives": neg[s].tolist(),
            "positives": {
                f: np.bincount(pos[s][:, cols].ravel(), minlength=len(neg[s])).tolist()
                for f, cols in families.items()
            },
        }
        for s in SERIES
    }
    weak = sorted((n for n in edit_names if recall[n]["scan"] < WEAK_RECALL),
                  key=lambda n: recall[n]["scan"])
    floor = spec("pdq").quality_floor or 0
    fp = int(neg["scan"][: radii["scan"] + 1].sum())
    n_pairs = int(neg["scan"].sum())
    mean_scan = float(np.mean(pos["scan"] <= radii["scan"]))
    result: dict[str, Any] = {
        "quick": quick,
        "config": {
            "n_originals": cfg.n_originals,
            "n_flat": cfg.n_flat,
            "n_low_info_per_kind": cfg.n_low_info,
            "width_range": [cfg.min_width, cfg.max_width],
            "seed": cfg.seed,
            "n_edits": len(edit_names),
            "radii": radii,
            "quality_floor": floor,
            "low_quality_radius": LOW_QUALITY_RADIUS,
        },
        "series": {s.name: {"algo": s.algo, "queries": s.queries, "quality_rule": s.rule}
                   for s in SERIES_SPECS},
        "edit_family": family_of,
        "families": {f: [edit_names[j] for j in cols] for f, cols in families.items()},
        "recall": recall,
        "family_recall": family_recall,
        "family_fpr": family_fpr,
        "mean_recall": {s: float(np.mean(pos[s] <= radii[s])) for s in SERIES},
        "goal": {"mean_recall": mean_scan, "fpr": fp / max(1, n_pairs), "false_positives": fp,
                 "pairs": n_pairs,
                 "met": mean_scan >= GOAL_RECALL and fp / max(1, n_pairs) <= GOAL_FPR},
        "variant_share": {"originals": float(np.mean(orig.n_variants > 0)),
                          "edits": float(np.mean(edit.n_variants > 0))},
        "pdq_median_quality": median_quality,
        "original_pdq_quality": {
            "min": int(orig.quality.min()),
            "median": float(np.median(orig.quality)),
            "below_floor": int((orig.quality < floor).sum()),
        },
        "false_positive_rate": fpr,
        "flat_images": {
            "images": cfg.n_flat,
            "pairs": int(neg_flat["scan"].sum()),
            "median_quality": float(np.median(flats.quality)) if cfg.n_flat else 0.0,
            "false_positive_rate": {s: rate_at(neg_flat[s], radii[s]) for s in SERIES},
        },
        "low_information": low_info_study(cfg),
        "weak_scan_edits": weak,
        "pdq_vs_pdqhash": reference_deviation(cfg, orig),
        "histograms": histograms,
        "phash_radius": phash_radius_study(pos, edit_names),
        "images_hashed": cfg.n_originals * (1 + len(edit_names)) + cfg.n_flat,
        "hash_seconds": hash_seconds,
    }
    out.mkdir(parents=True, exist_ok=True)
    plot_roc(out, families, pos, {f: {s: neg_orig[s] + h[s] for s in SERIES}
                                  for f, h in neg_fam.items()})
    plot_recall_bars(out, edit_names, recall)
    with tempfile.TemporaryDirectory(prefix="accuracy-media-") as tmp:
        result["crop_robust"] = crop_robust(media_bank.run(tmp, quick=quick))
    result["total_seconds"] = time.perf_counter() - t0
    write_markdown(out, result)
    return result


def merge_media_bank(out_dir: str | Path, media_result: str | Path) -> None:
    """Re-render the accuracy result in `out_dir` with a separately run media-bank result."""
    saved = json.loads((Path(out_dir) / "result.json").read_text())
    # a result merged before keeps the commit its accuracy rows were measured at (its
    # `machine` is the earlier merge's)
    measured = saved.get("crop_robust", {}).get("accuracy_commit")
    saved["crop_robust"] = crop_robust(json.loads(Path(media_result).read_text()))
    saved["crop_robust"]["accuracy_commit"] = measured or saved.get("machine", {}).get("commit")
    write_markdown(out_dir, saved)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--merge-media-bank":
        rest = sys.argv[3:]
        merge_media_bank(rest[1] if rest[:1] == ["--out"] else "benchmarks/results/accuracy",
                         sys.argv[2])
    else:
        harness.main(run, "accuracy", __doc__)
