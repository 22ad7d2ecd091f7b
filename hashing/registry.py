"""The algorithm specs: names, sizes, default radii and quality floors, each stated once here."""

from __future__ import annotations

from collections.abc import Iterable

from hashing.errors import UnknownAlgorithmError
from hashing.types import AlgorithmSpec

PDQ = AlgorithmSpec(
    "pdq", "perceptual", 256, default_radius=31, quality_floor=50,
    description="Meta PDQ, 256-bit DCT hash with quality score",
    has_quality=True, dihedral=True, frames=True, variants=True, always_scan=True,
)
PHASH = AlgorithmSpec("phash", "perceptual", 64, default_radius=8, description="imagehash.phash",
                      variants=True, confirm_radius=6)
DHASH = AlgorithmSpec("dhash", "perceptual", 64, default_radius=8, description="imagehash.dhash",
                      variants=True)
AHASH = AlgorithmSpec("ahash", "perceptual", 64, default_radius=6,
                      description="imagehash.average_hash", variants=True)
WHASH = AlgorithmSpec("whash", "perceptual", 64, default_radius=8,
                      description="imagehash.whash (haar)", variants=True)
MD5 = AlgorithmSpec("md5", "digest", 128, description="MD5 of the file bytes")
SHA1 = AlgorithmSpec("sha1", "digest", 160, description="SHA-1 of the file bytes")
SHA256 = AlgorithmSpec("sha256", "digest", 256, description="SHA-256 of the file bytes")
PDQ_GRID = AlgorithmSpec(
    "pdq_grid", "window", 256, default_radius=31, quality_floor=50,
    description="PDQ of sub-windows of a media-bank image, matched by a scan's PDQ",
)
ORB = AlgorithmSpec(
    "orb", "local", 256,
    description="SHA-256 key of a media-bank image's ORB local features (store-private)",
)

SPECS: dict[str, AlgorithmSpec] = {
    s.name: s for s in (PDQ, PHASH, DHASH, AHASH, WHASH, MD5, SHA1, SHA256, PDQ_GRID, ORB)
}
PERCEPTUAL = tuple(n for n, s in SPECS.items() if s.kind == "perceptual")
DIGESTS = tuple(n for n, s in SPECS.items() if s.kind == "digest")
# Signatures only media banks hold: private to the store, never imported from or exported to
# partner lists.
STORE_PRIVATE = tuple(n for n, s in SPECS.items() if s.kind in ("window", "local"))
# What a media-bank window is matched with on the scan side.
WINDOW_QUERY = {"pdq_grid": "pdq"}
DEFAULT_ALGORITHMS = ("pdq", "md5", "sha1", "sha256")
# The algorithm videos are hashed with, frame by frame (vPDQ), and the one clustering uses.
FRAME_ALGORITHM = next(n for n, s in SPECS.items() if s.frames)
CLUSTER_ALGORITHM = next(n for n, s in SPECS.items() if s.always_scan and s.kind == "perceptual")


def scan_algorithms(banked: Iterable[str]) -> tuple[str, ...]:
    """What a scan hashes: every digest, the algorithms a scan always needs, and each
    perceptual algorithm an enabled bank holds (and no other), in registry order."""
    held = set(banked)
    return tuple(
        n for n, s in SPECS.items()
        if s.kind == "digest" or s.always_scan or (s.kind == "perceptual" and n in held)
    )


def spec(name: str) -> AlgorithmSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise UnknownAlgorithmError(name) from None


def parse_algorithms(text: str) -> tuple[str, ...]:
    """Parse a comma-separated algorithm list, keeping order and dropping repeats."""
    names: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        spec(name)
        if name not in names:
            names.append(name)
    return tuple(names)
