"""numba kernels and FAISS's OpenMP in one process, under 1 and 2 threads.

Each case runs in a fresh interpreter because numba fixes its threading layer at the first
parallel launch. The child searches the same data with our kernels (scan and multi-index) and
FAISS, alternately and from two Python threads at once, and reports what it saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from index import threading as layer  # chooses numba's layer before anything runs
from index.faiss_store import FaissBinaryIndex
from index.hamming import HammingIndex
import faiss, numba, psutil

n_threads = int(sys.argv[1])
applied = layer.set_threads(n_threads)
rng = np.random.default_rng(0)
db = rng.integers(0, 256, (60_000, 32), dtype=np.uint8)
q = rng.integers(0, 256, (40, 32), dtype=np.uint8)
db[:40] = q
indexes = {"brute": HammingIndex(db, method="brute"), "mih": HammingIndex(db, method="mih"),
           "faiss": FaissBinaryIndex(db)}

def run(name):
    lims, d, i = indexes[name].range_search(q, 31)
    return [lims.tolist(), d.tolist(), i.tolist()]

results = {name: run(name) for name in indexes}
with ThreadPoolExecutor(4) as pool:  # concurrent launches: numba and FAISS at the same time
    concurrent = list(pool.map(run, ["brute", "mih", "faiss", "mih"] * 3))
print(json.dumps({
    "applied": applied,
    "layer": layer.active_layer(),
    "numba_threads": numba.get_num_threads(),
    "faiss_threads": faiss.omp_get_max_threads(),
    "os_threads": psutil.Process().num_threads(),
    "wait_policy": __import__("os").environ.get("OMP_WAIT_POLICY"),
    "same": all(r == results["brute"] for r in list(results.values()) + concurrent),
    "matches": len(results["brute"][2]),
}))
"""


def _child(threads: int, **env: str) -> dict[str, object]:
    full_env = {**os.environ, "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2",
                "PYTHONPATH": str(ROOT), **env}
    full_env.pop("OMP_WAIT_POLICY", None)
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads)], cwd=ROOT, env=full_env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_and_faiss_share_the_process(threads: int) -> None:
    got = _child(threads)
    assert got["same"] is True and got["matches"] == 40
    assert got["applied"] == threads
    assert got["numba_threads"] == threads and got["faiss_threads"] == threads
    # the chosen layer is thread-safe (tbb or OpenMP), never the aborting workqueue
    assert got["layer"] in ("omp", "tbb")
    assert got["wait_policy"] == "PASSIVE"  # idle OpenMP threads sleep instead of spinning
    # main + numba pool + FAISS pool + the 4 test threads: no runaway thread creation
    assert isinstance(got["os_threads"], int) and got["os_threads"] <= 4 + 4 * threads + 4


def test_workqueue_fallback_serialises_concurrent_launches() -> None:
    # workqueue aborts the process on concurrent launches; kernel_lock must prevent that
    got = _child(2, NUMBA_THREADING_LAYER="workqueue")
    assert got["layer"] == "workqueue"
    assert got["same"] is True and got["matches"] == 40
