"""The case database: resume keys, seen-by-run manifest selection, private files, atomic outputs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from triage.audit import append_audit, verify_chain
from triage.casedb import CaseDB
from triage.identity import fs_location, location_key
from triage.outputs import atomic_text, ensure_private_dir, write_text_atomic


def _rec(path: str, size: int, mtime: float) -> dict:
    return {"path": path, "status": "hashed", "size": size, "mtime": mtime, "md5": "0" * 32}


def _k(path: str) -> bytes:
    return location_key(fs_location(b"/e", os.fsencode(path)))


def test_resume_key_is_location_size_mtime_and_options(tmp_path: Path) -> None:
    with CaseDB(tmp_path / "case.sqlite") as db:
        run = db.begin_run("t0")
        db.put(run, "opts-a", [(_rec("/e/a", 10, 1.5), _k("/e/a"), True)])
        assert db.reusable(_k("/e/a"), 10, 1.5, "opts-a")
        assert not db.reusable(_k("/e/a"), 11, 1.5, "opts-a")
        assert not db.reusable(_k("/e/a"), 10, 2.5, "opts-a")
        assert not db.reusable(_k("/e/a"), 10, 1.5, "opts-b")
        assert not db.reusable(_k("/e/b"), 10, 1.5, "opts-a")
        db.put(run, "opts-a", [(_rec("/e/l", 0, 1.0), _k("/e/l"), False)])
        assert not db.reusable(_k("/e/l"), 0, 1.0, "opts-a")  # settled rows are not hash results
        assert db.count_hashed() == 1
    assert stat.S_IMODE(os.stat(tmp_path / "case.sqlite").st_mode) == 0o600


def test_rows_follow_the_latest_walk(tmp_path: Path) -> None:
    weird = os.fsdecode(b"/e/caf\xe9\n=x")
    with CaseDB(tmp_path / "c.sqlite") as db:
        r1 = db.begin_run("t1")
        db.put(r1, "o", [(_rec(p, 1, 1.0), _k(p), True) for p in ("/e/b", "/e/a", weird)])
        db.finish_run(r1, "t1e", 3, "fp1")
        r2 = db.begin_run("t2")
        assert db.last_fingerprint(r2) == "fp1"
        db.mark_seen(r2, [_k("/e/a"), _k(weird)])
        db.put(r2, "o", [(_rec("/e/a", 2, 1.0), _k("/e/a"), True)])  # upsert, not a second row
        rows = list(db.rows(r2))
        assert [r.path_key for r in rows] == sorted([_k("/e/a"), _k(weird)])
        assert rows[0].record["size"] == 2 and db.count_hashed() == 3
    # a reopened database keeps everything (WAL committed)
    with CaseDB(tmp_path / "c.sqlite") as db:
        assert db.count_hashed() == 3


def test_atomic_writer_keeps_old_file_on_failure(tmp_path: Path) -> None:
    case = ensure_private_dir(tmp_path / "case")
    assert stat.S_IMODE(case.stat().st_mode) == 0o700
    target = case / "out.json"
    write_text_atomic(target, "old")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(RuntimeError), atomic_text(target) as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in case.iterdir()) == ["out.json"]  # no temp file left


def test_labels_may_collide_keys_may_not(tmp_path: Path) -> None:
    with CaseDB(tmp_path / "c.sqlite") as db:
        run = db.begin_run("t")
        db.put(run, "o", [(_rec("/e/a.zip!/y", 1, 1.0), _k("/e/a.zip!/y"), True),
                          (_rec("/e/a.zip!/y", 1, 1.0), _k("/e/a.zip") + b"zip:x", True),
                          (_rec("/e/b", 1, 1.0), _k("/e/b"), True)])
        assert len(list(db.rows(run))) == 3
        assert db.colliding_labels(run) == {"/e/a.zip!/y"}
        assert db.label_taken(run, "/e/b") and not db.label_taken(run, "/e/c")


def test_audit_is_an_append_only_chain(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    first = append_audit(log, {"event": "a"})
    second = append_audit(log, {"event": "b"})
    assert first["prev_sha256"] is None and second["prev_sha256"]
    assert verify_chain(log)
    lines = log.read_text().splitlines()
    log.write_text(lines[1] + "\n")  # dropping an entry breaks the chain
    assert not verify_chain(log)
    assert json.loads(lines[1])["event"] == "b"
