"""Matching: exact digests, PDQ near and dihedral matches at the inclusive radius, quality
floors on both sides, and vPDQ-style video matching, against a small in-memory bank."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hashing.codec import pack
from hashing.types import FrameHash, HashRecord, VariantHash
from index.bank_types import BankEntry
from index.hamming import HammingIndex
from triage.match import Reason, is_known_good, known_bad, match_records
from triage.policy import Policy

RNG = np.random.default_rng(11)


def rand_pdq() -> str:
    return RNG.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def flip(hex_: str, n: int, offset: int = 0) -> str:
    """Flip `n` distinct bits (starting at bit `offset`): distance exactly n."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(hex_), np.uint8)).copy()
    bits[offset:offset + n] ^= 1
    return np.packbits(bits).tobytes().hex()


def entry(bank: str, eid: str, algo: str, h: str, quality: int | None = 90,
          category: str | None = "1", good: bool = False) -> BankEntry:
    return BankEntry(bank=bank, entry_id=eid, algorithm=algo, hash=h, quality=quality,
                     category=category, vic_category=int(category) if category else None,
                     caid_category=None, series="S1", known_good=good)


class MemoryBanks:
    """The Banks protocol over a list of entries, with the real HammingIndex."""

    def __init__(self, entries: Sequence[BankEntry]) -> None:
        self.entries = list(entries)

    def lookup_digest(self, algo: str, hex_digest: str) -> list[BankEntry]:
        return [e for e in self.entries if e.algorithm == algo and e.hash == hex_digest]

    def perceptual(self, algo: str):  # type: ignore[no-untyped-def]
        rows = [e for e in self.entries if e.algorithm == algo]
        index = HammingIndex(pack(algo, [e.hash for e in rows]))
        return index, [[e] for e in rows]


def rec(path: str, pdq: str | None = None, quality: int = 90, md5: str | None = None,
        dihedral: tuple[str, ...] | None = None,
        frames: tuple[FrameHash, ...] | None = None) -> HashRecord:
    hashes = {k: v for k, v in (("pdq", pdq), ("md5", md5)) if v}
    return HashRecord(path=path, status="hashed", media_type="image/jpeg", hashes=hashes,
                      pdq_quality=quality if pdq else None, pdq_dihedral=dihedral,
                      pdq_frames=frames)


def test_exact_near_radius_and_known_good() -> None:
    base = rand_pdq()
    md5_bad, md5_good = "a" * 32, "b" * 32
    banks = MemoryBanks([
        entry("bad", "E1", "pdq", base), entry("bad", "E2", "md5", md5_bad),
        entry("nsrl", "G1", "md5", md5_good, category=None, good=True),
    ])
    records = [
        rec("/exact", md5=md5_bad),
        rec("/at-radius", pdq=flip(base, 31)),
        rec("/past-radius", pdq=flip(base, 32)),
        rec("/good", md5=md5_good),
        rec("/low-quality", pdq=flip(base, 2), quality=49),
        rec("/low-quality-far", pdq=flip(base, 9), quality=49),
    ]
    out = match_records(records, banks, Policy(dihedral=False))
    # the code is normalised to its Project VIC label and severity
    assert out[0] == (Reason("exact", "md5", "bad", "E2", 0, "child abuse material",
                             vic_category=1, series="S1", severity=10),)
    assert [(r.kind, r.entry, r.distance) for r in out[1]] == [("near", "E1", 31)]
    assert out[2] == ()
    assert is_known_good(out[3]) and not known_bad(out[3])
    # under the quality floor: only within the low-quality radius, as a low-confidence reason
    assert [(r.kind, r.entry, r.distance) for r in out[4]] == [("low_quality", "E1", 2)]
    assert out[5] == ()
    never = match_records(records, banks, Policy(dihedral=False, low_quality_radius=-1))
    assert never[4] == ()


def test_bank_side_quality_floor() -> None:
    base = rand_pdq()
    banks = MemoryBanks([entry("bad", "low", "pdq", base, quality=30),
                         entry("bad", "unknown-q", "pdq", flip(base, 1), quality=None)])
    out = match_records([rec("/q", pdq=base)], banks, Policy())
    assert [(r.entry, r.kind) for r in out[0]] == [("unknown-q", "near"), ("low", "low_quality")]
    out = match_records([rec("/q", pdq=flip(base, 9))], banks, Policy())
    assert [r.entry for r in out[0]] == ["unknown-q"]


def test_dihedral_reports_the_variant() -> None:
    base = rand_pdq()
    banks = MemoryBanks([entry("bad", "E1", "pdq", base)])
    variants = tuple(rand_pdq() for _ in range(8))
    turned = variants[:2] + (flip(base, 3),) + variants[3:]  # rotate180 of the file is near
    record = rec("/rot", pdq=turned[0], dihedral=turned)
    (reason,) = match_records([record], banks, Policy())[0]
    assert (reason.kind, reason.variant, reason.distance) == ("dihedral", "rotate180", 3)
    # without dihedral queries the rotated copy is missed
    assert match_records([record], banks, Policy(dihedral=False))[0] == ()


def _frames(hexes: Sequence[str], quality: int = 90) -> tuple[FrameHash, ...]:
    return tuple(FrameHash(float(t), h, quality) for t, h in enumerate(hexes))


def test_video_thresholds_follow_vpdq() -> None:
    bank_frames = [rand_pdq() for _ in range(5)]
    banks = MemoryBanks([entry("bad", "V1", "pdq", h) for h in bank_frames])
    four = _frames([flip(h, 4) for h in bank_frames[:4]] + [rand_pdq()])  # 80% of frames
    three = _frames([flip(h, 4) for h in bank_frames[:3]] + [rand_pdq(), rand_pdq()])
    out = match_records([rec("/v4", frames=four), rec("/v3", frames=three)], banks, Policy())
    (r,) = out[0]
    assert (r.kind, r.entry, r.query_frames_pct, r.bank_frames_pct) == ("video", "V1", 80.0, 80.0)
    assert out[1] == ()
    relaxed = match_records([rec("/v3", frames=three)], banks, Policy(video_query_pct=60.0))
    assert relaxed[0][0].query_frames_pct == 60.0
    # low-quality frames are dropped from the query before the percentage is taken
    padded = four + _frames([rand_pdq()] * 3, quality=10)
    assert match_records([rec("/vq", frames=padded)], banks, Policy())[0][0].query_frames_pct == 80.0


def test_one_video_frame_matching_a_still_counts() -> None:
    still = rand_pdq()
    banks = MemoryBanks([entry("bad", "IMG", "pdq", still)])
    video = _frames([rand_pdq() for _ in range(9)] + [flip(still, 5)])
    (r,) = match_records([rec("/clip", frames=video)], banks, Policy())[0]
    assert (r.kind, r.entry, r.distance, r.query_frames_pct) == ("video", "IMG", 5, 10.0)


def test_reasons_name_bank_entry_algo_distance() -> None:
    base = rand_pdq()
    banks = MemoryBanks([entry("b1", "E1", "pdq", base), entry("b2", "E9", "pdq", flip(base, 8))])
    reasons = match_records([rec("/x", pdq=flip(base, 2))], banks, Policy())[0]
    assert [(r.bank, r.entry, r.algo, r.distance) for r in reasons] == [
        ("b1", "E1", "pdq", 2), ("b2", "E9", "pdq", 6)]
    d = reasons[0].to_dict()
    assert {"kind", "algo", "bank", "entry", "distance", "category"} <= set(d)


def test_canonical_variant_reason_names_the_variant() -> None:
    base = rand_pdq()
    banks = MemoryBanks([entry("bad", "E1", "pdq", base)])
    trimmed = VariantHash("trim", "trimmed 40% top/bottom", {"pdq": flip(base, 4)}, 90)
    record = HashRecord(path="/boxed", status="hashed", media_type="image/png",
                        hashes={"pdq": rand_pdq()}, pdq_quality=90, variants=(trimmed,))
    (reason,) = match_records([record], banks, Policy())[0]
    assert (reason.kind, reason.algo, reason.variant, reason.distance) == (
        "variant", "pdq", "trimmed 40% top/bottom", 4)
    assert reason.to_dict()["variant"] == "trimmed 40% top/bottom"
    assert match_records([record], banks, Policy(variants=False))[0] == ()
    # a variant under the quality floor is held to the low-quality radius
    dull = VariantHash("trim", "trimmed 40% top/bottom", {"pdq": flip(base, 4)}, 20)
    low = HashRecord(path="/dull", status="hashed", media_type="image/png",
                     hashes={"pdq": rand_pdq()}, pdq_quality=90, variants=(dull,))
    assert [r.kind for r in match_records([low], banks, Policy())[0]] == ["low_quality"]


def test_one_item_held_as_several_hashes_is_one_match_with_a_reason_each() -> None:
    """A bank entry holding PDQ, pHash and MD5 of one item: one record, three reasons naming
    the same entry, one per algorithm; a pHash-only item matches without any PDQ."""
    base, ph = rand_pdq(), "c3a1f0e07c1f8e3d"
    md5 = "d" * 32
    banks = MemoryBanks([entry("bad", "ITEM", "pdq", base), entry("bad", "ITEM", "phash", ph),
                         entry("bad", "ITEM", "md5", md5),
                         entry("bad", "PONLY", "phash", "0f0f0f0f0f0f0f0f")])
    record = HashRecord(path="/x", status="hashed", media_type="image/png",
                        hashes={"pdq": flip(base, 3), "phash": "c3a1f0e07c1f8e3c", "md5": md5},
                        pdq_quality=90)
    only = HashRecord(path="/y", status="hashed", media_type="image/png",
                      hashes={"phash": "0f0f0f0f0f0f0f0e"})
    out = match_records([record, only], banks, Policy())
    assert sorted((r.algo, r.entry, r.distance) for r in out[0]) == [
        ("md5", "ITEM", 0), ("pdq", "ITEM", 3), ("phash", "ITEM", 1)]
    assert {r.entry for r in out[0]} == {"ITEM"}
    assert [(r.kind, r.algo, r.entry) for r in out[1]] == [("near", "phash", "PONLY")]
