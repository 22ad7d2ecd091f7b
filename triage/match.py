"""Matching a case's records against the banks: exact digests, perceptual near matches
(PDQ with its 8 dihedral variants), and videos frame by frame the way vPDQ does it.

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
from hashing.registry import DIGESTS, PERCEPTUAL, spec
from hashing.types import HashRecord
from index.bank_types import BankEntry
from index.categories import canonical
from index.hamming import dihedral_range_search
from triage.policy import Policy
from triage.verify import Transform

# The order of `HashRecord.pdq_dihedral` (pdqhash.compute_dihedral): identity first.
DIHEDRAL_NAMES = (
    "original", "rotate90", "rotate180", "rotate270",
    "flip_x", "flip_y", "flip_plus1", "flip_minus1",
)

KIND_ORDER = {"exact": 0, "near": 1, "dihedral": 1, "video": 1, "frame": 1, "local": 1,
              "cluster": 2}


class Banks(Protocol):
    """What matching needs from the bank store (`index.banks.BankMatcher` provides it)."""

    def lookup_digest(self, algorithm: str, hex_: str, /) -> Sequence[BankEntry]: ...

    def perceptual(self, algorithm: str, /) -> tuple[Any, Sequence[Sequence[BankEntry]]]:
        """(index over distinct hashes, index row -> the entries holding that hash)."""
        ...


@dataclass(frozen=True, slots=True)
class Reason:
    """One explanation of a file's place in the queue."""

    kind: str  # exact | near | dihedral | video | frame | local | cluster
    algo: str
    bank: str | None
    entry: str | None
    distance: int
    category: str | None
    known_good: bool = False
    vic_category: int | None = None
    series: str | None = None
    variant: str | None = None  # dihedral: which transform of the file matched
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
    # The quality floor applies to PDQ on both sides (query filtering happens at the caller);
    # an entry analysts confirmed false too often is quarantined by the policy.
    if policy.quarantined(e.false_positives):
        return False
    return not (algo == "pdq" and e.quality is not None and e.quality < policy.min_quality)


def _query_ok(rec: HashRecord, algo: str, policy: Policy) -> bool:
    if algo != "pdq":
        return True
    return rec.pdq_quality is None or rec.pdq_quality >= policy.min_quality


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
    which = [i for i, r in enumerate(records) if algo in r.hashes and _query_ok(r, algo, policy)]
    if not which:
        return
    index, rows = banks.perceptual(algo)
    if index.ntotal == 0:
        return
    entries_of = _CachedRows(rows)
    radius = policy.radius[algo]
    # best[(record, bank, entry)] = (distance, variant); variant 0 wins ties (a plain match).
    best: dict[tuple[int, str, str], tuple[int, int, BankEntry]] = {}

    def note(i: int, variant: int, row: int, dist: int) -> None:
        for e in entries_of[row]:
            if not _usable(e, algo, policy):
                continue
            key = (i, e.bank, e.entry_id)
            if key not in best or (dist, variant) < best[key][:2]:
                best[key] = (dist, variant, e)

    dihedral = algo == "pdq" and policy.dihedral
    plain = [i for i in which if not (dihedral and records[i].pdq_dihedral)]
    turned = [i for i in which if dihedral and records[i].pdq_dihedral]
    if plain:
        lims, dists, ids = index.range_search(pack(algo, (records[i].hashes[algo] for i in plain)),
                                              radius)
        for q, i in enumerate(plain):
            for k in range(lims[q], lims[q + 1]):
                note(i, 0, int(ids[k]), int(dists[k]))
    if turned:
        codes = pack(algo, (h for i in turned for h in records[i].pdq_dihedral or ()))
        codes = codes.reshape(len(turned), len(DIHEDRAL_NAMES), -1)
        for q, variant, row, dist in dihedral_range_search(index, codes, radius):
            note(turned[q], int(variant), int(row), int(dist))
    for (i, _, _), (dist, variant, e) in sorted(best.items(), key=lambda kv: kv[0]):
        if variant == 0:
            out[i].append(_reason("near", algo, e, dist))
        else:
            out[i].append(_reason("dihedral", algo, e, dist, variant=DIHEDRAL_NAMES[variant]))


def _bank_item_frames(index: Any, entries_of: _CachedRows,
                      policy: Policy) -> dict[tuple[str, str], int]:
    """Frames per bank item: rows sharing (bank, entry id) are the frames of one video."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in range(index.ntotal):
        for e in entries_of[row]:
            if _usable(e, "pdq", policy):
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
    index, rows = banks.perceptual("pdq")
    if index.ntotal == 0:
        return
    entries_of = _CachedRows(rows)
    lims, dists, ids = index.range_search(pack("pdq", frames), policy.radius["pdq"])
    hit_frames: dict[tuple[int, str, str], set[int]] = defaultdict(set)
    hit_rows: dict[tuple[int, str, str], set[int]] = defaultdict(set)
    nearest: dict[tuple[int, str, str], tuple[int, BankEntry]] = {}
    nearest_frame: dict[tuple[int, str, str], tuple[int, int | None]] = {}
    for q, i in enumerate(owners):
        for k in range(lims[q], lims[q + 1]):
            row, dist = int(ids[k]), int(dists[k])
            for e in entries_of[row]:
                if not _usable(e, "pdq", policy):
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
            out[i].append(_reason("frame", "pdq", e, dist, query_frames_pct=query_pct,
                                  bank_frames_pct=bank_pct, frame=f"{word} {frame + 1}"))
        elif n_item == 1 or (query_pct >= policy.video_query_pct
                             and bank_pct >= policy.video_bank_pct):
            out[i].append(_reason("video", "pdq", e, dist, query_frames_pct=query_pct,
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


def known_bad(reasons: Sequence[Reason]) -> list[Reason]:
    return [r for r in reasons if not r.known_good and r.kind != "cluster"]


def is_known_good(reasons: Sequence[Reason]) -> bool:
    """Known-good only when every bank hit is known-good (a known-bad hit always wins)."""
    hits = [r for r in reasons if r.kind != "cluster"]
    return bool(hits) and all(r.known_good for r in hits)
