"""The scan policy: match radii, quality floor, video thresholds, tier numbers and the walk and
media limits, from TOML.

Defaults for radii and the quality floor come from `hashing.registry` (stated once there);
a policy file only overrides them. Example (every key optional):

    [match]
    radius = { pdq = 31, phash = 8 }
    min_quality = 50
    dihedral = true
    variants = true          # hash query-side canonical variants (trim, caption, embedded, deskew)
    low_quality_radius = 8   # PDQ under min_quality: low-confidence match within this radius
    confirm_radius = { phash = 6 }  # a near match farther than this to a media-bank item
                                    # stands only if the item's local features verify it

    [video]
    query_frames_pct = 80.0   # share of the video's frames that must match
    bank_frames_pct = 0.0     # share of the bank item's frames that must be matched

    [cluster]
    enabled = true
    radius = 31
    local_links = true       # link the case's images by local features (crops, overlays,
                             # screenshots, collages); false: no image is described by them
                             # unless a media bank holds local features

    [tiers]
    possible_new = 1   # unknown media clustered with known-bad material
    near = 2           # near (perceptual) matches to known-bad material
    exact = 3          # exact digest matches
    unmatched = 4      # other media that matched nothing

    [review]
    quarantine_false_positives = 3   # stop matching a bank entry after this many confirmed
                                     # false positives (0: never)

    [report]
    unmatched_rows = 20000   # rows of the unmatched tier in report.html (all are in queue.csv)

    [limits]                             # what hostile evidence may cost (defaults shown)
    pixel_limit = 178956970              # decoded width x height; larger images -> error row
    max_media_bytes = 536870912          # larger files get digests only
    max_decode_bytes = 671088640         # estimated memory to decode one image -> error row
    decode_seconds = 60.0                # wall-clock seconds to decode one file -> error row
    max_frames = 1000                    # frames/pages hashed per image; the rest -> attention
    max_decode_bytes = 671088640         # estimated memory to decode one image -> error row
    decode_seconds = 60.0                # wall-clock seconds to decode one file -> error row
    max_archive_depth = 3                # an archive on disk is depth 1
    max_member_bytes = 268435456         # one archive member
    max_archive_total_bytes = 4294967296 # decompressed bytes per outer archive
    max_expansion_ratio = 200.0          # decompressed / compressed bytes per archive
    max_members = 100000                 # member rows per archive
    max_dir_depth = 256                  # directory levels below a root

The media limits are part of how a file is hashed, so changing them hashes every file again
on the next scan of a case; the walk limits only change which rows the walk yields.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hashing.decode import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_FRAMES, DEFAULT_PIXEL_LIMIT
from hashing.errors import TriageError
from hashing.hasher import DEFAULT_DECODE_SECONDS, DEFAULT_MAX_MEDIA_BYTES
from hashing.i18n import Text, _, tr
from hashing.registry import PDQ, PERCEPTUAL, spec
from triage.limits import WalkLimits

LOW_QUALITY_RADIUS = 8
TIER_KEYS = ("possible_new", "near", "exact", "unmatched")
WALK_LIMIT_KEYS = tuple(f.name for f in fields(WalkLimits))
MEDIA_LIMIT_KEYS = ("pixel_limit", "max_media_bytes", "max_frames", "max_decode_bytes",
                    "decode_seconds")
_MAX_INT = 2**63 - 1  # what SQLite and JSON consumers can hold exactly


class PolicyError(TriageError, ValueError):
    """A policy file that cannot be used; names the file and the offending key."""

    def __init__(self, path: str, key: str, reason: str) -> None:
        super().__init__(Text("{path}: [{key}] {reason}",
                              {"path": path, "key": key, "reason": reason}))
        self.path = path
        self.key = key
        self.reason = reason


def _default_radii() -> dict[str, int]:
    return {n: r for n in PERCEPTUAL if (r := spec(n).default_radius) is not None}


def _default_confirm() -> dict[str, int]:
    return {n: r for n in PERCEPTUAL if (r := spec(n).confirm_radius) is not None}


def _default_tiers() -> dict[str, int]:
    return {k: i + 1 for i, k in enumerate(TIER_KEYS)}


@dataclass(frozen=True, slots=True)
class Policy:
    radius: Mapping[str, int] = field(default_factory=_default_radii)
    min_quality: int = PDQ.quality_floor or 0
    dihedral: bool = True
    variants: bool = True
    # Hashes under the quality floor match only within this much smaller radius, as a
    # separate low-confidence reason (-1 = never); the numbers are in benchmarks/accuracy.
    low_quality_radius: int = LOW_QUALITY_RADIUS
    # Near matches to media-bank items farther than this need their local features' verdict
    # (triage.local_match); an algorithm not listed, or a radius within it, never does.
    confirm_radius: Mapping[str, int] = field(default_factory=_default_confirm)
    video_query_pct: float = 80.0
    video_bank_pct: float = 0.0
    cluster_enabled: bool = True
    cluster_radius: int = PDQ.default_radius or 0
    # In-case linking by local features (triage.local_match); its cost is in the README.
    local_links: bool = True
    tiers: Mapping[str, int] = field(default_factory=_default_tiers)
    pixel_limit: int = DEFAULT_PIXEL_LIMIT
    max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES
    max_frames: int = DEFAULT_MAX_FRAMES
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES
    decode_seconds: float = DEFAULT_DECODE_SECONDS
    walk_limits: WalkLimits = field(default_factory=WalkLimits)
    # radius keys the policy file set (a key for an algorithm no bank holds is reported)
    radius_set: frozenset[str] = field(default=frozenset(), compare=False)
    quarantine_false_positives: int = 3
    report_unmatched_rows: int = 20_000

    def quarantined(self, false_positives: int) -> bool:
        """Whether a bank entry with this many confirmed false positives is left unmatched."""
        q = self.quarantine_false_positives
        return q > 0 and false_positives >= q

    def to_dict(self) -> dict[str, Any]:
        return {
            "match": {
                "radius": dict(sorted(self.radius.items())),
                "min_quality": self.min_quality,
                "dihedral": self.dihedral,
                "variants": self.variants,
                "low_quality_radius": self.low_quality_radius,
                "confirm_radius": dict(sorted(self.confirm_radius.items())),
            },
            "video": {
                "query_frames_pct": self.video_query_pct,
                "bank_frames_pct": self.video_bank_pct,
            },
            "cluster": {"enabled": self.cluster_enabled, "radius": self.cluster_radius,
                        "local_links": self.local_links},
            "tiers": dict(self.tiers),
            "review": {"quarantine_false_positives": self.quarantine_false_positives},
            "report": {"unmatched_rows": self.report_unmatched_rows},
            "limits": {"pixel_limit": self.pixel_limit, "max_media_bytes": self.max_media_bytes,
                       "max_frames": self.max_frames, "max_decode_bytes": self.max_decode_bytes,
                       "decode_seconds": self.decode_seconds, **asdict(self.walk_limits)},
        }


def _int(src: str, key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise PolicyError(src, key, tr("expected an integer in {lo}..{hi}, got {value!r}",
                                               lo=lo, hi=hi, value=value))
    return value


def _pct(src: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise PolicyError(src, key, tr("expected a percentage 0..100, got {value!r}",
                                               value=value))
    return float(value)


def _ratio(src: str, key: str, value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value <= 0):
        raise PolicyError(src, key, tr("expected a positive number, got {value!r}",
                                               value=value))
    return float(value)


def _bool(src: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(src, key, tr("expected true or false, got {value!r}", value=value))
    return value


def _table(src: str, doc: Mapping[str, Any], name: str, allowed: set[str]) -> dict[str, Any]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise PolicyError(src, name, tr("expected a table"))
    unknown = set(table) - allowed
    if unknown:
        raise PolicyError(src, name, _unknown(unknown, allowed))
    return table


def _unknown(unknown: set[str], allowed: set[str]) -> str:
    """Name the unknown keys, the valid ones and the closest valid one to each typo."""
    hints = []
    for key in sorted(unknown):
        close = difflib.get_close_matches(key, sorted(allowed), n=1)
        hints.append(_("{key!r} (did you mean {close!r}?)").format(key=key, close=close[0])
                     if close else repr(key))
    return _("unknown keys {keys}; valid keys: {valid}").format(
        keys=", ".join(hints), valid=", ".join(sorted(allowed)))


def _radii(src: str, key: str, given: Any, base: Mapping[str, int]) -> dict[str, int]:
    """`base` with the radii a `[match]` table of algorithm = radius sets."""
    if not isinstance(given, dict):
        raise PolicyError(src, f"match.{key}", tr("expected a table of algorithm = radius"))
    out = dict(base)
    for algo, r in given.items():
        if algo not in PERCEPTUAL:
            raise PolicyError(src, f"match.{key}", tr("{algo!r} is not a perceptual algorithm",
                                                            algo=algo))
        out[algo] = _int(src, f"match.{key}.{algo}", r, 0, spec(algo).bits)
    return out


def policy_from_mapping(doc: Mapping[str, Any], src: str = "<policy>") -> Policy:
    """Validate a parsed policy document; unknown keys are errors (a typo must not go unseen)."""
    tables = {"match", "video", "cluster", "tiers", "limits", "review", "report"}
    unknown = set(doc) - tables
    if unknown:
        raise PolicyError(src, "", _unknown(unknown, tables))
    m = _table(src, doc, "match", {"radius", "min_quality", "dihedral", "variants",
                                   "low_quality_radius", "confirm_radius"})
    v = _table(src, doc, "video", {"query_frames_pct", "bank_frames_pct"})
    c = _table(src, doc, "cluster", {"enabled", "radius", "local_links"})
    t = _table(src, doc, "tiers", set(TIER_KEYS))
    lim = _table(src, doc, "limits", {*MEDIA_LIMIT_KEYS, *WALK_LIMIT_KEYS})
    rev = _table(src, doc, "review", {"quarantine_false_positives"})
    rep = _table(src, doc, "report", {"unmatched_rows"})
    base = Policy()
    radius_in = m.get("radius", {})
    radius = _radii(src, "radius", radius_in, base.radius)
    confirm = _radii(src, "confirm_radius", m.get("confirm_radius", {}), base.confirm_radius)
    tiers = dict(base.tiers)
    for key, value in t.items():
        tiers[key] = _int(src, f"tiers.{key}", value, 1, 99)
    return Policy(
        radius=radius,
        min_quality=_int(src, "match.min_quality", m.get("min_quality", base.min_quality), 0, 100),
        dihedral=_bool(src, "match.dihedral", m.get("dihedral", base.dihedral)),
        variants=_bool(src, "match.variants", m.get("variants", base.variants)),
        low_quality_radius=_int(src, "match.low_quality_radius",
                                m.get("low_quality_radius", base.low_quality_radius), -1,
                                PDQ.bits),
        confirm_radius=confirm,
        radius_set=frozenset(radius_in),
        video_query_pct=_pct(src, "video.query_frames_pct",
                             v.get("query_frames_pct", base.video_query_pct)),
        video_bank_pct=_pct(src, "video.bank_frames_pct",
                            v.get("bank_frames_pct", base.video_bank_pct)),
        cluster_enabled=_bool(src, "cluster.enabled", c.get("enabled", base.cluster_enabled)),
        cluster_radius=_int(src, "cluster.radius", c.get("radius", base.cluster_radius), 0, 256),
        local_links=_bool(src, "cluster.local_links", c.get("local_links", base.local_links)),
        tiers=tiers,
        pixel_limit=_int(src, "limits.pixel_limit", lim.get("pixel_limit", base.pixel_limit),
                         1, _MAX_INT),
        max_media_bytes=_int(src, "limits.max_media_bytes",
                             lim.get("max_media_bytes", base.max_media_bytes), 1, _MAX_INT),
        max_frames=_int(src, "limits.max_frames", lim.get("max_frames", base.max_frames),
                        1, _MAX_INT),
        max_decode_bytes=_int(src, "limits.max_decode_bytes",
                              lim.get("max_decode_bytes", base.max_decode_bytes), 1, _MAX_INT),
        decode_seconds=_ratio(src, "limits.decode_seconds",
                              lim.get("decode_seconds", base.decode_seconds)),
        walk_limits=_walk_limits(src, lim, base.walk_limits),
        quarantine_false_positives=_int(
            src, "review.quarantine_false_positives",
            rev.get("quarantine_false_positives", base.quarantine_false_positives), 0, _MAX_INT),
        report_unmatched_rows=_int(src, "report.unmatched_rows",
                                   rep.get("unmatched_rows", base.report_unmatched_rows),
                                   0, _MAX_INT),
    )


def _walk_limits(src: str, table: Mapping[str, Any], base: WalkLimits) -> WalkLimits:
    values: dict[str, Any] = {}
    for key in WALK_LIMIT_KEYS:
        value = table.get(key, getattr(base, key))
        if key == "max_expansion_ratio":
            values[key] = _ratio(src, f"limits.{key}", value)
        else:
            values[key] = _int(src, f"limits.{key}", value, 0, _MAX_INT)
    return WalkLimits(**values)


def load_policy(path: Path | None) -> Policy:
    """The default policy, or the one in the TOML file at `path`."""
    if path is None:
        return Policy()
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise PolicyError(str(path), "", tr("cannot read: {reason}", reason=exc.strerror)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(str(path), "", tr("not valid TOML: {reason}", reason=str(exc))) from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8 by definition; tomllib does not wrap this
        raise PolicyError(str(path), "", tr("not UTF-8 text (byte {at}): TOML must be UTF-8",
                                                     at=exc.start)) from exc
    return policy_from_mapping(doc, str(path))
