"""When a scan computes local features, and how in-case linking holds them.

Local features are computed only when in-case linking is on (policy `[cluster] local_links`,
`triage scan --local-links/--no-local-links`) or an enabled media bank holds local features;
the linker spills every descriptor to the case directory and matches the other images against
the known-bad ones only, so a spilled linker and an in-memory one give the same links, and a
scan at a tiny memory budget the same outputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from hashing.algorithms.local_features import describe_query_rgb, describe_rgb
from index.bank_import import ImportOptions
from index.banks import BankStore
from synthetic_fixtures.edits import EDITS, edit_rng
from synthetic_fixtures.photos import make_photo
from triage.casedb import CaseDB
from triage.items import CaseItem
from triage.local_match import CaseLinker
from triage.media_import import MediaImportOptions, import_media
from triage.pipeline import ScanConfig, run_scan
from triage.policy import PolicyError, policy_from_mapping

SEED = 31
TINY_BUDGET = 64 << 10  # 2 items per chunk


def _photo(k: int, w: int = 400, h: int = 300) -> Image.Image:
    return Image.fromarray(make_photo(np.random.default_rng((SEED, k)), w, h))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gating")
    ev = root / "evidence"
    ev.mkdir()
    bad = _photo(0)
    bad.save(ev / "known.jpg", quality=90)
    EDITS["crop_20"](bad, edit_rng(SEED, 0, "crop_20")).save(ev / "crop.jpg", quality=80)
    EDITS["caption_bar"](bad, edit_rng(SEED, 0, "caption_bar")).save(ev / "caption.png")
    for k in range(1, 7):
        _photo(k).save(ev / f"other{k}.jpg", quality=85)
    (root / "list.txt").write_text(hashlib.md5((ev / "known.jpg").read_bytes()).hexdigest()
                                   + "\n")
    store = root / "store"
    with BankStore(store) as s:
        s.import_file(str(root / "list.txt"), ImportOptions(bank="partner", format="hashlist",
                                                            algo="md5", category="A"))
    held = root / "holdings"
    held.mkdir()
    _photo(100).save(held / "ref.jpg", quality=92)
    media_store = root / "media_store"
    with BankStore(media_store) as s:
        s.import_file(str(root / "list.txt"), ImportOptions(bank="partner", format="hashlist",
                                                            algo="md5", category="A"))
        import_media(s, str(held), MediaImportOptions(bank="holdings", workers=0))
    return {"root": root, "evidence": ev, "store": store, "media_store": media_store}


def _scan(setup: dict[str, Path], name: str, **kw: object) -> tuple[dict[str, dict], list]:
    case = setup["root"] / name
    store = kw.pop("store", setup["store"])
    run_scan(ScanConfig(evidence=(setup["evidence"],), case_dir=case, store_dir=store,  # type: ignore[arg-type]
                        workers=0, **kw))  # type: ignore[arg-type]
    queue = {Path(r["path"]).name: r for r in
             map(json.loads, (case / "queue.jsonl").read_text().splitlines())}
    with CaseDB(case / "case.sqlite") as db:
        features = list(db.features(1))
    return queue, features


def test_linking_on_by_default_links_the_copies(setup: dict[str, Path]) -> None:
    queue, features = _scan(setup, "default")
    assert sum(f is not None for f in features) == 9  # every image described
    for name in ("crop.jpg", "caption.png"):
        lead = next(r for r in queue[name]["reasons"] if r["kind"] == "cluster")
        assert queue[name]["tier"] == 1 and lead["algo"] == "orb" and lead["transform"], name
    audit = [json.loads(x) for x in (setup["root"] / "default" / "audit.jsonl").open()]
    assert audit[-1]["policy"]["cluster"]["local_links"] is True
    assert "orb" in audit[-1]["hash_options"]["algorithms"]


def test_no_local_links_describes_nothing(setup: dict[str, Path]) -> None:
    queue, features = _scan(setup, "off", local_links=False)
    assert features == [None] * 9
    assert queue["crop.jpg"]["tier"] != 1
    assert not any(r["algo"] == "orb" for row in queue.values() for r in row["reasons"])
    audit = [json.loads(x) for x in (setup["root"] / "off" / "audit.jsonl").open()]
    assert audit[-1]["policy"]["cluster"]["local_links"] is False
    assert "orb" not in audit[-1]["hash_options"]["algorithms"]


def test_a_media_bank_with_local_features_still_needs_them(setup: dict[str, Path]) -> None:
    _, features = _scan(setup, "media_off", local_links=False, store=setup["media_store"])
    assert sum(f is not None for f in features) == 9


def test_cli_switch(setup: dict[str, Path]) -> None:
    case = setup["root"] / "cli_off"
    res = CliRunner().invoke(cli, ["scan", str(setup["evidence"]), "--case", str(case),
                                   "--store", str(setup["store"]), "--workers", "0",
                                   "--no-local-links"])
    assert res.exit_code == 0, res.output
    with CaseDB(case / "case.sqlite") as db:
        assert not any(db.features(1))


def test_policy_key() -> None:
    assert policy_from_mapping({"cluster": {"local_links": False}}).local_links is False
    assert policy_from_mapping({}).local_links is True
    with pytest.raises(PolicyError, match="local_links"):
        policy_from_mapping({"cluster": {"local_links": "no"}})


def test_tiny_budget_scan_gives_the_same_outputs(setup: dict[str, Path]) -> None:
    whole, _ = _scan(setup, "whole")
    tiny, _ = _scan(setup, "tiny", memory_budget=TINY_BUDGET)
    assert tiny == whole
    for name in ("queue.jsonl", "queue.csv"):  # the VICS export names the case
        assert ((setup["root"] / "tiny" / name).read_bytes()
                == (setup["root"] / "whole" / name).read_bytes()), name
    assert not list((setup["root"] / "tiny").glob(".links-*"))


def test_spilled_linker_equals_in_memory(tmp_path: Path) -> None:
    bad = _photo(0)
    imgs = [bad, EDITS["crop_10"](bad, edit_rng(SEED, 0, "crop_10")),
            EDITS["logo_overlay"](bad, edit_rng(SEED, 0, "logo_overlay"))]
    imgs += [_photo(k) for k in range(1, 9)]
    items = [CaseItem.from_row(n, {"path": f"f{n}", "status": "hashed"},
                               describe_rgb(np.asarray(im)).to_bytes())
             for n, im in enumerate(imgs)]
    with CaseLinker() as memory:
        memory.add(items)
        want = memory.pairs({0})
        assert memory.pairs(set()) == []
    with CaseLinker(tmp_path) as spilled:
        for k in range(0, len(items), 2):  # chunk by chunk, as the scan adds them
            spilled.add(items[k:k + 2])
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            ".links-descriptors.tmp", ".links-items.tmp", ".links-keypoints.tmp",
            ".links-owner.tmp"]
        got = spilled.pairs({0})
    assert got == want
    # every other image is matched against the known-bad one: its two copies link, read from
    # the copy's side (a 10% crop shows ~81% of it)
    assert [(a, b) for a, b, _ in got] == [(1, 0), (2, 0)]
    assert 70 < got[0][2].ref_covered_pct < 90 and got[0][2].query_covered_pct > 95
    assert not list(tmp_path.iterdir())  # closing removes the spill


def test_media_match_reasons_land_on_their_items_in_any_chunk(setup: dict[str, Path]) -> None:
    """A later chunk's ordinals do not start at 0 (a 10^4-image scan's second chunk raised
    IndexError): reasons are placed by position in the chunk."""
    from index.media_bank import MediaMatcher
    from triage.local_match import media_match
    from triage.policy import Policy

    ref = _photo(100)
    crop = EDITS["crop_20"](ref, edit_rng(SEED, 100, "crop_20"))
    items = [CaseItem.from_row(500 + k, {"path": f"x{k}.jpg", "status": "hashed"},
                               describe_query_rgb(np.asarray(img)).to_bytes())
             for k, img in enumerate((_photo(7), crop))]
    with BankStore(setup["media_store"]) as s:
        media = MediaMatcher(s.db_path, s.dir)
        try:
            out = media_match(items, media, Policy()).items
        finally:
            media.close()
    assert [i.ordinal for i in out] == [500, 501]
    assert out[0].reasons == ()
    assert [(r.kind, r.algo, r.entry) for r in out[1].reasons] == [("local", "orb", "ref.jpg")]
