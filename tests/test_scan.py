"""End to end: a generated evidence folder plus a small tier scenario, scanned against a bank
built from the scenario's own hashes. Every file accounted for, the right tiers and reasons,
the evidence unchanged, private atomic outputs, a no-op rescan and an incremental one."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _evidence import tree_digest
from PIL import Image

from hashing.hasher import HashOptions, hash_path
from index.bank_import import ImportOptions
from index.banks import BankStore
from synthetic_fixtures.evidence import make_evidence
from synthetic_fixtures.hostile import encrypt_flag_zip
from synthetic_fixtures.photos import make_photo
from triage.audit import verify_chain
from triage.casedir import CaseRefused
from triage.pipeline import OUTPUT_NAMES, ScanConfig, ScanError, run_scan


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def build_scenario(root: Path) -> tuple[Path, Path, dict[str, str]]:
    """Originals (kept outside the evidence) and their copies in a second evidence root.

    Returns (evidence root, bank csv, role -> evidence file name).
    """
    rng = np.random.default_rng(2024)
    orig = root / "originals"
    ev = root / "evidence2"
    orig.mkdir()
    ev.mkdir()
    photos = {k: make_photo(rng, 320, 240) for k in ("exact", "edited", "rotated", "series", "good")}
    files = {
        "exact": ("copy_exact.png", _png(photos["exact"])),
        "edited": ("edited.jpg", _jpeg(photos["edited"], 60)),
        "rotated": ("rotated.png", _png(np.ascontiguousarray(np.rot90(photos["rotated"])))),
        "series_known": ("series_01.png", _png(photos["series"])),
        "series_new": ("series_02.jpg", _jpeg(photos["series"], 40)),
        "good": ("logo.png", _png(photos["good"])),
    }
    for name, data in files.values():
        (ev / name).write_bytes(data)
    for key in ("edited", "rotated"):
        (orig / f"{key}.png").write_bytes(_png(photos[key]))
    opts = HashOptions()
    h = {k: hash_path(str(ev / files[k][0]), opts).hashes
         for k in ("exact", "series_known", "good")}
    h.update({k: hash_path(str(orig / f"{k}.png"), opts).hashes for k in ("edited", "rotated")})
    bank = root / "bank.csv"
    with open(bank, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "md5", "pdq", "category", "series"])
        w.writerow(["B-EXACT", h["exact"]["md5"], "", "1", "S-A"])
        w.writerow(["B-EDIT", "", h["edited"]["pdq"], "2", "S-B"])
        w.writerow(["B-ROT", "", h["rotated"]["pdq"], "1", "S-C"])
        # only the digest of the known series photo: its re-encoded sibling is new to the bank
        w.writerow(["B-SERIES", h["series_known"]["md5"], "", "1", "S-D"])
    good = root / "good.csv"
    with open(good, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "sha1"])
        w.writerow(["G-1", h["good"]["sha1"]])
    return ev, bank, {k: v[0] for k, v in files.items()} | {"_good_csv": str(good)}


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("scan")
    spec = make_evidence(root / "evidence", seed=5, n_images=8, n_videos=1)
    ev2, bank_csv, names = build_scenario(root)
    with BankStore(root / "store") as store:
        store.import_file(str(bank_csv), ImportOptions(bank="bad", format="csv", version="v1",
                                                          scheme="vic"))
        store.import_file(names["_good_csv"], ImportOptions(bank="nsrl", format="csv",
                                                            known_good=True))
    digests = {r: tree_digest(r) for r in (root / "evidence", ev2)}
    cfg = ScanConfig(evidence=(root / "evidence", ev2), case_dir=root / "case",
                     store_dir=root / "store", workers=0, argv=("triage", "scan"))
    result = run_scan(cfg)
    case = root / "case"
    return {
        "root": root, "spec": spec, "ev2": ev2, "names": names, "digests": digests,
        "cfg": cfg, "result": result, "case": case,
        "manifest": [json.loads(x) for x in (case / "manifest.jsonl").read_text().splitlines()],
        "queue": [json.loads(x) for x in (case / "queue.jsonl").read_text().splitlines()],
        "summary": json.loads((case / "summary.json").read_text()),
    }


def _rel(path: str, root: Path) -> str | None:
    prefix = str(root) + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


def test_every_file_accounted_for(scan: dict[str, Any]) -> None:
    root = scan["root"] / "evidence"
    rows = {}
    for d in scan["manifest"]:
        raw = bytes.fromhex(d["path_bytes_hex"]).decode("utf-8", "surrogateescape") \
            if d.get("path_bytes_hex") else d["path"]
        rel = _rel(raw, root)
        if rel is not None:
            rows[rel] = d
    expected = scan["spec"].entries
    assert sorted(rows) == sorted(expected)
    for path, exp in expected.items():
        assert (rows[path]["kind"], rows[path]["status"]) == (exp.kind, exp.status), path
    paths = [d["path"] + (d.get("path_bytes_hex") or "") for d in scan["manifest"]]
    assert len(paths) == len(set(paths))  # nothing doubled
    assert len(scan["manifest"]) == len(expected) + 6
    assert all({"size", "mtime", "kind", "status", "reason"} <= set(d) for d in scan["manifest"])


def test_tiers_of_known_cases(scan: dict[str, Any]) -> None:
    by_name = {Path(q["path"]).name: q for q in scan["queue"] if q["path"].startswith(str(scan["ev2"]))}
    n = scan["names"]
    exact, edited, rotated = by_name[n["exact"]], by_name[n["edited"]], by_name[n["rotated"]]
    new, known = by_name[n["series_new"]], by_name[n["series_known"]]
    assert exact["tier"] == 3 and exact["reasons"][0]["kind"] == "exact"
    assert exact["reasons"][0]["entry"] == "B-EXACT" and exact["category"] == "child abuse material"
    assert edited["tier"] == 2 and edited["reasons"][0]["kind"] == "near"
    assert 0 < edited["reasons"][0]["distance"] <= 31 and edited["category"] == "child exploitive (non-CAM)"
    assert rotated["tier"] == 2 and rotated["reasons"][0]["kind"] == "dihedral"
    assert rotated["reasons"][0]["entry"] == "B-ROT" and rotated["reasons"][0]["variant"]
    assert known["tier"] == 3 and new["tier"] == 1
    assert new["cluster"] == known["cluster"] is not None
    # a cluster suggestion is a lead, kept apart from confirmed categories
    assert new["reasons"][0]["kind"] == "cluster" and new["category"] is None
    assert new["suggested_category"] == "child abuse material"
    assert new["reasons"][0]["via"] == known["path"]
    assert n["good"] not in by_name  # known-good is left out ...
    assert scan["summary"]["counts"]["known_good"] == 1  # ... and counted
    assert [q["rank"] for q in scan["queue"]] == list(range(1, len(scan["queue"]) + 1))
    assert [q["tier"] for q in scan["queue"]] == sorted(q["tier"] for q in scan["queue"])


def test_reasons_are_explained(scan: dict[str, Any]) -> None:
    reasons = [r for q in scan["queue"] for r in q["reasons"]]
    assert reasons
    for r in reasons:
        assert r["kind"] in ("exact", "near", "dihedral", "video", "cluster")
        assert r["bank"] and r["entry"] and r["algo"] and isinstance(r["distance"], int)


def test_evidence_unchanged(scan: dict[str, Any]) -> None:
    for root, before in scan["digests"].items():
        assert tree_digest(root) == before


def test_outputs_private_and_summarised(scan: dict[str, Any]) -> None:
    case = scan["case"]
    assert stat.S_IMODE(case.stat().st_mode) == 0o700
    for name in (*OUTPUT_NAMES, "audit.jsonl", "case.sqlite"):
        assert stat.S_IMODE((case / name).stat().st_mode) == 0o600, name
    assert not list(case.glob(".*.tmp"))
    s = scan["summary"]
    assert s["files"] == len(scan["manifest"])
    assert sum(s["counts"]["tier"].values()) == len(scan["queue"]) == s["counts"]["queue"]
    assert sum(s["counts"]["status"].values()) == s["files"]
    assert s["counts"]["bank"]["bad"] >= 4 and s["counts"]["bank"]["nsrl"] == 1
    assert s["counts"]["attention"] == len(s["attention"]) > 0
    assert sum(s["counts"]["accounting"].values()) == s["files"]  # every row, once
    assert {"walk", "hash_cpu", "match", "cluster", "write"} <= set(s["timings"])
    (vics_case,) = json.loads((case / "export.vics.json").read_text())["value"]
    exported = {v["MD5"] for v in vics_case["Media"]}
    assert exported >= {q["md5"].upper() for q in scan["queue"] if q["tier"] == 3}
    assert not exported & {q["md5"].upper() for q in scan["queue"] if q["tier"] == 1}


def test_audit_records_custody(scan: dict[str, Any]) -> None:
    case = scan["case"]
    entries = [json.loads(x) for x in (case / "audit.jsonl").read_text().splitlines()]
    done = [e for e in entries if e["event"] == "scan_finished"][0]
    assert done["banks"]["versions"]["bad"] == "v1" and "pdq" in done["banks"]["index_checksums"]
    assert done["argv"] == ["triage", "scan"] and done["user"] and done["host"]
    assert len(done["evidence_roots"]) == 2 and done["started"] <= done["ended"]
    for name, digest in done["outputs_sha256"].items():
        assert hashlib.sha256((case / name).read_bytes()).hexdigest() == digest
    assert verify_chain(case / "audit.jsonl")


def test_rescan_is_a_noop_then_incremental(scan: dict[str, Any]) -> None:
    case = scan["case"]
    before = {n: (case / n).read_bytes() for n in OUTPUT_NAMES}
    lines = len((case / "audit.jsonl").read_text().splitlines())
    again = run_scan(scan["cfg"])
    assert again.noop and again.hash_calls == 0
    assert {n: (case / n).read_bytes() for n in OUTPUT_NAMES} == before
    assert len((case / "audit.jsonl").read_text().splitlines()) == lines + 2
    # a new file is hashed alone; the rest is reused
    extra = scan["root"] / "evidence3"
    extra.mkdir()
    (extra / "new.txt").write_bytes(b"hello")
    cfg = scan["cfg"]
    grown = run_scan(ScanConfig(**{**{f: getattr(cfg, f) for f in cfg.__slots__},
                                   "evidence": (*cfg.evidence, extra)}))
    assert not grown.noop and grown.hash_calls == 1
    assert grown.summary["files"] == scan["summary"]["files"] + 1
    assert verify_chain(case / "audit.jsonl")



def test_bank_change_regenerates_without_rehashing(scan: dict[str, Any]) -> None:
    exact = next(q for q in scan["queue"] if q["path"].endswith(scan["names"]["exact"]))
    with BankStore(scan["root"] / "store") as store:
        store.retract("bad", [exact["md5"]], reason="test")
    again = run_scan(scan["cfg"])
    assert not again.noop and again.hash_calls == 0
    rows = [json.loads(x) for x in (scan["case"] / "queue.jsonl").read_text().splitlines()]
    row = next(q for q in rows if q["path"] == exact["path"])
    assert row["tier"] == 4 and row["reasons"] == []  # a retracted entry never matches

def test_case_inside_evidence_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ev").mkdir()
    with pytest.raises(CaseRefused, match="inside the evidence"):
        run_scan(ScanConfig(evidence=(tmp_path / "ev",), case_dir=tmp_path / "ev" / "case",
                            store_dir=tmp_path / "store", workers=0))
    assert not (tmp_path / "ev" / "case").exists()



def test_encrypted_archive_is_in_the_attention_list(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "secret.zip").write_bytes(encrypt_flag_zip("inside.jpg", _jpeg(make_photo(
        np.random.default_rng(1), 64, 48), 80)))
    BankStore(tmp_path / "store").close()
    result = run_scan(ScanConfig(evidence=(ev,), case_dir=tmp_path / "case",
                                 store_dir=tmp_path / "store", workers=0, inventory=True))
    (item,) = result.summary["attention"]
    assert item["path"] == f"{ev}/secret.zip!/inside.jpg" and "encrypted" in item["reason"]
    rows = [json.loads(x) for x in (tmp_path / "case" / "manifest.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["status"]) for r in rows] == [("file", "hashed"),
                                                        ("archive_member", "error")]
    assert rows[1]["archive_error"] is True
    page = (tmp_path / "case" / "report.html").read_text()
    assert "secret.zip!/inside.jpg" in page and "encrypted" in page


def test_one_scan_per_case_at_a_time(tmp_path: Path) -> None:
    import fcntl

    (tmp_path / "ev").mkdir()
    case = tmp_path / "case"
    BankStore(tmp_path / "store").close()
    run_scan(ScanConfig(evidence=(tmp_path / "ev",), case_dir=case,
                        store_dir=tmp_path / "store", workers=0, inventory=True))
    fd = os.open(case / ".osec-triage-scan.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running scan holds it
        with pytest.raises(ScanError, match="another scan"):
            run_scan(ScanConfig(evidence=(tmp_path / "ev",), case_dir=case,
                                store_dir=tmp_path / "store", workers=0, inventory=True))
    finally:
        os.close(fd)
    assert run_scan(ScanConfig(evidence=(tmp_path / "ev",), case_dir=case,
                               store_dir=tmp_path / "store", workers=0,
                               inventory=True)).summary["files"] == 0
