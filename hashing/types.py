"""Value types shared by every layer: algorithm specs, hash values and the per-file hash record.

The record defined here is the one shape written by `triage hash` and, with its manifest
fields filled, by the scan manifest; nothing else defines output keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# "window" and "local" are media-bank signatures (sub-window PDQ, local features): held by
# banks built from media, never computed for partner lists nor exported to them.
Kind = Literal["perceptual", "digest", "window", "local"]
Status = Literal["hashed", "error", "skipped"]
EntryKind = Literal["file", "archive_member", "image_member", "symlink", "special"]


@dataclass(frozen=True, slots=True)
class AlgorithmSpec:
    """Everything generic code needs to know about one hash algorithm, stated once."""

    name: str
    kind: Kind
    bits: int
    default_radius: int | None = None  # inclusive Hamming radius for a near match
    quality_floor: int | None = None  # hashes below this quality are not matched
    description: str = ""
    # Capabilities generic code looks up instead of testing names:
    has_quality: bool = False  # the hash comes with a 0..100 quality score
    dihedral: bool = False  # the hasher can hash the 8 rotations/mirrors of the pixels
    frames: bool = False  # videos are hashed frame by frame with this algorithm
    variants: bool = False  # query-side canonical variants (trim, embedded, deskew) are hashed
    always_scan: bool = False  # a scan computes it even when no bank holds it (clustering)
    # A near match farther than this to a media-bank item stands only if the item's local
    # features verify it: at that distance the hash alone no longer tells copies from
    # look-alikes among 10^4+ images (`triage.local_match`, benchmarks/media_scale)
    confirm_radius: int | None = None

    @property
    def nbytes(self) -> int:
        return self.bits // 8

    @property
    def hex_length(self) -> int:
        return self.bits // 4


@dataclass(frozen=True, slots=True)
class HashValue:
    """A hash that knows its algorithm. `a - b` is the Hamming distance, `str()` the hex."""

    algorithm: str
    bits: bytes
    quality: int | None = None

    @property
    def hex(self) -> str:
        return self.bits.hex()

    def __str__(self) -> str:
        return self.hex

    def __sub__(self, other: HashValue) -> int:
        if self.algorithm != other.algorithm or len(self.bits) != len(other.bits):
            raise TypeError(f"cannot compare {self.algorithm} with {other.algorithm}")
        x = int.from_bytes(self.bits, "big") ^ int.from_bytes(other.bits, "big")
        return x.bit_count()


@dataclass(frozen=True, slots=True)
class FrameHash:
    """One sampled video frame's PDQ hash, or one frame or page of a multi-frame image.

    For images `frame` is the 0-based frame (or page) index, `t` its display time in seconds
    (0 for pages) and `md5` the digest of its decoded RGB pixels (not of any file's bytes).
    """

    t: float
    pdq: str
    quality: int
    frame: int | None = None
    md5: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": round(self.t, 3), "pdq": self.pdq, "quality": self.quality}
        if self.frame is not None:
            out["frame"] = self.frame
        if self.md5 is not None:
            out["md5"] = self.md5
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FrameHash:
        return cls(d["t"], d["pdq"], d["quality"], d.get("frame"), d.get("md5"))


@dataclass(frozen=True, slots=True)
class VariantHash:
    """The hashes of one query-side canonical variant of an image (`hashing.variants`):
    `name` is the detector (trim, caption, embedded, deskew), `detail` what a reason shows
    ("trimmed 12% top/bottom"), `quality` the PDQ quality of the variant's pixels."""

    name: str
    detail: str
    hashes: Mapping[str, str]
    quality: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.name, "detail": self.detail, **self.hashes,
                "quality": self.quality}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], algorithms: tuple[str, ...]) -> VariantHash:
        return cls(d["variant"], d["detail"], {a: d[a] for a in algorithms if d.get(a)},
                   d.get("quality"))


def path_to_text(path: str | bytes) -> tuple[str, str | None]:
    """Return (printable path, hex of the raw bytes when the name is not valid UTF-8).

    Evidence file names can hold any bytes; the hex keeps them lossless in JSON.
    """
    raw = os.fsencode(path)
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), raw.hex()


@dataclass(frozen=True, slots=True)
class HashRecord:
    """Outcome of hashing one file or archive member.

    `hashes` maps algorithm name to hex and is flattened into top-level keys on output,
    so a record reads `{"path":..., "pdq": "...", "md5": "..."}`. Manifest fields
    (`size`, `mtime`, `kind`, `reason`) are filled by the scan and by `triage hash`.
    """

    path: str
    status: Status
    error: str | None = None
    media_type: str | None = None
    width: int | None = None
    height: int | None = None
    hashes: Mapping[str, str] = field(default_factory=dict)
    pdq_quality: int | None = None
    pdq_dihedral: tuple[str, ...] | None = None
    exif_orientation: int | None = None
    exif_hashes: Mapping[str, str] | None = None  # EXIF-transposed hashes, keys "<algo>_exif"
    pdq_frames: tuple[FrameHash, ...] | None = None
    duration: float | None = None
    variants: tuple[VariantHash, ...] | None = None  # canonical variants (scan option)
    size: int | None = None
    mtime: float | None = None
    kind: EntryKind = "file"
    reason: str | None = None
    link_target: str | None = None
    # what of a hashed item was recognised but not examined (a frame limit, an unreadable
    # later page); such a record is on the attention list even though its status is hashed
    unexamined: str | None = None
    # Media-bank signatures, asked for by algorithm "orb" / "pdq_grid": carried from hashing to
    # the bank store or the case database only, never written by `to_dict` (local features
    # are as sensitive as the image; see hashing.algorithms.local_features).
    local_features: bytes | None = field(default=None, repr=False, compare=False)
    pdq_windows: tuple[tuple[str, int], ...] | None = field(default=None, repr=False,
                                                             compare=False)

    def to_dict(self) -> dict[str, Any]:
        text, raw_hex = path_to_text(self.path)
        out: dict[str, Any] = {"path": text}
        if raw_hex is not None:
            out["path_bytes_hex"] = raw_hex
        out.update(
            status=self.status,
            error=self.error,
            reason=self.reason,
            kind=self.kind,
            size=self.size,
            mtime=self.mtime,
            media_type=self.media_type,
            width=self.width,
            height=self.height,
        )
        if self.unexamined is not None:
            out["unexamined"] = self.unexamined
        if self.exif_orientation is not None:
            out["exif_orientation"] = self.exif_orientation
        if self.link_target is not None:
            out["link_target"] = path_to_text(self.link_target)[0]
        for name, value in self.hashes.items():
            out[name] = value
        if "pdq" in self.hashes or self.pdq_quality is not None:
            out["pdq_quality"] = self.pdq_quality
        if self.pdq_dihedral is not None:
            out["pdq_dihedral"] = list(self.pdq_dihedral)
        if self.exif_hashes:
            for name, value in self.exif_hashes.items():
                out[f"{name}_exif"] = value
        if self.pdq_frames is not None:
            out["pdq_frames"] = [f.to_dict() for f in self.pdq_frames]
            out["duration"] = self.duration
        if self.variants:
            out["variants"] = [v.to_dict() for v in self.variants]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], algorithms: tuple[str, ...]) -> HashRecord:
        """Inverse of `to_dict` for the named algorithms (used by resume and tests)."""
        path = d["path"]
        if d.get("path_bytes_hex"):
            path = os.fsdecode(bytes.fromhex(d["path_bytes_hex"]))
        frames = d.get("pdq_frames")
        exif = {a: d[f"{a}_exif"] for a in algorithms if f"{a}_exif" in d}
        return cls(
            path=path,
            status=d["status"],
            error=d.get("error"),
            media_type=d.get("media_type"),
            width=d.get("width"),
            height=d.get("height"),
            hashes={a: d[a] for a in algorithms if d.get(a) is not None},
            pdq_quality=d.get("pdq_quality"),
            pdq_dihedral=tuple(d["pdq_dihedral"]) if d.get("pdq_dihedral") else None,
            exif_orientation=d.get("exif_orientation"),
            exif_hashes=exif or None,
            pdq_frames=(
                tuple(FrameHash.from_dict(f) for f in frames)
                if frames is not None
                else None
            ),
            duration=d.get("duration"),
            variants=tuple(VariantHash.from_dict(v, algorithms) for v in d["variants"])
            if d.get("variants") else None,
            size=d.get("size"),
            mtime=d.get("mtime"),
            kind=d.get("kind", "file"),
            reason=d.get("reason"),
            link_target=d.get("link_target"),
            unexamined=d.get("unexamined"),
        )
