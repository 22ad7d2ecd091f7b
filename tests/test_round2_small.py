"""The smaller round-2 hostile cases: each failed on the round-1 code.

- a bank name with a trailing newline was accepted (`$` matches before a final newline);
- a policy file that is not UTF-8 gave a traceback instead of a one-line error;
- hashing workers outlived a SIGKILLed scan.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from _procs import descendants, sigkill_and_survivors
from click.testing import CliRunner

from cli.main import cli
from index.bank_import import check_bank_name
from index.banks import BankStore
from index.errors import BankError
from synthetic_fixtures.evidence import make_evidence
from synthetic_fixtures.hostile_round2 import non_utf8_policy
from triage.policy import PolicyError, load_policy

REPO = Path(__file__).resolve().parents[1]
MD5 = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("name", ["bank\n", "bank\r\n", "bank\nother", "\nbank", "bank "])
def test_bank_name_with_a_newline_is_refused(name: str) -> None:
    with pytest.raises(BankError, match="bank name"):
        check_bank_name(name)
    assert check_bank_name("bank-1.v2_x") == "bank-1.v2_x"


def test_non_utf8_policy_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_bytes(non_utf8_policy())
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(bad)
    ev = tmp_path / "ev"
    ev.mkdir()
    BankStore(tmp_path / "s").close()
    result = CliRunner().invoke(cli, ["scan", str(ev), "--case", str(tmp_path / "case"),
                                      "--store", str(tmp_path / "s"), "--policy", str(bad),
                                      "--inventory"])
    assert result.exit_code == 1 and "not UTF-8" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(("engine", "grace"), [
    (["--workers", "2"], 15),
    pytest.param(["--workers", "2", "--scheduler", "local-dask"], 60, marks=pytest.mark.dask),
], ids=["pool", "local-dask"])
def test_workers_exit_when_the_scan_is_sigkilled(tmp_path: Path, engine: list[str],
                                                 grace: float) -> None:
    """Pool: forkserver + 2 workers; local-dask: resource tracker + 2 spawned workers (the
    nannies run inside the scan), which Dask's own pipe watch ends, but only once a worker
    has finished its start-up imports (11 s measured at load 14 when killed as it appeared;
    hence the longer grace)."""
    if "local-dask" in engine:
        pytest.importorskip("distributed")
    make_evidence(tmp_path / "ev", seed=4, n_images=40, n_videos=2)
    BankStore(tmp_path / "store").close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "scan", str(tmp_path / "ev"), "--case",
         str(tmp_path / "case"), "--store", str(tmp_path / "store"), *engine,
         "--batch-size", "1", "--inventory"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 3:
            workers = descendants(proc.pid)
            time.sleep(0.1)
        assert len(workers) >= 3, "the pool never started"
    finally:
        left = sigkill_and_survivors(proc, workers, grace)
    assert not left, f"{len(left)} worker processes outlived the scan"


def test_a_file_changed_while_read_is_read_again_and_marked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from hashing import hasher

    target = tmp_path / "growing.bin"
    target.write_bytes(b"a" * 1000)
    real = hasher._read_all
    calls = []

    def read_then_grow(fd: int, size: int) -> bytes:
        data = real(fd, size)
        calls.append(len(data))
        if len(calls) == 1:  # a writer appends while the first read is under way
            with open(target, "ab") as fh:
                fh.write(b"b" * 500)
        return data

    monkeypatch.setattr(hasher, "_read_all", read_then_grow)
    rec = hasher.hash_path(str(target), hasher.HashOptions(algorithms=("md5",)))
    assert calls == [1000, 1500]
    assert rec.size == 1500 and rec.hashes["md5"] == hashlib.md5(b"a" * 1000 + b"b" * 500).hexdigest()
    assert rec.reason == hasher.CHANGED_DURING_READ


def test_scan_rows_take_size_from_the_read_not_the_walk(tmp_path: Path) -> None:
    """A file that grew between the walk and the read: size and digests agree."""
    import hashlib
    import json

    from triage.pipeline import ScanConfig, run_scan
    from triage.walk import walk as real_walk

    ev = tmp_path / "ev"
    ev.mkdir()
    f = ev / "log.txt"
    f.write_bytes(b"x" * 100)

    def walk_then_grow(*args, **kwargs):  # type: ignore[no-untyped-def]
        for item in real_walk(*args, **kwargs):
            yield item
            if item.path.endswith("log.txt"):
                with open(f, "ab") as fh:
                    fh.write(b"y" * 50)

    import triage.pipeline as pipeline

    mp = pytest.MonkeyPatch()
    mp.setattr(pipeline, "walk", walk_then_grow)
    try:
        BankStore(tmp_path / "store").close()
        run_scan(ScanConfig(evidence=(ev,), case_dir=tmp_path / "case",
                            store_dir=tmp_path / "store", workers=0, inventory=True))
    finally:
        mp.undo()
    (row,) = [json.loads(x) for x in (tmp_path / "case" / "manifest.jsonl").read_text().splitlines()]
    assert row["size"] == 150 and row["md5"] == hashlib.md5(b"x" * 100 + b"y" * 50).hexdigest()
