"""Matching a case's records against the banks: exact digests, perceptual near matches for
every algorithm a bank holds (each record's stored-pixel hash, exact dihedral variants and
canonical variants, see `triage.queries`), low-confidence matches of hashes under the quality
floor, and videos frame by frame the way vPDQ does it.

Every hit becomes a `Reason` naming the bank, the entry, the algorithm and the distance, so
the queue can say why a file is where it is. The bank side is read through the `Banks`
protocol (satisfied by `index.banks.BankMatcher`), with indexes built once per scan and every
query of one algorithm sent in one batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hashing.codec import pack
from hashing.registry import DIGESTS, FRAME_ALGORITHM, PERCEPTUAL, spec
from hashing.types import HashRecord
from index.bank_types import BankEntry
from index.categories import canonical
from triage.policy import Policy
from triage.queries import DIHEDRAL_NAMES, Query, low_quality, record_queries
from triage.verify import Transform

__all__ = ["DIHEDRAL_NAMES", "Banks", "Reason", "match_records", "matching_notes"]

# low_quality: a hash under the quality floor within the low-quality radius (low confidence)
KIND_ORDER = {"exact": 0, "near": 1, "dihedral": 1, "variant": 1, "video": 1, "frame": 1,
              "local": 1, "low_quality": 2, "cluster": 3}


class Banks(Protocol):
    """What matching needs from the bank store (`index.banks.BankMatcher` provides it)."""

    def lookup_digest(self, algorithm: str, hex_: str, /) -> Sequence[BankEntry]: ...

    def perceptual(self, algorithm: str, /) -> tuple[Any, Sequence[Sequence[BankEntry]]]:
        """(index over distinct hashes, index row -> the entries holding that hash)."""
        ...


@dataclass(frozen=True, slots=True)
class Reason:
    """One explanation of a file's place in the queue."""

    kind: str  # exact | near | dihedral | variant | video | frame | local | low_quality | cluster
    algo: str
    bank: str | None
    entry: str | None
    distance: int
    category: str | None
    known_good: bool = False
    vic_category: int | None = None
    series: str | None = None
    variant: str | None = None  # dihedral / variant: which transform or reframing matched
    query_frames_pct: float | None = None  # video: share of this video's frames matched
    bank_frames_pct: float | None = None  # video: share of the bank item's frames matched
    via: str | None = None  # cluster: the known-bad case file this one is near
    frame: str | None = None  # frame: which frame or page matched ("frame 3", "page 2")
    transform: Transform | None = None  # local: the verified geometric transform
    ref: str = "bank item"  # local: what the transform is relative to, for its text
    severity: int | None = None  # of the category (index.categories), None without one

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reason:
        """Inverse of `to_dict` (its keys are the field names, besides the transform's)."""
        fields = {k: v for k, v in d.items() if k not in ("transform", "explanation")}
        t = d.get("transform")
        if t is not None:
            fields["ref"] = t["of"]
            fields["transform"] = Transform.from_dict(t)
        return cls(**fields)

    @property
    def sort_key(self) -> tuple[int, int, str, str]:
        return (KIND_ORDER[self.kind], self.distance, self.bank or "", self.entry or "")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind, "algo": self.algo, "bank": self.bank, "entry": self.entry,
            "distance": self.distance, "category": self.category,
        }
        for name in ("vic_category", "series", "variant", "query_frames_pct",
                     "bank_frames_pct", "via", "frame", "severity"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.transform is not None:
            out["transform"] = {**self.transform.to_dict(), "of": self.ref}
            out["explanation"] = self.transform.text(self.ref)
        if self.known_good:
            out["known_good"] = True
        return out


class _CachedRows:
    """Memoised row -> entries (the bank reads labels from SQLite on every lookup)."""

    def __init__(self, rows: Sequence[Sequence[BankEntry]]) -> None:
        self._rows = rows
        self._memo: dict[int, Sequence[BankEntry]] = {}

    def __getitem__(self, row: int) -> Sequence[BankEntry]:
        if row not in self._memo:
            self._memo[row] = self._rows[row]
        return self._memo[row]


def _reason(kind: str, algo: str, e: BankEntry, distance: int, **extra: Any) -> Reason:
    # One canonical label per category whichever bank (and spelling) it came from.
    category = canonical(e.category, e.vic_category, e.caid_category)
    return Reason(
        kind=kind, algo=algo, bank=e.bank, entry=e.entry_id, distance=int(distance),
        category=category.label if category else None, known_good=bool(e.known_good),
        vic_category=category.vic_category if category else None, series=e.series,
        severity=category.severity if category else None, **extra,
    )


def _usable(e: BankEntry, algo: str, policy: Policy) -> bool:
    """A bank entry over the quality floor (or without a quality) matches at full radius;
    one analysts confirmed false too often is quarantined by the policy."""
    return not _quarantined(e, policy) and not low_quality(e.quality, algo, policy)


def _quarantined(e: BankEntry, policy: Policy) -> bool:
    return policy.quarantined(e.false_positives)


def _exact(records: Sequence[HashRecord], banks: Banks, policy: Policy,
           out: list[list[Reason]]) -> None:
    for i, rec in enumerate(records):
        for algo in DIGESTS:
            value = rec.hashes.get(algo)
            if value:
                out[i].extend(_reason("exact", algo, e, 0) for e in banks.lookup_digest(algo, value)
                              if _usable(e, algo, policy))


def _near(
    records: Sequence[HashRecord], banks: Banks, algo: str, policy: Policy,
    out: list[list[Reason]],
) -> None:
    """Every query of every record (`triage.queries`) at the policy radius; hashes under the
    quality floor, on either side, only within the low-quality radius, as their own
    low-confidence reason. One reason per (record, bank entry): the closest query wins."""
    queries = [q for i, r in enumerate(records) for q in record_queries(i, r, algo, policy)]
    if not queries:
        return
    index, rows = banks.perceptual(algo)
    if index.ntotal == 0:
        return
    entries_of = _CachedRows(rows)
    radius = policy.radius[algo]
    low_radius = min(policy.low_quality_radius, radius)
    # best[(record, bank, entry)] = (low confidence, distance, rank, query, entry)
    best: dict[tuple[int, str, str], tuple[bool, int, int, Query, BankEntry]] = {}
    groups = [([q for q in queries if not low_quality(q.quality, algo, policy)], radius),
              ([q for q in queries if low_quality(q.quality, algo, policy)], low_radius)]
    for group, r in groups:
        if not group or r < 0:
            continue
        lims, dists, ids = index.range_search(pack(algo, (q.hex for q in group)), r)
        for n, q in enumerate(group):
            for k in range(lims[n], lims[n + 1]):
                dist = int(dists[k])
                for e in entries_of[int(ids[k])]:
                    if _quarantined(e, policy):
                        continue
                    low = low_quality(q.quality, algo, policy) or not _usable(e, algo, policy)
                    if low and dist > low_radius:
                        continue
                    key = (q.record, e.bank, e.entry_id)
                    cand = (low, dist, q.rank, q, e)
                    if key not in best or cand[:3] < best[key][:3]:
                        best[key] = cand
    for (i, _, _), (low, dist, _, q, e) in sorted(best.items(), key=lambda kv: kv[0]):
        kind = "low_quality" if low else q.kind
        out[i].append(_reason(kind, algo, e, dist, variant=q.variant))


def _bank_item_frames(index: Any, entries_of: _CachedRows,
                      policy: Policy) -> dict[tuple[str, str], int]:
    """Frames per bank item: rows sharing (bank, entry id) are the frames of one video."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in range(index.ntotal):
        for e in entries_of[row]:
            if _usable(e, FRAME_ALGORITHM, policy):
                counts[(e.bank, e.entry_id)] += 1
    return counts


def _video(records: Sequence[HashRecord], banks: Banks, policy: Policy,
           out: list[list[Reason]]) -> None:
    owners: list[int] = []
    frames: list[str] = []
    frame_of: list[int | None] = []  # image frames and pages carry their index; video None
    total: dict[int, int] = defaultdict(int)
    for i, rec in enumerate(records):
        for f in rec.pdq_frames or ():
            if f.frame == 0:
                continue  # an image's first frame is the image itself, matched as a still
            if f.quality >= policy.min_quality:  # vPDQ drops low-quality frames on both sides
                owners.append(i)
                frames.append(f.pdq)
                frame_of.append(f.frame)
                total[i] += 1
    if not frames:
        return
    index, rows = banks.perceptual(FRAME_ALGORITHM)
    if index.ntotal == 0:
        return
    entries_of = _CachedRows(rows)
    lims, dists, ids = index.range_search(pack(FRAME_ALGORITHM, frames),
                                          policy.radius[FRAME_ALGORITHM])
    hit_frames: dict[tuple[int, str, str], set[int]] = defaultdict(set)
    hit_rows: dict[tuple[int, str, str], set[int]] = defaultdict(set)
    nearest: dict[tuple[int, str, str], tuple[int, BankEntry]] = {}
    nearest_frame: dict[tuple[int, str, str], tuple[int, int | None]] = {}
    for q, i in enumerate(owners):
        for k in range(lims[q], lims[q + 1]):
            row, dist = int(ids[k]), int(dists[k])
            for e in entries_of[row]:
                if not _usable(e, FRAME_ALGORITHM, policy):
                    continue
                key = (i, e.bank, e.entry_id)
                hit_frames[key].add(q)
                hit_rows[key].add(row)
                if key not in nearest or dist < nearest[key][0]:
                    nearest[key] = (dist, e)
                    nearest_frame[key] = (dist, frame_of[q])
    if not nearest:
        return
    item_frames = _bank_item_frames(index, entries_of, policy)
    for key in sorted(nearest):
        i, bank, entry_id = key
        dist, e = nearest[key]
        n_item = max(item_frames.get((bank, entry_id), 1), len(hit_rows[key]))
        query_pct = round(100.0 * len(hit_frames[key]) / total[i], 2)
        bank_pct = round(100.0 * len(hit_rows[key]) / n_item, 2)
        # A one-frame bank item is a still image: stills taken from videos count on any frame.
        frame = nearest_frame[key][1]
        if frame is not None:
            # a multi-frame image: a match on any one frame or page matches the file
            word = "page" if records[i].media_type == "image/tiff" else "frame"
            out[i].append(_reason("frame", FRAME_ALGORITHM, e, dist, query_frames_pct=query_pct,
                                  bank_frames_pct=bank_pct, frame=f"{word} {frame + 1}"))
        elif n_item == 1 or (query_pct >= policy.video_query_pct
                             and bank_pct >= policy.video_bank_pct):
            out[i].append(_reason("video", FRAME_ALGORITHM, e, dist, query_frames_pct=query_pct,
                                  bank_frames_pct=bank_pct))


def match_records(records: Sequence[HashRecord], banks: Banks, policy: Policy,
                  algorithms: Iterable[str] | None = None) -> list[tuple[Reason, ...]]:
    """Reasons per record (same order as `records`), strongest first."""
    out: list[list[Reason]] = [[] for _ in records]
    _exact(records, banks, policy, out)
    present = {a for r in records for a in r.hashes}
    for algo in algorithms if algorithms is not None else PERCEPTUAL:
        if spec(algo).kind == "perceptual" and algo in present and algo in policy.radius:
            _near(records, banks, algo, policy, out)
    _video(records, banks, policy, out)
    return [tuple(sorted(rs, key=lambda r: r.sort_key)) for rs in out]


def matching_notes(held: Iterable[str], policy: Policy) -> dict[str, Any]:
    """What the scan matched with, for the summary: the perceptual algorithms enabled banks
    hold, and policy radius keys for algorithms no bank holds (they cannot do anything)."""
    held_set = set(held)
    return {
        "algorithms": sorted(held_set),
        "radius": {a: policy.radius[a] for a in sorted(held_set) if a in policy.radius},
        # a key that changes a default for an algorithm no bank holds does nothing: say so
        "unused_policy_radius": sorted(
            a for a in policy.radius_set - held_set
            if policy.radius.get(a) != spec(a).default_radius),
        "variants": policy.variants,
        "dihedral": policy.dihedral,
        "low_quality_radius": policy.low_quality_radius,
    }


def known_bad(reasons: Sequence[Reason]) -> list[Reason]:
    return [r for r in reasons if not r.known_good and r.kind != "cluster"]


def is_known_good(reasons: Sequence[Reason]) -> bool:
    """Known-good only when every bank hit is known-good (a known-bad hit always wins)."""
    hits = [r for r in reasons if r.kind != "cluster"]
    return bool(hits) and all(r.known_good for r in hits)
