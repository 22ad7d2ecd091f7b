"""Local features in a scan: a media bank finds crops of its items, in-case linking puts
cropped and captioned copies of a known-bad file in tier 1 with the verified transform as
the reason, distinct photos never link, and no local feature reaches any case output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hashing.algorithms.local_features import LocalFeatures
from index.bank_import import ImportOptions
from index.banks import BankStore
from synthetic_fixtures.edits import EDITS, edit_rng
from synthetic_fixtures.photos import make_photo
from triage.casedb import CaseDB
from triage.media_import import MediaImportOptions, import_media
from triage.pipeline import OUTPUT_NAMES, ScanConfig, run_scan

SEED = 29
N_DISTINCT = 40
ONE_ITEM_BUDGET = 2 << 10  # derive.chunk_rows: one item per chunk


def _photo(k: int, w: int = 480, h: int = 360) -> Image.Image:
    return Image.fromarray(make_photo(np.random.default_rng((SEED, k)), w, h))


def _edit(img: Image.Image, name: str, k: int) -> Image.Image:
    return EDITS[name](img, edit_rng(SEED, k, name))


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("link")
    ev = root / "evidence"
    ev.mkdir()
    bad = _photo(0)
    bad.save(ev / "known.jpg", quality=90)
    _edit(bad, "crop_20", 0).save(ev / "crop.jpg", quality=80)
    _edit(bad, "text_overlay", 0).save(ev / "captioned.png")
    _edit(bad, "screenshot", 0).save(ev / "shot.png")
    for k in range(1, N_DISTINCT + 1):
        _photo(k, 400 + 8 * (k % 5), 300).save(ev / f"other{k:03d}.jpg", quality=85)
    # a media bank of the unit's own holdings: one of them is cropped in the evidence
    held = root / "holdings"
    (held / "2019").mkdir(parents=True)
    ref = _photo(1000)
    ref.save(held / "2019" / "ref.jpg", quality=92)
    _photo(1001).save(held / "2019" / "other.jpg", quality=92)
    _edit(ref, "crop_10", 1000).save(ev / "from_holdings.jpg", quality=85)
    store = root / "store"
    md5 = __import__("hashlib").md5((ev / "known.jpg").read_bytes()).hexdigest()
    (root / "list.txt").write_text(md5 + "\n")
    with BankStore(store) as s:
        s.import_file(str(root / "list.txt"),
                      ImportOptions(bank="partner", format="hashlist", algo="md5",
                                    category="A"))
        import_media(s, str(held), MediaImportOptions(bank="holdings", category="B",
                                                     workers=0))
    result = run_scan(ScanConfig(evidence=(ev,), case_dir=root / "case", store_dir=store,
                                 workers=0))
    queue = [json.loads(line) for line in (root / "case" / "queue.jsonl").open()]
    return {"root": root, "result": result, "queue": {Path(r["path"]).name: r for r in queue}}


def test_copies_of_known_bad_are_tier_1_with_the_transform(case: dict[str, object]) -> None:
    queue = case["queue"]
    assert isinstance(queue, dict)
    assert queue["known.jpg"]["reasons"][0]["kind"] == "exact"
    for name, want in (("crop.jpg", "crop "), ("captioned.png", "whole known-bad file"),
                       ("shot.png", "known-bad file fills")):
        row = queue[name]
        assert row["tier"] == 1, (name, row)
        lead = next(r for r in row["reasons"] if r["kind"] == "cluster")
        assert lead["algo"] == "orb" and lead["via"].endswith("known.jpg")
        assert lead["bank"] == "partner" and lead["category"] == "A"
        assert lead["explanation"].startswith(want), lead["explanation"]
        assert lead["transform"]["inliers"] >= 12
        assert row["cluster"] == queue["known.jpg"]["cluster"] is not None
    crop = next(r for r in queue["crop.jpg"]["reasons"] if r["kind"] == "cluster")
    assert 55 < crop["transform"]["ref_covered_pct"] < 75  # crop_20 keeps 80% x 80%


def test_media_bank_finds_a_crop_of_its_item(case: dict[str, object]) -> None:
    queue = case["queue"]
    assert isinstance(queue, dict)
    row = queue["from_holdings.jpg"]
    local = [r for r in row["reasons"] if r["kind"] == "local"]
    assert local and local[0]["bank"] == "holdings" and local[0]["entry"] == "2019/ref.jpg"
    assert local[0]["category"] == "B" and local[0]["explanation"].startswith("crop 8")
    assert row["tier"] != 1 and row["category"] == "B"


def test_distinct_photos_never_link(case: dict[str, object]) -> None:
    queue = case["queue"]
    assert isinstance(queue, dict)
    others = [r for n, r in queue.items() if n.startswith("other")]
    assert len(others) == N_DISTINCT
    for r in others:
        assert r["cluster"] is None and r["reasons"] == [], r


def test_no_local_feature_in_any_output(case: dict[str, object]) -> None:
    root = case["root"]
    assert isinstance(root, Path)
    with CaseDB(root / "case" / "case.sqlite") as db:
        blobs = [b for b in db.features(1) if b]
    assert len(blobs) >= N_DISTINCT
    needles: set[bytes] = set()
    for blob in blobs:
        f = LocalFeatures.from_bytes(blob)
        needles.add(f.fingerprint().encode())
        for d in f.descriptors[:20]:
            needles.update((d.tobytes(), d.tobytes().hex().encode()))
    outputs = [root / "case" / n for n in OUTPUT_NAMES] + [root / "case" / "audit.jsonl"]
    for path in outputs:
        data = path.read_bytes()
        assert not any(n in data for n in needles), path.name
    # the case database holds them only as hex text, never raw bytes
    raw = (root / "case" / "case.sqlite").read_bytes()
    assert not any(f.descriptors[0].tobytes() in raw for f in map(LocalFeatures.from_bytes,
                                                                  blobs[:5]))


def test_many_distinct_photos_never_link() -> None:
    """Half of 120 distinct photos taken as known-bad, the other half matched against them:
    3,600 image pairs, not one verified link (and the copies among them still link)."""
    from hashing.algorithms.local_features import describe_rgb
    from triage.items import CaseItem
    from triage.local_match import CaseLinker

    n = 120
    imgs = [_photo(5000 + k, 320 + 16 * (k % 9), 240 + 8 * (k % 7)) for k in range(n)]
    imgs.append(_edit(imgs[0], "crop_20", 0))  # one real copy, as a control
    items = [CaseItem.from_row(k, {"path": f"f{k}", "status": "hashed"},
                               describe_rgb(np.asarray(im)).to_bytes())
             for k, im in enumerate(imgs)]
    with CaseLinker() as linker:
        linker.add(items)
        pairs = linker.pairs(set(range(0, n, 2)))
    assert [(a, b) for a, b, _ in pairs] == [(n, 0)]


def test_media_matches_land_on_their_items_in_any_chunk(case: dict[str, object]) -> None:
    """A budget of one item per chunk: the media bank's reasons (sub-window PDQ and local
    features) are found for the item that holds them however far into the case it is, and the
    outputs equal the one-chunk scan's (they once were looked up by ordinal in the chunk)."""
    root = case["root"]
    assert isinstance(root, Path)
    tiny = root / "tiny-case"
    run_scan(ScanConfig(evidence=(root / "evidence",), case_dir=tiny, store_dir=root / "store",
                        workers=0, memory_budget=ONE_ITEM_BUDGET))
    queue = {Path(r["path"]).name: r for r in map(json.loads, (tiny / "queue.jsonl").open())}
    held = [r for r in queue["from_holdings.jpg"]["reasons"] if r["bank"] == "holdings"]
    assert held and {r["entry"] for r in held} == {"2019/ref.jpg"}
    for name in ("queue.jsonl", "queue.csv"):
        assert (tiny / name).read_bytes() == (root / "case" / name).read_bytes(), name


def test_chunks_that_carry_local_features_are_sized_for_them(
        case: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    """An image's features (up to 1,000 keypoints of 48 bytes, read back and decoded) are
    ~12 times what the chunk size assumed of an item: the match stage's chunks are sized for
    them, and the outputs do not change."""
    from hashing.algorithms.local_features import describe_query_rgb
    from triage import derive

    f = describe_query_rgb(make_photo(np.random.default_rng((SEED, 7)), 1024, 768))
    assert len(f) > 900
    blob = f.to_bytes()
    back = LocalFeatures.from_bytes(blob)
    assert len(blob) + back.keypoints.nbytes + back.descriptors.nbytes <= derive.FEATURE_ITEM_BYTES
    budget = 40 * (derive.ITEM_BYTES + derive.FEATURE_ITEM_BYTES)  # 10 such items a chunk
    assert derive.chunk_rows(budget, features=True) == 10
    assert derive.chunk_rows(budget) > 100
    seen: list[tuple[bool, int]] = []
    chunks = derive._chunks

    def spy(db: CaseDB, run: int, size: int, features: bool = False):  # type: ignore[no-untyped-def]
        for chunk in chunks(db, run, size, features):
            seen.append((features, len(chunk)))
            yield chunk

    monkeypatch.setattr(derive, "_chunks", spy)
    root = case["root"]
    assert isinstance(root, Path)
    out = root / "budget-case"
    run_scan(ScanConfig(evidence=(root / "evidence",), case_dir=out, store_dir=root / "store",
                        workers=0, memory_budget=budget))
    with_features = [n for features, n in seen if features]
    assert with_features and max(with_features) == 10
    assert max(n for features, n in seen if not features) > 10  # scoring: the whole case
    for name in ("queue.jsonl", "queue.csv"):
        assert (out / name).read_bytes() == (root / "case" / name).read_bytes(), name
