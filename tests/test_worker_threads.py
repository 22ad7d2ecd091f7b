"""Thread budgets: hashing workers run one thread per library, and a scan's own process uses
as many threads as the scan has workers (restored afterwards).

Thread counts are process state (numba fixes its pool at the first launch), so each check
runs in a fresh interpreter or in the pool's own workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hashing.hasher import HashOptions
from hashing.types import HashRecord
from triage.batches import BatchResult, HashBatch, HashTask
from triage.executor import LocalExecutor, default_workers, scan_cores
from triage.identity import fs_location
from triage.worker_threads import THREAD_VARIABLES, thread_counts

ROOT = Path(__file__).resolve().parents[1]
_LOC = fs_location(b"/e", b"/e")


def report_threads(batch: HashBatch) -> BatchResult:
    """Batch function: each record's path says the worker's thread counts and environment."""
    seen = json.dumps({"counts": thread_counts(),
                       "env": {v: os.environ.get(v) for v in THREAD_VARIABLES}})
    return BatchResult(batch.seq, tuple(HashRecord(path=seen, status="hashed")
                                        for _ in batch.tasks), 0.0, str(os.getpid()))


def test_local_pool_workers_run_one_thread_per_library() -> None:
    batches = [HashBatch(k, (HashTask(f"/e/{k}", None, b"", 0, 0.0, location=_LOC),),
                         HashOptions()) for k in range(6)]
    executor = LocalExecutor(2, fn=report_threads)
    try:
        seen = [json.loads(r.records[0].path) for r in executor.run(iter(batches))]
    finally:
        executor.close()
    assert len(seen) == 6
    for s in seen:
        assert s["counts"]["opencv"] == 1 and s["counts"]["numba"] == 1
        assert s["counts"].get("openblas", 1) == 1
        assert s["env"] == dict.fromkeys(THREAD_VARIABLES, "1")


CHILD = r"""
import json
from triage.worker_threads import scan_threads, thread_counts
import faiss  # loaded: the scan's process searches with it
before = thread_counts()
with scan_threads(1):
    inside = thread_counts()
after = thread_counts()
with scan_threads(None):
    untouched = thread_counts()
print(json.dumps({"before": before, "inside": inside, "after": after, "untouched": untouched}))
"""


def test_scan_threads_caps_the_scan_process_and_restores() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "2",
           "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["before"]["numba"] == 2 and got["before"]["faiss"] == 2
    assert set(got["inside"].values()) == {1}
    assert got["after"] == got["before"] == got["untouched"]


@pytest.mark.parametrize(("workers", "scheduler", "cores"), [
    (1, None, 1), (2, None, 2), (0, None, 1), (None, None, default_workers()),
    (1, "local-dask", 1), (2, "local-dask", 2), (None, "local-dask", default_workers()),
    (2, "tls://10.1.2.3:8786", None),
])
def test_scan_cores(workers: int | None, scheduler: str | None, cores: int | None) -> None:
    assert scan_cores(workers, scheduler) == cores


COLD_CACHE_CHILD = r"""
import json, sys
from hashing.hasher import HashOptions
from triage.batches import HashBatch, HashTask
from triage.executor import LocalExecutor
from triage.identity import fs_location
sys.path.insert(0, "tests")
from test_worker_threads import compile_in_worker

loc = fs_location(b"/e", b"/e")
batches = [HashBatch(k, (HashTask(f"/e/{k}", None, b"", 0, 0.0, location=loc),),
                     HashOptions()) for k in range(4)]
executor = LocalExecutor(2, fn=compile_in_worker)
try:
    print(json.dumps([r.records[0].path for r in executor.run(iter(batches))]))
finally:
    executor.close()
"""


def compile_in_worker(batch: HashBatch) -> BatchResult:
    """Batch function: compile a kernel no cache holds (what a fresh install's first scan
    does in every worker) and report the worker's numba thread count, or the error."""
    import numba

    @numba.njit(cache=False)
    def twice(x: int) -> int:
        return 2 * x

    try:
        seen = json.dumps({"value": twice(batch.seq), "numba": numba.get_num_threads()})
    except RuntimeError as e:
        seen = json.dumps({"error": str(e)})
    return BatchResult(batch.seq, tuple(HashRecord(path=seen, status="hashed")
                                        for _ in batch.tasks), 0.0, str(os.getpid()))


def test_workers_compile_kernels_after_the_thread_limit() -> None:
    """numba reads NUMBA_NUM_THREADS when a preloaded module imports it (2 here); the worker's
    limit to 1 must not make its later compiles refuse the changed value."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", COLD_CACHE_CHILD], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = sorted((json.loads(s) for s in json.loads(out.stdout.strip().splitlines()[-1])),
                  key=lambda s: s.get("value", -1))
    assert seen == [{"value": 2 * k, "numba": 1} for k in range(4)]
