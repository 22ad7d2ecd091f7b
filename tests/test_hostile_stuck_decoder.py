"""A decoder stuck in C code, where the per-file SIGALRM limit cannot reach it.

The stand-in decoder blocks SIGALRM and sleeps in libc through `ctypes.PyDLL`, which keeps
the GIL: nothing in its worker's interpreter runs again, the parent-death watch included,
like a C decoder caught in a loop. The parent's watchdog must kill that worker at the hard
deadline (`triage.watchdog.hard_seconds`), give the file an error row that says `decode time
limit` (with its digests), start a new worker and finish the scan with every other row.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _procs import alive, descendants, sigkill_and_survivors, wait_gone

from hashing.hasher import HashOptions
from index.banks import BankStore
from synthetic_fixtures.evidence import image_bytes
from triage import watchdog
from triage.batches import BatchResult, HashBatch, hash_batch

REPO = Path(__file__).resolve().parents[1]

STUCK = "stuck.jpg"
STUCK_MARKER = "OSEC_TEST_STUCK_MARKER"  # a file the stuck decoder writes its pid to


def _stick_on_stuck(block_alarm: bool) -> None:
    """Make this worker's image decoder never return (in C, holding the GIL) for files named
    STUCK, after writing its pid to the STUCK_MARKER file if one is set; installed once."""
    from hashing import hasher

    real = hasher._hash_image
    if getattr(real, "stuck_on", False):
        return

    def decode(data: bytes, path: str, opts: HashOptions) -> dict[str, Any]:
        if path.endswith(STUCK):
            if os.environ.get(STUCK_MARKER):
                Path(os.environ[STUCK_MARKER]).write_text(str(os.getpid()))
            if block_alarm:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # ignores the alarm
            ctypes.PyDLL(None).sleep(3600)
        return real(data, path, opts)

    decode.stuck_on = True  # type: ignore[attr-defined]
    hasher._hash_image = decode  # type: ignore[assignment]  # this worker process only


def stuck_in_c_on_marker(batch: HashBatch) -> BatchResult:
    """`hash_batch` in a worker whose image decoder never returns for files named STUCK."""
    _stick_on_stuck(block_alarm=True)
    return hash_batch(batch)


CHILD = """
import json, sys, time
from pathlib import Path
import triage.pipeline as pipeline
from test_hostile_stuck_decoder import stuck_in_c_on_marker
from triage.executor import LocalExecutor
made = []
def make(*args, **kwargs):
    made.append(LocalExecutor(2, fn=stuck_in_c_on_marker))
    return made[-1]
pipeline.make_executor = make
ev, case, store, policy = map(Path, sys.argv[1:])
start = time.monotonic()
pipeline.run_scan(pipeline.ScanConfig(evidence=(ev,), case_dir=case, store_dir=store,
                                      inventory=True, policy_path=policy, batch_size=2))
print(json.dumps({"killed": made[0].killed, "took": time.monotonic() - start}))
"""


def test_stuck_decoder_is_killed_and_the_scan_finishes(tmp_path: Path) -> None:
    """The scan runs in a child with a deadline, so a watchdog that fails is a failed test
    (the child times out), not a hung suite."""
    rng = np.random.default_rng([11, 1600])
    ev = tmp_path / "ev"
    ev.mkdir()
    for k in range(6):
        (ev / f"ok{k}.jpg").write_bytes(image_bytes(rng, "jpeg", (64, 48)))
    stuck = image_bytes(rng, "jpeg", (64, 48))
    (ev / STUCK).write_bytes(stuck)
    policy = tmp_path / "policy.toml"
    # soft limit 8 s (a fresh worker's first decode under load can take seconds), hard 13 s
    policy.write_text("[limits]\ndecode_seconds = 8\n")
    BankStore(tmp_path / "store").close()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ev), str(tmp_path / "case"), str(tmp_path / "store"),
         str(policy)], cwd=REPO, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    rows = {Path(d["path"]).name: d for d in map(
        json.loads, (tmp_path / "case" / "manifest.jsonl").read_text().splitlines())}
    assert set(rows) == {STUCK, *(f"ok{k}.jpg" for k in range(6))}
    bad = rows.pop(STUCK)
    assert bad["status"] == "error" and bad["error"].startswith(watchdog.DECODE_TIME_LIMIT)
    assert "13 s" in bad["error"]
    assert bad["md5"] == hashlib.md5(stuck).hexdigest()  # digests, from a fresh worker
    assert all(d["status"] == "hashed" and d["md5"] for d in rows.values()), [
        (k, d["error"]) for k, d in rows.items()]
    assert out["killed"] == 1


def test_hard_deadline_follows_the_soft_limit() -> None:
    assert watchdog.hard_seconds(8.0) == 13.0 and watchdog.hard_seconds(60.0) == 90.0


def stuck_on_dask(batch: HashBatch) -> BatchResult:
    """`hash_batch_on_worker` on a Dask worker whose decoder never returns for STUCK (the
    alarm is left alone: on Dask the hard deadline's C thread is what ends the worker)."""
    from triage.dask_executor import hash_batch_on_worker

    _stick_on_stuck(block_alarm=False)
    return hash_batch_on_worker(batch)


DASK_CHILD = """
import json, sys
from pathlib import Path
import dask
import triage.pipeline as pipeline
from test_hostile_stuck_decoder import stuck_on_dask
from triage.dask_executor import DaskExecutor
made = []
def make(*args, **kwargs):
    made.append(DaskExecutor("local-dask", 2, fn=stuck_on_dask))
    return made[-1]
pipeline.make_executor = make
ev, case, store, policy = map(Path, sys.argv[1:])
with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
    pipeline.run_scan(pipeline.ScanConfig(evidence=(ev,), case_dir=case, store_dir=store,
                                          inventory=True, policy_path=policy, batch_size=2))
print(json.dumps({"lost": made[0].lost}))
"""


@pytest.mark.dask
def test_stuck_decoder_on_dask_ends_its_worker_and_the_scan_finishes(tmp_path: Path) -> None:
    """On Dask the worker ends itself at the hard deadline (faulthandler's C thread), the
    nanny starts a new one, and the batch is re-run task by task: the culprit is an error
    row, its neighbours are hashed."""
    pytest.importorskip("distributed")
    rng = np.random.default_rng([12, 1600])
    ev = tmp_path / "ev"
    ev.mkdir()
    for k in range(3):
        (ev / f"ok{k}.jpg").write_bytes(image_bytes(rng, "jpeg", (64, 48)))
    (ev / STUCK).write_bytes(image_bytes(rng, "jpeg", (64, 48)))
    policy = tmp_path / "policy.toml"
    # hard deadline 15 s: on Dask it is the only limit, and a decode of the small files on a
    # machine at load 20 must stay well inside it
    policy.write_text("[limits]\ndecode_seconds = 10\n")
    BankStore(tmp_path / "store").close()
    proc = subprocess.run(
        [sys.executable, "-c", DASK_CHILD, str(ev), str(tmp_path / "case"),
         str(tmp_path / "store"), str(policy)], cwd=REPO, capture_output=True, text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {"lost": 1}
    rows = {Path(d["path"]).name: d for d in map(
        json.loads, (tmp_path / "case" / "manifest.jsonl").read_text().splitlines())}
    assert set(rows) == {STUCK, "ok0.jpg", "ok1.jpg", "ok2.jpg"}
    bad = rows.pop(STUCK)
    assert bad["status"] == "error" and bad["error"].startswith(watchdog.DECODE_TIME_LIMIT)
    assert all(d["status"] == "hashed" and d["md5"] for d in rows.values())


def test_the_native_timer_works_when_stderr_has_no_descriptor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Dask worker's (or a test runner's) `sys.stderr` may be a stream with no file
    descriptor; arming faulthandler on it failed every later decode ("decoder failed:
    UnsupportedOperation: fileno")."""
    import io

    from hashing import time_limit
    from hashing.hasher import hash_bytes

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    watchdog.use_native_timer()
    try:
        record = hash_bytes(image_bytes(np.random.default_rng(5), "jpeg", (64, 48)), "a.jpg",
                            HashOptions())
    finally:
        time_limit.set_watch(None)
    assert record.status == "hashed" and record.error is None and record.hashes["pdq"]


@pytest.mark.parametrize("child", [
    CHILD, pytest.param(DASK_CHILD, marks=pytest.mark.dask)], ids=["pool", "local-dask"])
def test_a_worker_stuck_in_c_ends_with_a_sigkilled_scan(tmp_path: Path, child: str) -> None:
    """The pidfd watch is a Python thread (Dask's pipe watch too), which a decoder holding the
    GIL starves; the guard process, which waits on the same pidfd, still ends the worker at
    once, long before its hard decode deadline (10 minutes here)."""
    rng = np.random.default_rng([13, 1600])
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / STUCK).write_bytes(image_bytes(rng, "jpeg", (64, 48)))
    policy = tmp_path / "policy.toml"
    policy.write_text("[limits]\ndecode_seconds = 600\n")  # no watchdog kill during the test
    marker = tmp_path / "stuck-now"
    BankStore(tmp_path / "store").close()
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(ev), str(tmp_path / "case"), str(tmp_path / "store"),
         str(policy)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
             STUCK_MARKER: str(marker)})
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not marker.exists():
            time.sleep(0.1)
        assert marker.exists(), "the decoder never got stuck"
        workers = descendants(proc.pid)
        assert int(marker.read_text()) in workers
    finally:
        left = sigkill_and_survivors(proc, workers)
    assert not left, f"{len(left)} worker processes outlived the scan"


def test_each_pool_worker_has_one_guard_that_ends_with_it() -> None:
    """The guards cost one small process per worker and never outlive it: none is left after
    the pool shuts down, and a worker killed by the watchdog takes its guard with it."""
    from triage.executor import LocalExecutor
    from triage.parent_watch import _GUARD

    def guards() -> dict[int, int]:
        """guard pid -> its worker's pid"""
        out = {}
        for pid in descendants(os.getpid()):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if _GUARD.encode() in cmd and alive(pid):
                out[pid] = ppid
        return out

    ex = LocalExecutor(2)
    try:
        list(ex.run([HashBatch(k, (), HashOptions()) for k in range(4)]))
        workers = set(ex._pool._processes)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(guards()) < len(workers):
            time.sleep(0.05)
        found = guards()
        assert sorted(found.values()) == sorted(workers), (found, workers)
        rss = [int(line.split()[1]) for g in found
               for line in Path(f"/proc/{g}/status").read_text().splitlines()
               if line.startswith("VmRSS:")]
        assert max(rss) < 32 * 1024, rss  # KiB: a bare interpreter, not a copy of the worker
        victim = next(iter(workers))
        os.kill(victim, signal.SIGKILL)
        gone = [g for g, w in found.items() if w == victim]
        assert not wait_gone(gone, 10), "a guard outlived its killed worker"
        # what the executor does when it meets the broken pool, so close() below shuts down
        # a working pool (waiting on a broken one's shutdown can hang)
        ex._restart()
    finally:
        ex.close()
    assert not wait_gone(set(guards()), 10), "guards outlived the pool"
