"""The queue: tier rules, ranking, known-good exclusion, and formula-safe CSV."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hashing.output import neutralise_cell
from hashing.types import HashRecord
from triage.items import CaseItem
from triage.match import Reason, is_known_good
from triage.policy import Policy
from triage.queue import build_queue
from triage.reports.queue import write_queue_csv, write_queue_jsonl


def _rec(path: str, media: str | None = "image/jpeg", status: str = "hashed") -> HashRecord:
    return HashRecord(path=path, status=status, media_type=media,  # type: ignore[arg-type]
                      hashes={"md5": "ab" * 16, "sha1": "cd" * 20, "sha256": "ef" * 32})


EXACT = Reason("exact", "md5", "bad", "E1", 0, "1")
NEAR = Reason("near", "pdq", "bad", "E2", 12, "2")
NEARER = Reason("dihedral", "pdq", "bad", "E3", 4, "1", variant="rotate90")
GOOD = Reason("exact", "sha1", "nsrl", "G", 0, None, known_good=True)
SUGGEST = Reason("cluster", "pdq", "bad", "E1", 20, "1", via="/a")


def _queue(policy: Policy | None = None):  # type: ignore[no-untyped-def]
    records = [_rec("/a"), _rec("/b"), _rec("/c"), _rec("/d"), _rec("/e"),
               _rec("/f.txt", media=None), _rec("/g.txt", media=None), _rec("/h", status="error"),
               _rec("/i")]
    reasons = [(EXACT,), (NEAR,), (NEARER,), (GOOD,), (), (), (EXACT,), (), (GOOD, NEAR)]
    items = [CaseItem(k, r, reasons=why) for k, (r, why) in enumerate(zip(records, reasons, strict=True))]
    items[0] = replace(items[0], cluster="C00001")
    items[4] = replace(items[4], cluster="C00001", suggestion=SUGGEST)
    return items, build_queue(items, policy or Policy())


def _items(records: list[HashRecord]) -> list[CaseItem]:
    return [CaseItem(k, r) for k, r in enumerate(records)]


def test_tiers_ranks_and_exclusions() -> None:
    items, q = _queue()
    got = [(r.rank, r.tier, r.path, r.category, r.cluster) for r in q]
    assert got == [
        (1, 1, "/e", None, "C00001"),  # unknown, clustered with known-bad: only a suggestion
        (2, 2, "/c", "1", None),      # closer near match ranks first
        (3, 2, "/b", "2", None),
        (4, 2, "/i", "2", None),      # known-bad beats known-good
        (5, 3, "/a", "1", "C00001"),
        (6, 3, "/g.txt", "1", None),  # an exact hit on a non-media file is queued
    ]
    assert [i.ordinal for i in items if is_known_good(i.reasons)] == [3]
    assert q[0].suggested_category == "1" and q[0].category_source is None
    assert [x.kind for x in q[0].reasons] == ["cluster"]
    assert q[1].score > q[2].score and q[4].score == 100.0
    assert all(not x.known_good for r in q for x in r.reasons)
    # unmatched media land in tier 4: none here besides... /d is known-good, /f.txt not media
    assert not [r for r in q if r.tier == 4]


def test_policy_renumbers_tiers() -> None:
    _, q = _queue(Policy(tiers={"possible_new": 2, "near": 3, "exact": 1, "unmatched": 4}))
    assert [r.path for r in q][:2] == ["/a", "/g.txt"]


@given(st.text(max_size=20))
def test_neutralise(cell: str) -> None:
    out = neutralise_cell(cell)
    assert not out.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert out in (cell, "'" + cell)


def test_jsonl_and_csv(tmp_path: Path) -> None:
    _, q = _queue()
    write_queue_jsonl(tmp_path / "q.jsonl", q)
    write_queue_csv(tmp_path / "q.csv", q)
    rows = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [r["rank"] for r in rows] == list(range(1, 7))
    assert rows[1]["reasons"][0] == {"kind": "dihedral", "algo": "pdq", "bank": "bad",
                                     "entry": "E3", "distance": 4, "category": "1",
                                     "variant": "rotate90"}
    with open(tmp_path / "q.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["path"] for r in table] == [r["path"] for r in rows]
    assert json.loads(table[0]["reasons"])[0]["via"] == "/a"


def test_csv_defuses_hostile_paths(tmp_path: Path) -> None:
    records = [_rec('=HYPERLINK("x")'), _rec("+1"), _rec("-2"), _rec("@SUM(A1)"), _rec("\tx")]
    q = build_queue(_items(records), Policy())
    write_queue_csv(tmp_path / "q.csv", q)
    with open(tmp_path / "q.csv", newline="") as fh:
        paths = [r["path"] for r in csv.DictReader(fh)]
    assert sorted(paths) == sorted("'" + r.path for r in records)
    assert all(r.tier == 4 for r in q)


def test_odd_names_stay_lossless_in_jsonl(tmp_path: Path) -> None:
    raw = b"/e/caf\xe9\n=x.jpg"
    rec = _rec(os.fsdecode(raw))
    q = build_queue(_items([rec]), Policy())
    write_queue_jsonl(tmp_path / "q.jsonl", q)
    write_queue_csv(tmp_path / "q.csv", q)
    (row,) = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert bytes.fromhex(row["path_bytes_hex"]) == raw
    with open(tmp_path / "q.csv", newline="") as fh:
        (cell,) = [r["path"] for r in csv.DictReader(fh)]
    assert cell == row["path"] and "\n" in cell  # quoted, one record


def test_a_low_quality_match_ranks_below_near_matches_in_its_tier() -> None:
    low = Reason("low_quality", "pdq", "bad", "E4", 0, "1")
    items = [CaseItem(0, _rec("/low"), reasons=(low,)), CaseItem(1, _rec("/near"), reasons=(NEAR,))]
    rows = build_queue(items, Policy())
    assert [(r.path, r.tier) for r in rows] == [("/near", 2), ("/low", 2)]
    assert rows[1].score == 50.0 and rows[0].score > 90
