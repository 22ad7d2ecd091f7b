"""The case directory is the tool's own and never overlaps the evidence (round-2 hostile cases).

Each test failed on the round-1 code: an unrelated directory given as `--case` had its
`.*.tmp` files deleted, its outputs overwritten and its mode changed; evidence inside the case
was overwritten; a case reached through a bind mount of the evidence was accepted and the
case's own files became manifest rows.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _evidence import tree_digest

from index.banks import BankStore
from synthetic_fixtures.hostile_round2 import write_foreign_directory
from triage.casedir import MARKER, CaseRefused, check_overlap
from triage.pipeline import ScanConfig, run_scan

REPO = Path(__file__).resolve().parents[1]


def _cfg(evidence: tuple[Path, ...], case: Path, tmp: Path) -> ScanConfig:
    BankStore(tmp / "store").close()  # an empty store: these scans only inventory
    return ScanConfig(evidence=evidence, case_dir=case, store_dir=tmp / "store", workers=0,
                      inventory=True)


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "scan", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def _snapshot(d: Path) -> dict[str, tuple[int, bytes]]:
    out = {"": (stat.S_IMODE(d.stat().st_mode), b"")}
    for p in sorted(d.rglob("*")):
        out[str(p.relative_to(d))] = (stat.S_IMODE(p.lstat().st_mode),
                                      p.read_bytes() if p.is_file() else b"")
    return out


def test_unrelated_non_empty_directory_is_refused_untouched(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.txt").write_text("a\n")
    mine = tmp_path / "mine"
    write_foreign_directory(mine)
    before = _snapshot(mine)
    BankStore(tmp_path / "store").close()
    proc = _cli(ev, "--case", mine, "--store", tmp_path / "store", "--workers", "0",
                "--inventory")
    assert proc.returncode == 2, proc.stderr
    assert "holds no osec-triage case" in proc.stderr and "Traceback" not in proc.stderr
    assert _snapshot(mine) == before


def test_evidence_inside_the_case_is_refused_and_untouched(tmp_path: Path) -> None:
    """The issue's reproduction: `triage scan D/report.html D/.cache.tmp --case D`."""
    d = tmp_path / "D"
    write_foreign_directory(d)
    before = _snapshot(d)
    proc = _cli(d / "report.html", d / ".cache.tmp", "--case", d, "--store", tmp_path / "s",
                "--inventory")
    assert proc.returncode == 2 and _snapshot(d) == before
    # the same with a real case of the tool: the evidence may still not sit inside it
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.txt").write_text("a\n")
    case = tmp_path / "case"
    run_scan(_cfg((ev,), case, tmp_path))
    (case / "notes.txt").write_text("put here by hand\n")
    for evidence in (case / "notes.txt", case / "manifest.jsonl", case):
        digest = tree_digest(case)
        with pytest.raises(CaseRefused, match="inside"):
            run_scan(_cfg((evidence,), case, tmp_path))
        assert tree_digest(case) == digest


def test_a_new_case_is_marked_and_reused_only_with_its_marker(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.txt").write_text("a\n")
    case = tmp_path / "new" / "case"
    first = run_scan(_cfg((ev,), case, tmp_path))
    marker = json.loads((case / MARKER).read_text())
    assert marker["tool"] == "osec-triage" and len(marker["case_id"]) == 32
    assert stat.S_IMODE(case.stat().st_mode) == 0o700
    again = run_scan(_cfg((ev,), case, tmp_path))
    assert again.noop and json.loads((case / MARKER).read_text()) == marker
    audit = [json.loads(x) for x in (case / "audit.jsonl").read_text().splitlines()]
    assert {e["case_id"] for e in audit} == {marker["case_id"]}
    assert first.summary["files"] == again.summary["files"]
    # an empty existing directory becomes a case; a forged or broken marker is refused
    empty = tmp_path / "empty"
    empty.mkdir()
    run_scan(_cfg((ev,), empty, tmp_path))
    assert (empty / MARKER).exists()
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / MARKER).write_text('{"tool": "other", "case_id": "x"}')
    with pytest.raises(CaseRefused, match="not an osec-triage case marker"):
        run_scan(_cfg((ev,), forged, tmp_path))
    assert sorted(p.name for p in forged.iterdir()) == [MARKER]


def test_only_the_tools_own_temp_files_are_removed(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.txt").write_text("a\n")
    case = tmp_path / "case"
    run_scan(_cfg((ev,), case, tmp_path))
    ours = case / ".osec-triage-tmp.queue.jsonl.abc123.tmp"  # a scan killed while writing
    ours.write_text("half\n")
    kept = case / ".notes.tmp"
    kept.write_text("not the tool's\n")
    run_scan(_cfg((ev,), case, tmp_path))
    assert not ours.exists() and kept.read_text() == "not the tool's\n"


def test_hard_link_to_a_case_file_is_not_evidence(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.txt").write_text("a\n")
    case = tmp_path / "case"
    run_scan(_cfg((ev,), case, tmp_path))
    os.link(case / "manifest.jsonl", tmp_path / "linked_root.jsonl")
    with pytest.raises(CaseRefused, match="inside the case"):
        run_scan(_cfg((tmp_path / "linked_root.jsonl",), case, tmp_path))
    os.link(case / "case.sqlite", ev / "looks_like_evidence.sqlite")
    run_scan(_cfg((ev,), case, tmp_path))
    rows = {Path(d["path"]).name: d for d in map(
        json.loads, (case / "manifest.jsonl").read_text().splitlines())}
    row = rows["looks_like_evidence.sqlite"]
    assert row["status"] == "error" and "case directory" in row["reason"]
    assert "md5" not in row  # never read


def test_overlap_through_symlinked_components(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    (ev / "sub").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(ev)
    with pytest.raises(CaseRefused, match="case directory may not be inside the evidence"):
        check_overlap([ev], [("case directory", tmp_path / "alias" / "sub" / "case")])
    with pytest.raises(CaseRefused, match="evidence may not be inside the case directory"):
        check_overlap([tmp_path / "alias" / "sub"], [("case directory", ev)])
    # siblings do not overlap, and a case that does not exist yet is fine next to evidence
    check_overlap([ev / "sub"], [("case directory", tmp_path / "not-yet" / "case")])
    check_overlap([ev / "sub"], [("case directory", ev.parent / "case")])


@contextmanager
def _bind(src: Path, dst: Path) -> Iterator[None]:
    dst.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "--bind", str(src), str(dst)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"bind mounts need privileges here: {proc.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(dst)], check=True)


def test_case_reached_through_a_bind_mount_of_the_evidence_is_refused(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.txt").write_text("a\n")
    with _bind(ev, tmp_path / "mnt"):
        case = tmp_path / "mnt" / "case"  # physically inside ev
        with pytest.raises(CaseRefused, match="case directory may not be inside the evidence"):
            run_scan(_cfg((ev,), case, tmp_path))
        assert not (ev / "case").exists()


def test_bind_mount_of_the_case_inside_the_evidence_is_not_read(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.txt").write_text("a\n")
    case = tmp_path / "case"
    run_scan(_cfg((ev,), case, tmp_path))
    with _bind(case, ev / "mounted_case"):
        run_scan(_cfg((ev,), case, tmp_path))
        rows = [json.loads(x) for x in (case / "manifest.jsonl").read_text().splitlines()]
    names = {d["path"][len(str(ev)) + 1:]: d for d in rows}
    assert set(names) == {"a.txt", "mounted_case"}
    assert names["mounted_case"]["status"] == "error"
    assert "case directory" in names["mounted_case"]["reason"]
