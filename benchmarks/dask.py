"""Dask scale-out benchmark: scan files/s on 1 vs 2 Dask workers against the local process
pool, and the fixed cost of one batch round trip, so scaling on a real cluster can be estimated.

Run: `triage bench dask [--quick]` or `python -m benchmarks.dask`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import main, write_results
from benchmarks.plots import bars, grid, save
from hashing.hasher import HashOptions
from index.banks import BankStore
from synthetic_fixtures.photos import make_photo
from triage.batches import HashBatch
from triage.executor import Executor, LocalExecutor
from triage.pipeline import ScanConfig, run_scan


def _evidence(root: Path, n: int, size: tuple[int, int]) -> int:
    from PIL import Image

    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    total = 0
    for i in range(n):
        path = root / f"d{i % 10}" / f"img_{i:05d}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(make_photo(rng, *size)).save(path, "JPEG", quality=85)
        total += path.stat().st_size
    return total


def _scan_seconds(work: Path, evidence: Path, tag: str, **cfg: Any) -> float:
    t0 = time.perf_counter()
    run_scan(ScanConfig(evidence=(evidence,), case_dir=work / f"case-{tag}",
                        store_dir=work / "store", inventory=True, **cfg))
    return time.perf_counter() - t0


def _batch_overhead(executor: Executor, n: int) -> float:
    """Seconds per round trip of an empty batch (serialise, schedule, run, return)."""
    empty = [HashBatch(seq=i, tasks=(), opts=HashOptions()) for i in range(n)]
    list(executor.run(empty[:8]))  # warm the workers (imports, numba caches)
    t0 = time.perf_counter()
    assert len(list(executor.run(empty))) == n
    return (time.perf_counter() - t0) / n


def run(out_dir: str, quick: bool = False) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from triage.dask_executor import DaskExecutor

    n_files, size = (60, (320, 240)) if quick else (400, (1024, 768))
    work = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    try:
        nbytes = _evidence(work / "evidence", n_files, size)
        BankStore(work / "store").close()
        rows, results = [], {}
        for workers in (1, 2):
            local_s = _scan_seconds(work, work / "evidence", f"local{workers}", workers=workers)
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=None) as cluster:
                dask_s = _scan_seconds(work, work / "evidence", f"dask{workers}",
                                       scheduler=cluster.scheduler_address)
                with Client(cluster.scheduler_address):
                    ex = DaskExecutor(cluster.scheduler_address)
                    dask_overhead = _batch_overhead(ex, 50 if quick else 400)
                    ex.close()
            local_ex = LocalExecutor(workers)
            local_overhead = _batch_overhead(local_ex, 50 if quick else 400)
            local_ex.close()
            results[workers] = {
                "local_seconds": local_s, "dask_seconds": dask_s,
                "local_files_per_s": n_files / local_s, "dask_files_per_s": n_files / dask_s,
                "dask_batch_overhead_ms": dask_overhead * 1e3,
                "local_batch_overhead_ms": local_overhead * 1e3,
            }
            rows.append([workers, n_files / local_s, n_files / dask_s,
                         (n_files / dask_s) / (n_files / local_s),
                         dask_overhead * 1e3, local_overhead * 1e3])
        speedup = results[2]["dask_files_per_s"] / results[1]["dask_files_per_s"]
        result = {"files": n_files, "bytes": nbytes, "image_size": size, "quick": quick,
                  "by_workers": results, "dask_speedup_2_vs_1": speedup}
        notes = (f"{n_files} JPEGs of {size[0]}x{size[1]} ({nbytes / 1e6:.1f} MB); whole scans "
                 f"(walk, hash, match, outputs). Dask 2-vs-1 worker speed-up: {speedup:.2f}x.")
        write_results(out_dir, "dask", result,
                      ["workers", "local files/s", "dask files/s", "dask/local",
                       "dask batch overhead ms", "local batch overhead ms"], rows, notes)
        fig, (ax,) = grid(1, panel_size=(5, 3.2))
        bars(ax, ["1 worker", "2 workers"],
             {"local pool": [results[w]["local_files_per_s"] for w in (1, 2)],
              "dask": [results[w]["dask_files_per_s"] for w in (1, 2)]}, "files/s")
        save(fig, Path(out_dir) / "dask.png", title="scan files/s")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(run, "dask", __doc__)
