"""Row identity: manifest rows are keyed by real location, never by label (round-2 cases).

On the round-1 code a directory named `a.zip!` next to `a.zip`, or a member literally named
`inner.zip!/y.txt` next to a nested `inner.zip`, shared a row with another item and the last
writer won, which hid a known-bad JPEG from the queue.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.bank_import import ImportOptions
from index.banks import BankStore
from synthetic_fixtures.hostile_round2 import write_generated_names, write_label_collisions
from triage.casedb import CaseDB, _Labels
from triage.identity import (
    WHOLE,
    Segment,
    fs_location,
    is_within,
    location_from_json,
    location_json,
    location_key,
    member_location,
)
from triage.pipeline import ScanConfig, run_scan
from triage.walk import walk

_names = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\x00" not in b)
_segments = st.one_of(
    st.builds(lambda p: Segment("os", b"/".join(p)), st.lists(_names, min_size=0, max_size=3)),
    st.builds(Segment, st.sampled_from(["zip", "tar", "7z", "partition"]),
              st.integers(min_value=-1, max_value=2**40)),
)
_locations = st.lists(_segments, min_size=1, max_size=4).map(
    lambda segs: (Segment("root", b"/ev"), *segs))


@settings(suppress_health_check=[HealthCheck.too_slow])  # drawing is slow on a loaded machine
@given(st.lists(_locations, min_size=2, max_size=12, unique=True))
def test_keys_are_lossless_and_ordered(locs: list[tuple[Segment, ...]]) -> None:
    keys = [location_key(loc) for loc in locs]
    assert len(set(keys)) == len(locs)  # distinct locations never share a key
    for loc, key in zip(locs, keys, strict=True):
        assert location_from_json(json.loads(json.dumps(location_json(loc)))) == loc
        for other, okey in zip(locs, keys, strict=True):
            if is_within(other, loc):
                assert okey.startswith(key) and okey > key  # members sort after their container


def test_key_order_is_walk_order() -> None:
    root = b"/ev"
    names = [b"a", b"a/x", b"a\x01", b"a.zip", b"b"]  # entries by name bytes, depth first
    keys = [location_key(fs_location(root, root + b"/" + n)) for n in names]
    assert keys == sorted(keys)
    zip_at = fs_location(root, root + b"/a.zip")
    members = [member_location(zip_at, "zip", i) for i in (WHOLE, 0, 1, 2, 10, 256)]
    mkeys = [location_key(m) for m in members]
    assert mkeys == sorted(mkeys) and location_key(zip_at) < mkeys[0] < location_key(
        fs_location(root, root + b"/b"))


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_label_collisions_keep_every_row_and_every_match(tmp_path: Path) -> None:
    ev = write_label_collisions(tmp_path / "ev", seed=11)
    bank = tmp_path / "bank.csv"
    bank.write_text(f"id,md5,category\nKB-1,{_md5(ev.known_bad)},1\n")
    with BankStore(tmp_path / "store") as store:
        store.import_file(str(bank), ImportOptions(bank="bad", format="csv", version="1",
                                                   scheme="vic"))
    case = tmp_path / "case"
    run_scan(ScanConfig(evidence=(ev.root,), case_dir=case, store_dir=tmp_path / "store",
                        workers=0))
    rows = [json.loads(x) for x in (case / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == ev.rows
    locations = [tuple(map(tuple, d["location"])) for d in rows]
    assert len(set(locations)) == len(rows)
    labels = [d["path"] for d in rows]
    assert len(set(labels)) == len(rows)  # displayed labels told apart
    twins = [d for d in rows if d.get("label_collision")]
    # a.zip!/bad.jpg, a.zip!/y.txt and outer.zip!/inner.zip!/y.txt, two rows each
    assert len(twins) == 6 and all("(label collision" in d["path"] for d in twins)
    bad_rows = [d for d in rows if d.get("md5") == _md5(ev.known_bad)]
    benign_rows = [d for d in rows if d.get("md5") == _md5(ev.benign)]
    assert len(bad_rows) == 2 and len(benign_rows) == 2
    queue = [json.loads(x) for x in (case / "queue.jsonl").read_text().splitlines()]
    assert sorted(q["path"] for q in queue if q["md5"] == _md5(ev.known_bad)) == sorted(
        d["path"] for d in bad_rows)
    # the zip member of a.zip and the file in directory a.zip! are told apart by location
    by_loc = {tuple(s[0] for s in d["location"]): d for d in bad_rows}
    assert set(by_loc) == {("root", "os", "zip"), ("root", "os", "zip", "zip")}


_member_names = st.lists(
    st.text(st.sampled_from("ab!/. "), min_size=1, max_size=8).filter(
        lambda n: not n.endswith("/") and not n.startswith("/")), min_size=1, max_size=8)
_dir_names = st.lists(st.text(st.sampled_from("ab!.z"), min_size=1, max_size=6), min_size=1,
                      max_size=5, unique=True)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dirs=_dir_names, members=_member_names)
def test_generated_names_never_lose_a_row(tmp_path: Path, dirs: list[str],
                                          members: list[str]) -> None:
    """Files and directories named like archive labels, zips with repeated and `!/` names:
    every item keeps its own row and every manifest label is distinct."""
    root = tmp_path / os.urandom(4).hex()
    write_generated_names(root, dirs, members)
    items = list(walk([str(root)]))
    keys = [location_key(i.location) for i in items]
    assert len(set(keys)) == len(items)
    with CaseDB(tmp_path / f"{root.name}.sqlite") as db:
        run = db.begin_run("t")
        db.put(run, "o", [({"path": i.path, "status": "skipped"}, k, False)
                          for i, k in zip(items, keys, strict=True)])
        assert len(list(db.rows(run))) == len(items)
        labels = _Labels(db, run)
        shown = [labels.distinct(r.record["path"]) if r.record["path"] in labels.colliding
                 else r.record["path"] for r in db.rows(run)]
    assert len(set(shown)) == len(items)
