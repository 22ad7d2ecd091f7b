"""A default scan hashes what the banks hold and matches what query-side variants recover:
a pHash-only bank matches, a letterboxed copy of a listed image matches through its trimmed
variant, and a policy radius for an algorithm no bank holds is reported. The explain trail
(queue.jsonl, queue.csv, report.html) names the algorithm and the variant."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
import pytest
from PIL import Image

from hashing.algorithms.pdq import pdq_from_rgb
from index.bank_import import ImportOptions
from index.banks import BankStore
from synthetic_fixtures.edits import EDITS, edit_rng
from synthetic_fixtures.photos import make_photo
from triage.pipeline import ScanConfig, run_scan


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("scanmatch")
    ev = root / "evidence"
    ev.mkdir()
    rng = np.random.default_rng(1616)
    photos = [Image.fromarray(make_photo(rng, 320, 240)) for _ in range(3)]
    (ev / "phash_copy.jpg").write_bytes(_jpeg(photos[0]))
    boxed = EDITS["letterbox"](photos[1], edit_rng(16, 1, "letterbox"))
    (ev / "boxed.png").write_bytes(_png(boxed))
    (ev / "other.png").write_bytes(_png(photos[2]))
    phash_bank = root / "phash.csv"
    with open(phash_bank, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "phash", "category"])
        w.writerow(["P-1", str(imagehash.phash(photos[0])), "2"])
    pdq_bank = root / "pdq.csv"
    with open(pdq_bank, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "pdq", "category"])
        w.writerow(["Q-1", pdq_from_rgb(np.asarray(photos[1])).hash, "1"])
    with BankStore(root / "store") as store:
        store.import_file(str(phash_bank), ImportOptions(bank="ph", format="csv", scheme="vic"))
        store.import_file(str(pdq_bank), ImportOptions(bank="pq", format="csv", scheme="vic"))
    policy = root / "policy.toml"
    policy.write_text("[match]\nradius = { pdq = 31, phash = 8, whash = 5 }\n")
    result = run_scan(ScanConfig(evidence=(ev,), case_dir=root / "case",
                                 store_dir=root / "store", workers=0, policy_path=policy))
    out = root / "case"
    return {
        "result": result,
        "queue": {Path(q["path"]).name: q
                  for q in map(json.loads, (out / "queue.jsonl").read_text().splitlines())},
        "csv": {Path(r["path"]).name: r
                for r in csv.DictReader(io.StringIO((out / "queue.csv").read_text()))},
        "manifest": {Path(d["path"]).name: d
                     for d in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())},
        "html": (out / "report.html").read_text(),
        "summary": json.loads((out / "summary.json").read_text()),
    }


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def test_a_phash_only_bank_matches_in_a_default_scan(case: dict[str, Any]) -> None:
    reasons = case["queue"]["phash_copy.jpg"]["reasons"]
    assert [(r["kind"], r["algo"], r["bank"], r["entry"]) for r in reasons] == [
        ("near", "phash", "ph", "P-1")]
    # the scan hashed pHash because a bank holds it, and no algorithm no bank holds
    row = case["manifest"]["phash_copy.jpg"]
    assert "phash" in row and "pdq" in row
    assert not {"dhash", "ahash", "whash"} & set(row)


def test_letterboxed_copy_matches_through_its_trimmed_variant(case: dict[str, Any]) -> None:
    (reason,) = case["queue"]["boxed.png"]["reasons"]
    assert (reason["kind"], reason["algo"], reason["entry"]) == ("variant", "pdq", "Q-1")
    assert reason["variant"] == "trimmed 29% top/bottom"
    assert reason["distance"] <= 31
    assert case["manifest"]["boxed.png"]["variants"][0]["detail"] == reason["variant"]
    assert "variants" not in case["manifest"]["other.png"]
    assert case["queue"]["other.png"]["reasons"] == []


def test_explain_trail_names_algorithm_and_variant(case: dict[str, Any]) -> None:
    cell = json.loads(case["csv"]["boxed.png"]["reasons"])
    assert cell[0]["variant"] == "trimmed 29% top/bottom" and cell[0]["algo"] == "pdq"
    assert json.loads(case["csv"]["phash_copy.jpg"]["reasons"])[0]["algo"] == "phash"
    html = case["html"]  # the report renders its rows from embedded JSON
    assert '"kind":"variant"' in html and "trimmed 29% top/bottom" in html
    assert '"algo":"phash"' in html


def test_policy_radius_for_an_unheld_algorithm_is_reported(case: dict[str, Any]) -> None:
    matching = case["summary"]["matching"]
    assert matching["algorithms"] == ["pdq", "phash"]
    assert matching["unused_policy_radius"] == ["whash"]
