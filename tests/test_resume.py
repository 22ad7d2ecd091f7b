"""Crash safety: a real `triage scan` subprocess killed with SIGKILL part-way, then rerun with
the same arguments, ends with the same manifest and queue as an uninterrupted scan, nothing
doubled, and only the files not yet recorded hashed again."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from index.banks import BankStore
from synthetic_fixtures.evidence import make_evidence
from triage.audit import verify_chain
from triage.pipeline import ScanConfig, run_scan

REPO = Path(__file__).resolve().parents[1]


def _scan_cmd(evidence: Path, case: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "cli.main", "scan", str(evidence), "--case", str(case),
            "--store", str(store), "--workers", "1", "--batch-size", "1", "--inventory"]


def _recorded(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT count(*) FROM items WHERE hashed=1").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:  # schema not created yet
        return 0


def _lines(path: Path) -> list[str]:
    text = path.read_text()
    if path.name == "export.vics.json":  # its provenance names the case directory
        text = text.replace(f'"CaseNumber": "{path.parent.name}"', '"CaseNumber": ""')
    return sorted(text.splitlines())


def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    make_evidence(evidence, seed=9, n_images=12, n_videos=1)
    store = tmp_path / "store"
    BankStore(store).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    full = tmp_path / "case_full"  # the uninterrupted reference, in-process
    total_calls = run_scan(ScanConfig(evidence=(evidence,), case_dir=full, store_dir=store,
                                      workers=0, inventory=True)).hash_calls

    case = tmp_path / "case_killed"
    proc = subprocess.Popen(_scan_cmd(evidence, case, store), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while _recorded(case / "case.sqlite") < 4 and proc.poll() is None:
        assert time.monotonic() < deadline, "scan recorded nothing"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the scan and its worker processes, mid-flight
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the scan finished before it could be killed"
    done_before = _recorded(case / "case.sqlite")
    assert 4 <= done_before < total_calls
    assert not (case / "queue.jsonl").exists()

    subprocess.run(_scan_cmd(evidence, case, store), cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=300)
    resumed = json.loads((case / "summary.json").read_text())
    assert resumed["run"]["hash_calls"] == total_calls - done_before  # nothing re-hashed
    for name in ("manifest.jsonl", "queue.jsonl", "queue.csv", "export.vics.json"):
        assert _lines(case / name) == _lines(full / name), name
    manifest = _lines(case / "manifest.jsonl")
    assert len({json.loads(x)["path"] for x in manifest}) == len(manifest)  # nothing doubled
    full_summary = json.loads((full / "summary.json").read_text())
    for key in ("files", "counts", "attention"):
        assert resumed[key] == full_summary[key]
    assert not list(case.glob(".*.tmp"))
    events = [json.loads(x)["event"] for x in (case / "audit.jsonl").read_text().splitlines()]
    assert events == ["scan_started", "scan_started", "scan_finished"]  # the kill is visible
    assert verify_chain(case / "audit.jsonl")


def _zip_with(path: Path, text: bytes) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo("note.txt", date_time=(2020, 1, 1, 0, 0, 0)), text)


def test_replaced_archive_members_are_hashed_again(tmp_path: Path) -> None:
    """Same member name, size and header time, new content: the old hash must not be reused."""
    import hashlib

    ev = tmp_path / "ev"
    ev.mkdir()
    archive = ev / "a.zip"
    _zip_with(archive, b"AAAA")
    os.utime(archive, (1_600_000_000, 1_600_000_000))
    BankStore(tmp_path / "store").close()
    cfg = ScanConfig(evidence=(ev,), case_dir=tmp_path / "case", store_dir=tmp_path / "store",
                     workers=0, inventory=True)
    run_scan(cfg)
    _zip_with(archive, b"BBBB")
    os.utime(archive, (1_700_000_000, 1_700_000_000))
    run_scan(cfg)
    rows = [json.loads(x) for x in (tmp_path / "case" / "manifest.jsonl").read_text().splitlines()]
    member = next(r for r in rows if r["path"].endswith("a.zip!/note.txt"))
    assert member["md5"] == hashlib.md5(b"BBBB").hexdigest()
