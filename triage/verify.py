"""Local-feature matching with geometric verification: descriptor votes, then RANSAC.

A query image's descriptors are searched in a `FeatureSet` (the bank's, or the case's own):
the exact Hamming engine, or past `media_bank.APPROXIMATE_FROM` descriptors an inverted file
that keeps ~95 % of its pairs; each query keypoint votes once for every reference item it has
a descriptor near. The items with the most votes are verified: OpenCV's RANSAC fits a
similarity (rotation, uniform scale, shift) from query to reference keypoints. Only inliers
that agree with the fit in keypoint size (within one pyramid level) and orientation count,
each keypoint once: ORB finds one corner at several pyramid levels, so without that a fit
through 4 distinct corners counted 12 inliers. The match stands only with enough of those
inliers, a high enough inlier share, and inliers spread over enough of both images (a
repeated texture in one corner is not a match). The accepted transform is
the explanation: how much of the reference the query shows, at what scale and rotation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from hashing.algorithms.local_features import PYRAMID_SCALE, LocalFeatures
from index.media_bank import FeatureSet

# Inclusive Hamming radius for a putative descriptor match. Measured on generated photos
# (benchmarks/local_features.py): a keypoint seen again after crop, scale, overlay or JPEG
# re-encode lies mostly within 40 bits; unrelated ORB descriptors rarely come under 50.
MATCH_RADIUS = 40
QUERY_BATCH = 32  # images whose descriptors are searched in one range search
# Two keypoints of one image are the same point when closer than this share of the larger
# one's size: ORB's size is 31 pixels of its pyramid level, so ~2 pixels of the coarser level,
# where one corner found at two levels lands (measured: within 3 px at sizes 44-124).
SAME_POINT_FRAC = 1 / 16


@dataclass(frozen=True, slots=True)
class VerifyParams:
    """Acceptance rules for a verified match (defaults chosen on the benchmark's negatives)."""

    radius: int = MATCH_RADIUS
    vote_slack: int = 6  # a keypoint votes for items within this many bits of its nearest
    min_votes: int = 10  # query keypoints voting for an item before RANSAC is tried
    candidates: int = 4  # items verified per query image, most votes first
    min_inliers: int = 10  # distinct inliers consistent in size and orientation
    min_inlier_ratio: float = 0.2  # inliers / putative matches of the item
    min_spread_pct: float = 1.5  # convex hull of the inliers, % of the smaller covered area
    reproj_pct: float = 1.2  # RANSAC threshold, % of the reference image's diagonal
    min_scale: float = 0.15
    max_scale: float = 6.0
    min_covered_pct: float = 4.0  # of each image, by the region the two share
    max_turn_deg: float = 20.0  # keypoint orientation vs the fitted rotation


DEFAULT_PARAMS = VerifyParams()


@dataclass(frozen=True, slots=True)
class Transform:
    """A verified similarity from a query image to a reference image.

    `scale` is the query's size relative to the reference (2.0: shown twice as large);
    `ref_covered_pct` is the share of the reference the query shows (a crop shows part of
    it); `query_covered_pct` the share of the query that is the reference (a screenshot or
    collage cell holds it in part of the frame).
    """

    model: str
    inliers: int
    matches: int
    scale: float
    rotation_deg: float
    ref_covered_pct: float
    query_covered_pct: float
    mean_distance: float

    def text(self, ref: str = "bank item") -> str:
        """E.g. "crop 38% of bank item, scale 1.4, rotation 3°, 57 inliers"."""
        r, q = self.ref_covered_pct, self.query_covered_pct
        if r < 90 and q >= 90:
            what = f"crop {r:.0f}% of {ref}"
        elif q < 90 and r >= 90:
            what = f"{ref} fills {q:.0f}% of this file"
        elif r < 90 and q < 90:
            what = f"{r:.0f}% of {ref} fills {q:.0f}% of this file"
        else:
            what = f"whole {ref}"
        return (f"{what}, scale {self.scale:.2g}, rotation {self.rotation_deg:.0f}°, "
                f"{self.inliers} inliers")

    def inverse(self) -> Transform:
        """The same match read from the reference's side (reference as the query)."""
        return Transform(self.model, self.inliers, self.matches, round(1.0 / self.scale, 3),
                         -self.rotation_deg, self.query_covered_pct, self.ref_covered_pct,
                         self.mean_distance)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "inliers": self.inliers, "matches": self.matches,
            "scale": self.scale, "rotation_deg": self.rotation_deg,
            "ref_covered_pct": self.ref_covered_pct, "query_covered_pct": self.query_covered_pct,
            "mean_distance": self.mean_distance,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transform:
        return cls(str(d["model"]), int(d["inliers"]), int(d["matches"]), float(d["scale"]),
                   float(d["rotation_deg"]), float(d["ref_covered_pct"]),
                   float(d["query_covered_pct"]), float(d["mean_distance"]))


@dataclass(frozen=True, slots=True)
class LocalMatch:
    """Query image `query` (position in the caller's list) matches reference item `item`."""

    query: int
    item: int
    transform: Transform


def _covered(m: np.ndarray, src_w: int, src_h: int, dst_w: int, dst_h: int) -> float:
    """Share (%) of the destination rectangle covered by the source rectangle mapped by `m`."""
    corners = np.array([[0, 0], [src_w, 0], [src_w, src_h], [0, src_h]], np.float32)
    mapped = cv2.transform(corners[None], m)[0]
    dst = np.array([[0, 0], [dst_w, 0], [dst_w, dst_h], [0, dst_h]], np.float32)
    area, _ = cv2.intersectConvexConvex(mapped, dst)
    return 100.0 * float(area) / float(dst_w * dst_h)


def _hull_pct(pts: np.ndarray, w: int, h: int) -> float:
    if len(pts) < 3:
        return 0.0
    hull = cv2.convexHull(pts.astype(np.float32))
    return 100.0 * float(cv2.contourArea(hull)) / float(w * h)


def _same_point(kp: np.ndarray) -> np.ndarray:
    """bool[k, k]: keypoints i and j are one point of the image (one corner, several levels)."""
    d = np.hypot(kp[:, None, 0] - kp[None, :, 0], kp[:, None, 1] - kp[None, :, 1])
    return d <= SAME_POINT_FRAC * np.maximum(kp[:, None, 2], kp[None, :, 2])


def _consistent_inliers(q_kp: np.ndarray, r_kp: np.ndarray, rows: np.ndarray,
                        distances: np.ndarray, s_ref: float, rotation_deg: float,
                        max_turn_deg: float) -> np.ndarray:
    """The RANSAC inlier rows whose keypoints agree with the fit, one pair per point.

    A query keypoint of size s is seen in the reference at size s * s_ref, turned by the
    fitted rotation; a pair off by more than one pyramid level or `max_turn_deg` is a chance
    position match. Then pairs are taken best descriptor distance first, skipping any whose
    query or reference point (by position: the same corner at another level) is taken.
    """
    q, r = q_kp[rows], r_kp[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.abs(np.log(r[:, 2] / (q[:, 2] * s_ref)))
    turn = np.abs((r[:, 3] - q[:, 3] - rotation_deg + 180.0) % 360.0 - 180.0)
    ok = (level <= math.log(PYRAMID_SCALE) + 1e-6) & (turn <= max_turn_deg)
    rows = rows[ok]
    rows = rows[np.argsort(distances[rows], kind="stable")]
    clash = _same_point(q_kp[rows]) | _same_point(r_kp[rows])
    taken = np.zeros(rows.size, dtype=bool)
    keep = []
    for i in range(rows.size):
        if not taken[i]:
            keep.append(i)
            taken |= clash[i]
    return np.sort(rows[keep])


def verify_pair(q_kp: np.ndarray, r_kp: np.ndarray, distances: np.ndarray,
                q_size: tuple[int, int], r_size: tuple[int, int],
                params: VerifyParams = DEFAULT_PARAMS) -> Transform | None:
    """Fit query -> reference from putative keypoint pairs (row i of `q_kp` with row i of
    `r_kp`, float[n, 4]: x, y, size, angle); the transform if it passes, else None."""
    n = len(q_kp)
    if n < params.min_inliers:
        return None
    rw, rh = r_size
    qw, qh = q_size
    q_pts = np.ascontiguousarray(q_kp[:, :2], dtype=np.float32)
    r_pts = np.ascontiguousarray(r_kp[:, :2], dtype=np.float32)
    thr = max(2.0, params.reproj_pct / 100.0 * math.hypot(rw, rh))
    m, mask = cv2.estimateAffinePartial2D(
        q_pts, r_pts, method=cv2.RANSAC,
        ransacReprojThreshold=thr, maxIters=2000, confidence=0.995, refineIters=10,
    )
    if m is None or mask is None:
        return None
    rows = np.flatnonzero(mask.ravel())
    if rows.size < params.min_inliers:
        return None
    s_ref = math.hypot(float(m[0, 0]), float(m[1, 0]))  # reference pixels per query pixel
    if not s_ref > 0:
        return None
    scale = 1.0 / s_ref
    if not params.min_scale <= scale <= params.max_scale:
        return None
    rotation = math.degrees(math.atan2(float(m[1, 0]), float(m[0, 0])))
    inl = _consistent_inliers(q_kp, r_kp, rows, distances, s_ref, rotation, params.max_turn_deg)
    k = int(inl.size)
    if k < params.min_inliers or k < params.min_inlier_ratio * n:
        return None
    ref_cov = _covered(m, qw, qh, rw, rh)
    inv = cv2.invertAffineTransform(m)
    query_cov = _covered(inv, rw, rh, qw, qh)
    if min(ref_cov, query_cov) < params.min_covered_pct:
        return None
    # inliers must spread over the shared region, not sit in one small patch of it
    shared_ref = max(1e-6, ref_cov / 100.0 * rw * rh)
    shared_q = max(1e-6, query_cov / 100.0 * qw * qh)
    spread_ref = _hull_pct(r_pts[inl], rw, rh) * rw * rh / shared_ref
    spread_q = _hull_pct(q_pts[inl], qw, qh) * qw * qh / shared_q
    if min(spread_ref, spread_q) < params.min_spread_pct:
        return None
    # rounded once here, so a reason read back from JSON explains itself in the same words
    return Transform("similarity", k, n, round(scale, 3), round(rotation, 1), round(ref_cov, 1),
                     round(query_cov, 1), round(float(np.mean(distances[inl])), 1))


def _putative(q_kp: np.ndarray, lims: np.ndarray, dists: np.ndarray, ids: np.ndarray,
              q_lo: int, q_hi: int, owner: np.ndarray, exclude: int, slack: int
              ) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per reference item: (query keypoint rows, reference rows, distances), the nearest
    reference descriptor of that item per query keypoint."""
    a, b = lims[q_lo], lims[q_hi]
    if a == b:
        return {}
    q_rows = np.repeat(np.arange(q_hi - q_lo), np.diff(lims[q_lo:q_hi + 1]))
    r_rows = ids[a:b]
    d = dists[a:b]
    items = owner[r_rows]
    keep = items != exclude
    q_rows, r_rows, d, items = q_rows[keep], r_rows[keep], d[keep], items[keep]
    # each query keypoint votes only near its nearest descriptor (a ratio test in bits):
    # at the radius that keeps real matches, textures match loosely across many images
    best = np.full(q_hi - q_lo, np.iinfo(np.int32).max, dtype=np.int64)
    np.minimum.at(best, q_rows, d)
    near = d <= best[q_rows] + slack
    q_rows, r_rows, d, items = q_rows[near], r_rows[near], d[near], items[near]
    # results are sorted by distance within each query row: the first per (item, row) wins
    order = np.lexsort((d, q_rows, items))
    q_rows, r_rows, d, items = q_rows[order], r_rows[order], d[order], items[order]
    first = np.ones(items.size, dtype=bool)
    first[1:] = (items[1:] != items[:-1]) | (q_rows[1:] != q_rows[:-1])
    q_rows, r_rows, d, items = q_rows[first], r_rows[first], d[first], items[first]
    out: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    if items.size == 0:
        return out
    starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
    ends = np.r_[starts[1:], items.size]
    for s, e in zip(starts, ends, strict=True):
        out[int(items[s])] = (q_rows[s:e], r_rows[s:e], d[s:e])
    return out


def match_features(queries: Sequence[LocalFeatures], refs: FeatureSet,
                   params: VerifyParams = DEFAULT_PARAMS,
                   exclude: Sequence[int] | None = None) -> list[LocalMatch]:
    """Verified matches of each query image against the reference items.

    `exclude[q]` is a reference item never reported for query q (the query itself, when a
    case is matched against its own images). Work per query is bounded: at most
    `params.candidates` items are verified, each from at most one pair per query keypoint.
    """
    out: list[LocalMatch] = []
    if refs.index.ntotal == 0:
        return out
    for lo in range(0, len(queries), QUERY_BATCH):
        batch = queries[lo:lo + QUERY_BATCH]
        sizes = [len(f) for f in batch]
        if not sum(sizes):
            continue
        codes = np.concatenate([f.descriptors for f in batch if len(f)])
        lims, dists, ids = refs.index.range_search(codes, params.radius)
        start = 0
        for j, f in enumerate(batch):
            q = lo + j
            n = sizes[j]
            if n == 0:
                continue
            skip = -1 if exclude is None else int(exclude[q])
            per_item = _putative(f.keypoints, lims, dists, ids, start, start + n, refs.owner,
                                 skip, params.vote_slack)
            start += n
            ranked = sorted(((len(v[0]), item) for item, v in per_item.items()
                             if len(v[0]) >= params.min_votes), reverse=True)
            for _, item in ranked[:params.candidates]:
                q_rows, r_rows, d = per_item[item]
                t = verify_pair(f.keypoints[q_rows], refs.keypoints[r_rows], d,
                                (f.width, f.height), refs.size_of(item), params)
                if t is not None:
                    out.append(LocalMatch(q, item, t))
    return out
