"""Crop-robust matching for a scan: media-bank sub-windows and local features, and the in-case
links that put crops, captioned copies, screenshots and collages of known-bad files in tier 1.

Bank side: a record's PDQ is searched among the bank's sub-window PDQs (`pdq_grid`), and
its local features among the bank items' descriptors (`triage.verify`); both give ordinary
reasons naming the bank and entry (the reference file's path in the unit's holdings), the
local one with its verified transform. Records already matched exactly are not described
again.

In-case: every case image's descriptors are spilled to the case directory as matching reads
the case, and once matching has told which files are known-bad, every other image is matched
against an index of the known-bad images' descriptors only. What a link can change is an
unknown file's tier (a suggestion naming the known-bad file it contains or is contained in)
and the cluster it joins, and both need one end known-bad, so nothing is lost by not
matching unknown files among themselves; and the work is the number of images times the cost
of one query against the known-bad images, never all pairs of images. A verified link is
a `cluster` reason on the unknown file, carrying the transform read from its side.
"""

from __future__ import annotations

import io
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, overload

import numpy as np

from hashing.algorithms.local_features import DESCRIPTOR_BYTES, MAX_KEYPOINTS, LocalFeatures
from hashing.codec import pack
from index.media_bank import FeatureSet, MediaMatcher, descriptor_index
from triage.items import CaseItem
from triage.match import Reason, _reason
from triage.outputs import FILE_MODE
from triage.policy import Policy
from triage.verify import DEFAULT_PARAMS, Transform, VerifyParams, match_features

# What a scan computes besides its hashes so its images can be matched and linked this way.
LOCAL_ALGORITHMS = ("orb",)


def links_enabled(policy: Policy) -> bool:
    """Whether the case's images are linked among themselves by local features."""
    return policy.cluster_enabled and policy.local_links


def local_features_needed(policy: Policy, media: MediaMatcher | None) -> bool:
    """Whether a scan describes its images by local features at all: only for in-case
    linking or an enabled media bank that holds local features (they cost about a third
    of a default scan's hashing time per image; see README, "Media banks")."""
    return links_enabled(policy) or (media is not None and media.features().n_items > 0)
_EMPTY = LocalFeatures(0, 0, np.zeros((0, 4), np.float32), np.zeros((0, 32), np.uint8))


def _features(blobs: Sequence[bytes | None]) -> list[LocalFeatures]:
    out = []
    for b in blobs:
        try:
            out.append(LocalFeatures.from_bytes(b) if b else _EMPTY)
        except ValueError:
            out.append(_EMPTY)  # a damaged row describes nothing rather than stopping the scan
    return out


def _windows(items: Sequence[CaseItem], media: MediaMatcher, policy: Policy
             ) -> dict[int, list[Reason]]:
    """Sub-window PDQ reasons by position in `items` (not ordinal: a chunk's ordinals do not
    start at 0)."""
    index, rows = media.windows()
    radius = policy.radius.get("pdq")
    out: dict[int, list[Reason]] = {}
    if index.ntotal == 0 or radius is None:
        return out
    which = [k for k, i in enumerate(items) if i.record.hashes.get("pdq") and (
        i.record.pdq_quality is None or i.record.pdq_quality >= policy.min_quality)]
    if not which:
        return out
    lims, dists, ids = index.range_search(
        pack("pdq", (items[k].record.hashes["pdq"] for k in which)), radius)
    for q, pos in enumerate(which):
        best: dict[tuple[str, str], Reason] = {}
        for k in range(lims[q], lims[q + 1]):
            for e in rows[int(ids[k])]:
                key = (e.bank, e.entry_id)
                if key not in best or int(dists[k]) < best[key].distance:
                    best[key] = _reason("near", "pdq_grid", e, int(dists[k]))
        if best:
            out[pos] = list(best.values())
    return out


@dataclass(frozen=True, slots=True)
class MediaMatched:
    """`items` with the media banks' reasons; `refuted`: weak hash matches to media-bank
    items whose local features did not verify them, dropped (counted in the summary)."""

    items: list[CaseItem]
    refuted: int = 0


def _weak(r: Reason, policy: Policy) -> bool:
    """A near match farther than its algorithm's confirm radius (`Policy.confirm_radius`).
    Only plain near matches: a mirrored or reframed one is not what local features compare."""
    c = policy.confirm_radius.get(r.algo)
    return r.kind == "near" and c is not None and r.distance > c


def _confirm(item: CaseItem, media: MediaMatcher, policy: Policy, params: VerifyParams
             ) -> tuple[CaseItem, int]:
    """`item` with its weak matches to media-bank items checked against those items' local
    features: one whose item also matched otherwise (not weakly) stands; else a verified
    transform keeps it (and adds the local reason explaining it); else it is dropped. A weak
    match that cannot be checked (no features on either side, no media item) stands."""
    weak = [r for r in item.reasons if _weak(r, policy)]
    if not weak or not item.features:
        return item, 0
    query = _features([item.features])[0]
    if not len(query):
        return item, 0
    strong = {(r.bank, r.entry) for r in item.reasons
              if r.kind != "cluster" and not _weak(r, policy)}
    dropped: list[Reason] = []
    added: list[Reason] = []
    for r in weak:
        if (r.bank, r.entry) in strong:
            continue
        assert r.bank is not None and r.entry is not None  # a near match names its entry
        ref = media.features_of(r.bank, r.entry)
        if ref is None:
            continue
        found = match_features([query], FeatureSet.build([ref], approximate=False), params)
        if found:
            t = found[0].transform
            added.append(replace(r, kind="local", algo="orb", distance=round(t.mean_distance),
                                 transform=t))
        else:
            dropped.append(r)
    if not dropped and not added:
        return item, 0
    kept = [r for r in item.reasons if r not in dropped]
    return replace(item, reasons=tuple(sorted((*kept, *added), key=lambda r: r.sort_key))), \
        len(dropped)


def media_match(items: Sequence[CaseItem], media: MediaMatcher, policy: Policy,
                params: VerifyParams = DEFAULT_PARAMS) -> MediaMatched:
    """`items` with the media banks' reasons added (sub-window PDQ and local features) and
    their weak hash matches to media-bank items confirmed or refuted (`_confirm`).

    An item already matched exactly is not matched again: nothing it could add would change
    its place, and local matching is the costly part of a scan."""
    found = _windows(items, media, policy)
    refs = media.features()
    if refs.n_items:
        ask = [k for k, i in enumerate(items)
               if i.features and not any(r.kind == "exact" for r in i.reasons)]
        matches = match_features(_features([items[k].features for k in ask]), refs, params)
        entries = media.item_entries(sorted({m.item for m in matches}))
        for m in matches:
            e = entries.get(m.item)
            if e is not None:
                found.setdefault(ask[m.query], []).append(
                    _reason("local", "orb", e, round(m.transform.mean_distance),
                            transform=m.transform))
    out = list(items)
    for k, extra in found.items():
        # a reason for a (bank, entry) the item already has from PDQ or a digest adds nothing;
        # one that confirms a weak match (`_confirm`) is kept
        have = {(r.bank, r.entry) for r in out[k].reasons
                if r.kind != "cluster" and not _weak(r, policy)}
        new = [r for r in extra if (r.bank, r.entry) not in have]
        if new:
            merged = sorted((*out[k].reasons, *new), key=lambda r: r.sort_key)
            out[k] = replace(out[k], reasons=tuple(merged))
    refuted = 0
    if refs.n_items:
        for k, item in enumerate(out):
            out[k], n = _confirm(item, media, policy, params)
            refuted += n
    return MediaMatched(out, refuted)


class _Column:
    """One append-only array of fixed-width rows: a flat file memory-mapped back (spilled)
    or a byte buffer (in memory), read back with the same dtype and row shape."""

    def __init__(self, path: Path | None, dtype: str, width: int) -> None:
        self.path, self.dtype, self.width, self.rows = path, np.dtype(dtype), width, 0
        self._sink: BinaryIO = open(path, "wb") if path else io.BytesIO()  # noqa: SIM115
        if path is not None:
            os.chmod(path, FILE_MODE)

    def append(self, arr: np.ndarray) -> None:
        self._sink.write(np.ascontiguousarray(arr, dtype=self.dtype).tobytes())
        self.rows += int(arr.shape[0])

    def array(self) -> np.ndarray:
        shape = (self.rows, self.width)
        if self.rows == 0:
            return np.zeros(shape, self.dtype)
        if self.path is None:
            assert isinstance(self._sink, io.BytesIO)
            return np.frombuffer(self._sink.getbuffer(), self.dtype).reshape(shape)
        self._sink.flush()
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=shape)

    def close(self) -> None:
        self._sink.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _Spilled(Sequence[LocalFeatures]):
    """The linker's images as `LocalFeatures` read from its columns on demand (the query
    side of `match_features`; nothing is copied until a batch is searched)."""

    def __init__(self, which: np.ndarray, items: np.ndarray, starts: np.ndarray,
                 kps: np.ndarray, desc: np.ndarray) -> None:
        self._which, self._items, self._starts = which, items, starts
        self._kps, self._desc = kps, desc

    def __len__(self) -> int:
        return int(self._which.shape[0])

    def _one(self, i: int) -> LocalFeatures:
        k = int(self._which[i])
        _, w, h, n = (int(v) for v in self._items[k])
        lo = int(self._starts[k])
        return LocalFeatures(w, h, np.asarray(self._kps[lo:lo + n]),
                             np.asarray(self._desc[lo:lo + n]))

    @overload
    def __getitem__(self, i: int) -> LocalFeatures: ...
    @overload
    def __getitem__(self, i: slice) -> list[LocalFeatures]: ...
    def __getitem__(self, i: int | slice) -> LocalFeatures | list[LocalFeatures]:
        if isinstance(i, slice):
            return [self._one(k) for k in range(*i.indices(len(self)))]
        return self._one(i)


class CaseLinker:
    """The case's own image features, collected chunk by chunk and linked once all are in.

    Each image's keypoints and descriptors (48 bytes a keypoint, at most `QUERY_KEYPOINTS`
    an image) are appended to flat files in `spill_dir` (the scan's case directory, hidden
    `*.tmp` files a later scan overwrites if this one is killed) and memory-mapped back by
    `pairs()`, so they never count against the derive stages' memory budget; without a
    directory they are kept in memory (the in-memory composition the tests compare with).
    What `pairs()` holds in memory is the known-bad images' descriptors and their index.
    """

    def __init__(self, spill_dir: Path | None = None) -> None:
        def col(name: str, dtype: str, width: int) -> _Column:
            path = spill_dir / f".links-{name}.tmp" if spill_dir is not None else None
            return _Column(path, dtype, width)

        # per image: ordinal, width, height, keypoints; per keypoint: owner, geometry, descriptor
        self._items = col("items", "<i8", 4)
        self._owner = col("owner", "<i8", 1)
        self._kps = col("keypoints", "<f4", 4)
        self._desc = col("descriptors", "u1", DESCRIPTOR_BYTES)

    def __enter__(self) -> CaseLinker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for c in (self._items, self._owner, self._kps, self._desc):
            c.close()

    def add(self, items: Sequence[CaseItem]) -> None:
        for item in items:
            if item.features:
                f = _features([item.features])[0]
                if len(f):
                    k = self._items.rows
                    self._items.append(np.array([[item.ordinal, f.width, f.height, len(f)]]))
                    self._owner.append(np.full((len(f), 1), k))
                    self._kps.append(f.keypoints)
                    self._desc.append(f.descriptors)

    def pairs(self, known_bad: Collection[int], params: VerifyParams = DEFAULT_PARAMS
              ) -> list[tuple[int, int, Transform]]:
        """Verified links (ordinal a, known-bad ordinal b, transform from a to b): every image
        not in `known_bad` matched against the known-bad images' descriptors."""
        if self._items.rows == 0 or not known_bad:
            return []
        items = self._items.array()
        ordinals = np.asarray(items[:, 0])
        counts = np.asarray(items[:, 3])
        starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
        anchor = np.isin(ordinals, np.fromiter(known_bad, dtype=np.int64))
        refs_at = np.flatnonzero(anchor)
        queries_at = np.flatnonzero(~anchor)
        if refs_at.size == 0 or queries_at.size == 0:
            return []
        # a known-bad image is indexed by its first MAX_KEYPOINTS keypoints (spread over the
        # image, as a bank item's are); the queries use all of theirs
        kept = np.minimum(counts, MAX_KEYPOINTS)
        rows = np.concatenate([np.arange(starts[k], starts[k] + kept[k]) for k in refs_at])
        kps, desc = self._kps.array(), self._desc.array()
        # the known-bad images' descriptors are copied into memory (the index's codes); the
        # queries are read from the mapped files a batch at a time
        refs = FeatureSet(descriptor_index(np.ascontiguousarray(desc[rows])),
                          np.repeat(np.arange(refs_at.size, dtype=np.int64), kept[refs_at]),
                          np.ascontiguousarray(kps[rows]), np.asarray(items[refs_at, 1:3]))
        queries = _Spilled(queries_at, items, starts, kps, desc)
        matches = match_features(queries, refs, params)
        return [(int(ordinals[queries_at[m.query]]), int(ordinals[refs_at[m.item]]),
                 m.transform) for m in matches]


def merge_links(groups: Sequence[Sequence[int]], pairs: Sequence[tuple[int, int, Transform]],
                bad: set[int], good: set[int], suggested: set[int]
                ) -> tuple[list[list[int]], dict[int, tuple[int, Transform]]]:
    """Clusters after linking, and the links that make suggestions.

    `groups` are the PDQ clusters (ordinals); a link joins the clusters of its two ends.
    An unknown item (neither in `bad` nor `good`) without a PDQ suggestion (`suggested`)
    linked directly to a known-bad one is suggested by its strongest such link (most
    inliers), with the transform read from the unknown item's side. Returns the merged
    clusters ordered by first member, and ordinal -> (known-bad ordinal, transform).
    """
    parent: dict[int, int] = {}

    def root(a: int) -> int:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def join(a: int, b: int) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for g in groups:
        for k in g[1:]:
            join(int(g[0]), int(k))
        if len(g):
            root(int(g[0]))
    best: dict[int, tuple[int, Transform]] = {}
    for a, b, t in pairs:
        join(a, b)
        for unknown, known, tr in ((a, b, t), (b, a, t.inverse())):
            if (known in bad and unknown not in bad and unknown not in good
                    and unknown not in suggested
                    and (unknown not in best or tr.inliers > best[unknown][1].inliers)):
                best[unknown] = (known, tr)
    merged: dict[int, list[int]] = {}
    for k in parent:
        merged.setdefault(root(k), []).append(k)
    clusters = sorted((sorted(m) for m in merged.values() if len(m) > 1), key=lambda m: m[0])
    return clusters, dict(sorted(best.items()))


def link_reason(lead: Reason, via: str, t: Transform) -> Reason:
    """The `cluster` reason of an unknown item linked to the known-bad item at `via` (whose
    strongest bank hit is `lead`), explained by the verified transform."""
    return Reason(kind="cluster", algo="orb", bank=lead.bank, entry=lead.entry,
                  distance=round(t.mean_distance), category=lead.category,
                  vic_category=lead.vic_category, series=lead.series, via=via,
                  transform=t, ref="known-bad file")
