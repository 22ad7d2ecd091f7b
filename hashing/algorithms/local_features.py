"""Local features: ORB keypoints with 256-bit binary descriptors, a bounded number per image.

ORB (OpenCV) is used rather than AKAZE because its descriptor is 256 bits, the width of PDQ,
so the same exact Hamming engine (`index.hamming.HammingIndex`) searches both, and it is the
faster of the two to compute. The image is downscaled first (long side `LONG_SIDE`) so the
cost per image is bounded whatever its size, and at most `MAX_KEYPOINTS` are kept (the
strongest by FAST/Harris response, as ORB ranks them). Keypoint geometry is stored in the
original image's pixel coordinates, so a transform verified between two images reads in
real pixels (scale, rotation, the share of each image covered).

What a `LocalFeatures` holds is derived from pixels and dense enough that coarse images can
be reconstructed from it (published inversion attacks on local descriptors): it is as
sensitive as the image itself. It is kept in the bank store and the case database only, and
never written to any case output or partner export.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

ALGORITHM = "orb"
LONG_SIDE = 640  # images are described at this long side (never upscaled)
MAX_KEYPOINTS = 500  # kept per bank image (and per known-bad image in in-case linking)
# Kept per scanned (query) image: a collage cell or a small screenshot region holds only a
# share of an image's keypoints, and with 500 collage-cell recall was 0.85, with 1000 0.96
# (benchmarks/media_bank.py, originals 640-1024 px); the bank side stays at 500 (storage).
QUERY_KEYPOINTS = 1000
DESCRIPTOR_BYTES = 32  # 256-bit ORB descriptors
KEYPOINT_BYTES = 16  # x, y, size, angle as float32
MIN_SIDE = 48  # smaller images carry too few keypoints to verify a transform
DETECT_FACTOR = 4  # candidates detected per keypoint kept (bank images)
# Candidates detected per scanned image before the spread. ORB keeps its strongest corners per
# pyramid level over the whole image, so in a collage a low-contrast cell lost its candidates
# to its busier neighbours before `_spread` could share the bound out: with 4,000, cells of
# the benchmark's collages kept 80-120 of the 1,000 keypoints and some matched with 1-2
# votes; with 8,000 collage-cell recall went 0.95/0.94 -> 0.97/0.97 (plain/JPEG, 100 cells
# each; 6,000: 0.95/0.96; 12,000-16,000 no better than 8,000) for ~4 ms more per image.
QUERY_CANDIDATES = 8 * QUERY_KEYPOINTS
GRID = 8  # cells per side over which the kept keypoints are spread
# ORB's image pyramid: each level is this much smaller than the one before. A keypoint's size
# is the patch at its level, so sizes step by this factor; verification uses it to check that
# two matched keypoints are at corresponding levels (triage.verify), hence one constant.
PYRAMID_SCALE = 1.3
PYRAMID_LEVELS = 8
_HEADER = struct.Struct("<4sHIII")  # magic, version, width, height, keypoints
_MAGIC = b"LFv1"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class LocalFeatures:
    """Keypoints and descriptors of one image.

    `keypoints` is float32[n, 4]: x, y, size (original pixels), angle (degrees);
    `descriptors` is uint8[n, 32], row i describing keypoint i.
    """

    width: int
    height: int
    keypoints: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return int(self.descriptors.shape[0])

    @property
    def nbytes(self) -> int:
        return len(self.to_bytes())

    def to_bytes(self) -> bytes:
        """A compact, versioned serialisation (header, float32 keypoints, descriptor bytes)."""
        n = len(self)
        return b"".join((
            _HEADER.pack(_MAGIC, _VERSION, self.width, self.height, n),
            np.ascontiguousarray(self.keypoints, dtype="<f4").tobytes(),
            np.ascontiguousarray(self.descriptors, dtype=np.uint8).tobytes(),
        ))

    @classmethod
    def from_bytes(cls, blob: bytes) -> LocalFeatures:
        if len(blob) < _HEADER.size:
            raise ValueError("local features blob is truncated")
        magic, version, width, height, n = _HEADER.unpack_from(blob)
        if magic != _MAGIC or version != _VERSION:
            raise ValueError("not a local features blob of this version")
        kp_end = _HEADER.size + n * KEYPOINT_BYTES
        if len(blob) != kp_end + n * DESCRIPTOR_BYTES:
            raise ValueError(f"local features blob holds {len(blob)} bytes, not {n} keypoints")
        kps = np.frombuffer(blob, dtype="<f4", count=n * 4, offset=_HEADER.size).reshape(n, 4)
        desc = np.frombuffer(blob, dtype=np.uint8, offset=kp_end).reshape(n, DESCRIPTOR_BYTES)
        return cls(width, height, kps.astype(np.float32), desc.copy())

    def fingerprint(self) -> str:
        """SHA-256 hex of the serialisation: the store's key for this feature set."""
        return hashlib.sha256(self.to_bytes()).hexdigest()


def _empty(width: int, height: int) -> LocalFeatures:
    return LocalFeatures(width, height, np.zeros((0, 4), np.float32),
                         np.zeros((0, DESCRIPTOR_BYTES), np.uint8))


_ORB: dict[int, cv2.ORB] = {}


def _orb(max_keypoints: int) -> cv2.ORB:
    # one detector per process and bound (construction is cheap, but not free per image)
    if max_keypoints not in _ORB:
        _ORB[max_keypoints] = cv2.ORB.create(nfeatures=max_keypoints,
                                             scaleFactor=PYRAMID_SCALE,
                                             nlevels=PYRAMID_LEVELS, edgeThreshold=15, patchSize=31,
                                             fastThreshold=10)
    return _ORB[max_keypoints]


def _spread(kps: Sequence[cv2.KeyPoint], w: int, h: int, keep: int) -> list[cv2.KeyPoint]:
    """Keep `keep` keypoints spread over a GRID x GRID partition of the image: round-robin
    over the cells, strongest first within each, in that order (so the first k of them are
    themselves spread). ORB alone keeps the strongest corners anywhere, so a caption or a
    screenshot's interface text can take the whole budget."""
    if len(kps) <= keep:
        return list(kps)
    xy = np.array([k.pt for k in kps], dtype=np.float64)
    response = np.array([k.response for k in kps], dtype=np.float64)
    cx = np.minimum((xy[:, 0] * GRID / w).astype(np.int64), GRID - 1)
    cy = np.minimum((xy[:, 1] * GRID / h).astype(np.int64), GRID - 1)
    cell = cy * GRID + cx
    order = np.lexsort((-response, cell))
    starts = np.r_[0, np.flatnonzero(np.diff(cell[order])) + 1]
    rank = np.empty(len(kps), dtype=np.int64)
    rank[order] = np.arange(len(kps)) - np.repeat(starts, np.diff(np.r_[starts, len(kps)]))
    chosen = np.lexsort((-response, rank))[:keep]
    return [kps[i] for i in chosen]


def describe(luma: np.ndarray, width: int | None = None, height: int | None = None,
             max_keypoints: int = MAX_KEYPOINTS, candidates: int | None = None
             ) -> LocalFeatures:
    """Describe a luma plane (uint8 or float 0..255, any size).

    `width`/`height` are the original image's size when `luma` is a reduced decode (the fast
    JPEG path); keypoints are mapped to those coordinates. Images under `MIN_SIDE` pixels on
    a side get no keypoints. `candidates` ORB corners are detected before `max_keypoints` of
    them are spread over the image (default `DETECT_FACTOR` per kept; `describe_query` passes
    `QUERY_CANDIDATES`).
    """
    h0, w0 = luma.shape[:2]
    width = int(width or w0)
    height = int(height or h0)
    if min(width, height) < MIN_SIDE or min(w0, h0) < 8:
        return _empty(width, height)
    scale = min(1.0, LONG_SIDE / max(w0, h0))
    plane = np.asarray(luma)
    if plane.dtype != np.uint8:
        plane = np.clip(np.rint(plane), 0, 255).astype(np.uint8)
    if scale < 1.0:
        size = (max(1, round(w0 * scale)), max(1, round(h0 * scale)))
        plane = cv2.resize(plane, size, interpolation=cv2.INTER_AREA)
    plane = np.ascontiguousarray(plane)
    orb = _orb(candidates or max_keypoints * DETECT_FACTOR)
    chosen = _spread(orb.detect(plane, None), plane.shape[1], plane.shape[0], max_keypoints)
    kps, desc = orb.compute(plane, chosen)
    if desc is None or not kps:
        return _empty(width, height)
    # map back to original pixels (x/width of the plane described -> x/width of the image)
    sx = width / plane.shape[1]
    sy = height / plane.shape[0]
    geo = np.array([(k.pt[0] * sx, k.pt[1] * sy, k.size * sx, k.angle) for k in kps],
                   dtype=np.float32).reshape(-1, 4)
    return LocalFeatures(width, height, geo, np.ascontiguousarray(desc, dtype=np.uint8))


def describe_rgb(rgb: np.ndarray, max_keypoints: int = MAX_KEYPOINTS) -> LocalFeatures:
    """`describe` of an RGB uint8 array (tests, benchmarks, the media-bank importer)."""
    return describe(_gray(rgb), max_keypoints=max_keypoints)


def describe_query(luma: np.ndarray, width: int | None = None,
                   height: int | None = None) -> LocalFeatures:
    """`describe` as a scan describes its images (`QUERY_KEYPOINTS` from `QUERY_CANDIDATES`);
    bank images keep `describe`'s defaults."""
    return describe(luma, width, height, QUERY_KEYPOINTS, QUERY_CANDIDATES)


def describe_query_rgb(rgb: np.ndarray) -> LocalFeatures:
    """`describe_query` of an RGB uint8 array (tests, benchmarks)."""
    return describe_query(_gray(rgb))


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
