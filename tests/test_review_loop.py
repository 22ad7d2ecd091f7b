"""The analyst's loop end to end: scan -> review import (two confirmed, one false positive,
one not-pertinent) -> regenerated outputs reflect them -> a second case holding copies of the
confirmed files matches them from the local bank -> its exported VICS re-imports with the same
items and categories. Plus the refusals: all-or-nothing with line numbers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from hashing.hasher import HashOptions, hash_path
from index.bank_import import ImportOptions
from index.banks import BankStore
from synthetic_fixtures.photos import make_photo
from triage.audit import verify_chain
from triage.pipeline import ScanConfig, run_scan


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def _queue(case: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(x) for x in (case / "queue.jsonl").read_text().splitlines()]
    return {Path(r["path"]).name: r for r in rows}


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("loop")
    rng = np.random.default_rng(77)
    ev = root / "ev1"
    ev.mkdir()
    names = ("known", "falsely", "near", "new1", "new2", "other")
    data = {n: _png(make_photo(rng, 256, 192)) for n in names}
    for n in names:
        (ev / f"{n}.png").write_bytes(data[n])
    h = {n: hash_path(str(ev / f"{n}.png"), HashOptions()).hashes for n in names}
    bank = root / "partner.csv"
    with open(bank, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "md5", "pdq", "category"])
        w.writerow(["P-1", h["known"]["md5"], "", "1"])
        w.writerow(["P-2", h["falsely"]["md5"], "", "2"])
        w.writerow(["P-3", "", h["near"]["pdq"], "1"])
    store = root / "store"
    with BankStore(store) as s:
        s.import_file(str(bank), ImportOptions(bank="partner", format="csv", scheme="vic",
                                               source="partner org", version="7"))
    case1 = root / "case1"
    run_scan(ScanConfig(evidence=(ev,), case_dir=case1, store_dir=store, workers=0))
    before = _queue(case1)
    decisions = root / "grades.csv"
    decisions.write_text(
        "path,md5,decision,note\n"
        f"{ev / 'new1.png'},,child abuse material,seen in chat\n"
        f",{h['new2']['md5']},2,\n"
        f"{ev / 'falsely.png'},,false-positive,a logo\n"
        f"{ev / 'near.png'},,not-pertinent,\n")
    runner = CliRunner()
    out = runner.invoke(cli, ["review", "import", str(decisions), "--case", str(case1),
                              "--to-bank", "local", "--scheme", "vic"])
    assert out.exit_code == 0, out.output
    # a second case: copies of the confirmed files, and the false positive again
    ev2 = root / "ev2"
    ev2.mkdir()
    for n in ("new1", "new2", "falsely"):
        (ev2 / f"copy_{n}.png").write_bytes(data[n])
    case2 = root / "case2"
    second = run_scan(ScanConfig(evidence=(ev2,), case_dir=case2, store_dir=store, workers=0))
    return {"root": root, "ev": ev, "case1": case1, "case2": case2, "store": store,
            "before": before, "after": _queue(case1), "second": second, "h": h,
            "output": out.output, "decisions": decisions}


def test_regenerated_outputs_reflect_decisions(loop: dict[str, Any]) -> None:
    before, after = loop["before"], loop["after"]
    assert before["falsely.png"]["tier"] == 3 and before["new1.png"]["tier"] == 4
    new1, new2 = after["new1.png"], after["new2.png"]
    assert (new1["category"], new1["category_source"], new1["decision"]) == (
        "child abuse material", "analyst", "category")
    assert (new2["category"], new2["category_source"]) == ("child exploitive (non-CAM)", "analyst")
    # the false positive no longer counts as a known-bad match; its reason stays listed
    fp = after["falsely.png"]
    assert fp["tier"] == 4 and fp["decision"] == "false-positive" and fp["category"] is None
    assert [r["entry"] for r in fp["reasons"]] == ["P-2"]
    near = after["near.png"]
    assert near["decision"] == "not-pertinent" and near["severity"] == 0
    assert near["category"] == "non-pertinent" and near["tier"] == before["near.png"]["tier"]
    summary = json.loads((loop["case1"] / "summary.json").read_text())
    assert summary["counts"]["decision"] == {
        "category": 2, "false-positive": 1, "not-pertinent": 1}
    # nothing was hashed again: the manifest is the one of the scan
    assert "outputs regenerated" in loop["output"]


def test_decisions_stored_with_who_and_when(loop: dict[str, Any]) -> None:
    lines = [json.loads(x) for x in (loop["case1"] / "decisions.jsonl").read_text().splitlines()]
    assert [x["line"] for x in lines] == [2, 3, 4, 5]
    assert all(x["who"] and x["at"] and x["source_sha256"] for x in lines)
    audit = [json.loads(x) for x in (loop["case1"] / "audit.jsonl").read_text().splitlines()]
    review = [a for a in audit if a["event"] == "review_import"]
    assert len(review) == 1 and review[0]["decisions"] == 4 and review[0]["to_bank"] == "local"
    assert verify_chain(loop["case1"] / "audit.jsonl")


def test_false_positive_on_the_bank_entry(loop: dict[str, Any]) -> None:
    with BankStore(loop["store"]) as s:
        detail = s.show("partner")
    assert detail.false_positives == (("P-2", 1),)
    out = CliRunner().invoke(cli, ["bank", "show", "partner", "--store", str(loop["store"])])
    assert out.exit_code == 0 and "P-2" in out.output, out.output


def test_second_case_matches_confirmed_from_local_bank(loop: dict[str, Any]) -> None:
    q = _queue(loop["case2"])
    for n, label in (("new1", "child abuse material"), ("new2", "child exploitive (non-CAM)")):
        row = q[f"copy_{n}.png"]
        assert row["tier"] == 3 and row["category"] == label and row["category_source"] == "bank"
        assert {r["bank"] for r in row["reasons"]} == {"local"}
    # the partner entry still matches (one false positive is under the quarantine threshold)
    assert q["copy_falsely.png"]["reasons"][0]["entry"] == "P-2"


def test_exported_vics_reimports_same_items_and_categories(loop: dict[str, Any]) -> None:
    doc = json.loads((loop["case2"] / "export.vics.json").read_text())
    media = doc["value"][0]["Media"]
    exported = {m["MD5"].lower(): m.get("Category") for m in media}
    h = loop["h"]
    assert exported == {h["new1"]["md5"]: 1, h["new2"]["md5"]: 2, h["falsely"]["md5"]: 2}
    out = CliRunner().invoke(cli, ["bank", "import", str(loop["case2"] / "export.vics.json"),
                                   "--bank", "shared", "--format", "vics",
                                   "--store", str(loop["store"])])
    assert out.exit_code == 0, out.output
    with BankStore(loop["store"]) as s:
        m = s.open_matcher()
        try:
            for md5, code in exported.items():
                (entry,) = [e for e in m.lookup_digest("md5", md5) if e.bank == "shared"]
                assert entry.vic_category == code
        finally:
            m.close()


def test_bad_decisions_refused_whole_with_lines(loop: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("path,decision\n"
                   f"{loop['ev'] / 'other.png'},child abuse material\n"
                   "/nowhere.png,child abuse material\n"
                   f"{loop['ev'] / 'other.png'},3\n"
                   f"{loop['ev'] / 'other.png'},false-positive\n")
    before = (loop["case1"] / "decisions.jsonl").read_bytes()
    out = CliRunner().invoke(cli, ["review", "import", str(bad), "--case", str(loop["case1"])])
    assert out.exit_code == 2
    assert f"{bad}:3: no item of this case has path /nowhere.png" in out.output
    assert f"{bad}:4: category '3' is a number" in out.output and "--scheme vic" in out.output
    assert f"{bad}:5: false-positive for an item with no such bank match" in out.output
    assert (loop["case1"] / "decisions.jsonl").read_bytes() == before
