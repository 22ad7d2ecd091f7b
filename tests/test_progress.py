"""Scan progress: the count ahead equals the walk's own file-system rows, progress adds up to
it, and every stage after hashing is announced once."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from index.banks import BankStore
from synthetic_fixtures.evidence import make_evidence
from triage.pipeline import ScanConfig, run_scan
from triage.progress import count_entries
from triage.walk import walk


def test_count_ahead_total_progress_and_stage_lines(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    make_evidence(ev, seed=3, n_images=6, n_videos=0)
    rows = [i for i in walk([str(ev)]) if i.kind != "archive_member"]
    assert count_entries([str(ev)]) == len(rows) > 6
    assert any(i.kind == "archive_member" for i in walk([str(ev)]))  # members not counted
    totals: list[int] = []
    done: list[int] = []
    stages: list[str] = []
    BankStore(tmp_path / "store").close()
    cfg = ScanConfig(evidence=(ev,), case_dir=tmp_path / "case", store_dir=tmp_path / "store",
                     workers=0, inventory=True, progress=done.append,
                     progress_total=totals.append,
                     on_stage=lambda name, seconds: stages.append(name))
    run_scan(cfg)
    assert totals == [len(rows)] and sum(done) == len(rows)
    for name in ("open_banks", "walk_and_hash", "manifest", "match", "cluster", "score", "write"):
        assert stages.count(name) == 1, name
    assert "record" not in stages  # per-chunk stages are timed, not announced


def test_count_of_a_file_root_and_an_unlistable_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").write_bytes(b"x")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "inside").write_bytes(b"y")
    real_scandir = os.scandir

    def scandir(path: str) -> Any:
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert count_entries([str(tmp_path / "f")]) == 1
    assert count_entries([str(tmp_path)]) == 2  # f, and locked as its one error row
