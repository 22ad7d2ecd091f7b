"""Weak hash matches to media-bank items are confirmed or refuted by the items' local features.

pHash is 64 bits: at distances 7-8 distinct photos start to collide among 10^4 images (the
media_scale benchmark's 10^4-image case had 3 such false positives, the pairs pinned below).
Past `Policy.confirm_radius` a near match to a media-bank item stands only if another
algorithm matched the same item, or the item's local features verify the pair (which adds
the transform as a reason); what cannot be checked stands as matched.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hashing.algorithms.imagehash_family import imagehash_hashes
from hashing.algorithms.local_features import describe_query_rgb
from index.banks import BankStore
from index.media_bank import MediaMatcher
from synthetic_fixtures.edits import EDITS, edit_rng
from synthetic_fixtures.photos import make_photo
from triage.items import CaseItem
from triage.local_match import media_match
from triage.match import Reason
from triage.media_import import MediaImportOptions, import_media
from triage.pipeline import ScanConfig, run_scan
from triage.policy import Policy, PolicyError, policy_from_mapping

SEED = 20261202  # benchmarks/media_scale's seed: these are its photos
# (case photo key, bank original key, both pHashes): distinct photos at pHash distance 8
LOOKALIKES = (
    ((1, 5604), (0, 51), "b5b65b4925b4b612", "b5b65a482db5d682"),
    ((1, 8967), (0, 114), "c0d03e653b3c663b", "c0d062673b2d663f"),
    ((1, 9453), (0, 401), "cec59533133a6e8c", "cec1873b33386acc"),
)


def _jpeg(key: tuple[int, int]) -> bytes:
    rng = np.random.default_rng((SEED, *key))
    long = int(rng.integers(320, 401))
    w, h = (long, long * 3 // 4) if rng.random() < 0.75 else (long * 3 // 4, long)
    buf = io.BytesIO()
    Image.fromarray(make_photo(rng, w, h)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _rgb(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("confirm")
    held, ev = root / "holdings", root / "evidence"
    held.mkdir()
    ev.mkdir()
    for case_key, bank_key, _, _ in LOOKALIKES:
        (held / f"b{bank_key[1]}.jpg").write_bytes(_jpeg(bank_key))
        (ev / f"c{case_key[1]}.jpg").write_bytes(_jpeg(case_key))
    store = root / "store"
    with BankStore(store) as s:
        import_media(s, str(held), MediaImportOptions(bank="holdings", category="A", workers=0))
    return {"root": root, "evidence": ev, "store": store}


def test_the_pinned_pairs_are_distinct_photos_at_phash_distance_8() -> None:
    for case_key, bank_key, case_hash, bank_hash in LOOKALIKES:
        got = [imagehash_hashes(_rgb(_jpeg(k)), ["phash"])["phash"] for k in (case_key, bank_key)]
        assert got == [case_hash, bank_hash]
        assert bin(int(case_hash, 16) ^ int(bank_hash, 16)).count("1") == 8


def _scan(setup: dict[str, Path], name: str, policy: str = "") -> tuple[dict, dict]:
    case = setup["root"] / name
    policy_path = None
    if policy:
        policy_path = setup["root"] / f"{name}.toml"
        policy_path.write_text(policy)
    run_scan(ScanConfig(evidence=(setup["evidence"],), case_dir=case, store_dir=setup["store"],
                        workers=0, policy_path=policy_path))
    queue = {Path(r["path"]).name: r for r in
             map(json.loads, (case / "queue.jsonl").read_text().splitlines())}
    return queue, json.loads((case / "summary.json").read_text())


def test_a_scan_refutes_the_lookalikes_and_counts_them(setup: dict[str, Path]) -> None:
    queue, summary = _scan(setup, "default")
    assert [queue[f"c{c[1]}.jpg"]["reasons"] for c, _, _, _ in LOOKALIKES] == [[], [], []]
    assert summary["counts"]["refuted_weak_matches"] == 3
    assert summary["counts"]["tier"]["4"] == 3  # unmatched, not hidden
    report = (setup["root"] / "default" / "report.html").read_text()
    assert '<td class="n" id="total-refuted">3</td>' in report
    # without confirmation (a radius no match is beyond) the same scan reports them: the
    # pHash matches at 8 exist and only the confirmation removed them
    queue, summary = _scan(setup, "unconfirmed", "[match]\nconfirm_radius = { phash = 8 }\n")
    for case_key, bank_key, _, _ in LOOKALIKES:
        reasons = queue[f"c{case_key[1]}.jpg"]["reasons"]
        assert [(r["kind"], r["algo"], r["entry"], r["distance"]) for r in reasons] == [
            ("near", "phash", f"b{bank_key[1]}.jpg", 8)]
    assert summary["counts"]["refuted_weak_matches"] == 0


def _item(ordinal: int, img: Image.Image, *reasons: Reason) -> CaseItem:
    item = CaseItem.from_row(ordinal, {"path": f"x{ordinal}.jpg", "status": "hashed"},
                             describe_query_rgb(np.asarray(img)).to_bytes())
    return replace(item, reasons=reasons)


def _near(entry: str, distance: int, algo: str = "phash", kind: str = "near",
          bank: str = "holdings") -> Reason:
    return Reason(kind=kind, algo=algo, bank=bank, entry=entry, distance=distance,
                  category="A")


def test_which_weak_matches_stand(setup: dict[str, Path]) -> None:
    original = _rgb(_jpeg((0, 51)))
    lookalike = _rgb(_jpeg((1, 5604)))
    crop = EDITS["crop_5"](original, edit_rng(SEED, 51, "crop_5"))
    items = [
        _item(0, lookalike, _near("b51.jpg", 8)),  # refuted
        _item(1, lookalike, _near("b51.jpg", 6)),  # within the confirm radius
        _item(2, lookalike, _near("b51.jpg", 8, kind="dihedral")),  # mirrored: not compared
        _item(3, lookalike, _near("x", 8, bank="partner")),  # no media item to compare
        _item(4, lookalike, _near("b51.jpg", 8), _near("b51.jpg", 20, algo="pdq")),
        _item(5, lookalike, _near("b51.jpg", 8), _near("b51.jpg", 8, algo="dhash")),
        _item(6, lookalike, _near("b51.jpg", 8), _near("b51.jpg", 2, kind="dihedral")),
        _item(7, crop, _near("b51.jpg", 8)),  # a real crop: verified, the transform added
    ]
    items.append(replace(items[0], ordinal=8, features=None))  # no features: cannot check
    with BankStore(setup["store"]) as s:
        media = MediaMatcher(s.db_path, s.dir)
        try:
            got = media_match(items, media, Policy(confirm_radius={"phash": 6, "dhash": 6}))
        finally:
            media.close()
    kinds = [[(r.kind, r.algo, r.distance) for r in i.reasons] for i in got.items]
    assert kinds[0] == []
    assert kinds[1] == [("near", "phash", 6)]
    assert kinds[2] == [("dihedral", "phash", 8)]
    assert kinds[3] == [("near", "phash", 8)]
    assert sorted(kinds[4]) == [("near", "pdq", 20), ("near", "phash", 8)]
    assert kinds[5] == []  # two weak hashes do not confirm each other
    assert sorted(kinds[6]) == [("dihedral", "phash", 2), ("near", "phash", 8)]
    assert ("near", "phash", 8) in kinds[7]
    local = [r for r in got.items[7].reasons if r.kind == "local"]
    assert len(local) == 1 and local[0].entry == "b51.jpg" and local[0].transform is not None
    assert local[0].transform.inliers >= 10
    assert kinds[8] == [("near", "phash", 8)]
    assert got.refuted == 3  # item 0's match and both of item 5's


def test_policy_confirm_radius() -> None:
    assert Policy().confirm_radius == {"phash": 6}
    p = policy_from_mapping({"match": {"confirm_radius": {"phash": 8, "dhash": 5}}})
    assert p.confirm_radius == {"phash": 8, "dhash": 5}
    assert p.to_dict()["match"]["confirm_radius"] == {"dhash": 5, "phash": 8}
    for bad, key in (({"md5": 3}, "match.confirm_radius"), ([1], "match.confirm_radius"),
                     ({"phash": 65}, "match.confirm_radius.phash")):
        with pytest.raises(PolicyError) as e:
            policy_from_mapping({"match": {"confirm_radius": bad}})
        assert e.value.key == key
