"""What one record asks the banks for one perceptual algorithm: its stored-pixel hash, the
exact rotations/mirrors of its pixels and its canonical variants (trim, caption, embedded,
deskew), each a `Query` that says which reason kind and variant label a hit becomes.

Kept apart from `triage.match` so the matcher stays one loop over queries, whatever a
record holds; the algorithm registry says which algorithms have dihedral hashes, a
quality score and variants, so nothing here tests a name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hashing.registry import spec
from hashing.types import HashRecord
from triage.policy import Policy

# The order of `HashRecord.pdq_dihedral` (pdqhash.compute_dihedral): identity first. Each
# names the transform of the file that reproduces the bank's image.
DIHEDRAL_NAMES = (
    "original", "rotate90", "rotate180", "rotate270",
    "flip_x", "flip_y", "flip_plus1", "flip_minus1",
)


@dataclass(frozen=True, slots=True)
class Query:
    """One hash to look up. `rank` orders ties between queries of one record (the stored
    pixels first, then dihedral, then canonical variants); `quality` is None when the
    algorithm has none."""

    record: int
    hex: str
    kind: str  # near | dihedral | variant
    variant: str | None
    quality: int | None
    rank: int


def quality_of(rec: HashRecord, algo: str) -> int | None:
    """The record's quality score for `algo`, if the algorithm has one."""
    return rec.pdq_quality if spec(algo).has_quality else None


def low_quality(quality: int | None, algo: str, policy: Policy) -> bool:
    """Under the quality floor: such hashes match only within `policy.low_quality_radius`."""
    return spec(algo).has_quality and quality is not None and quality < policy.min_quality


def record_queries(i: int, rec: HashRecord, algo: str, policy: Policy) -> Iterator[Query]:
    value = rec.hashes.get(algo)
    if not value:
        return
    quality = quality_of(rec, algo)
    s = spec(algo)
    turned = rec.pdq_dihedral if s.dihedral and policy.dihedral else None
    if turned:
        for k, h in enumerate(turned):
            yield Query(i, h, "near" if k == 0 else "dihedral",
                        None if k == 0 else DIHEDRAL_NAMES[k], quality, k)
    else:
        yield Query(i, value, "near", None, quality, 0)
    if s.variants and policy.variants:
        for k, v in enumerate(rec.variants or ()):
            code = v.hashes.get(algo)
            if code:
                vq = v.quality if s.has_quality else None
                yield Query(i, code, "variant", v.detail, vq, len(DIHEDRAL_NAMES) + k)
