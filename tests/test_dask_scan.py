"""A scan on a real Dask LocalCluster (processes, loopback) gives the same manifest and queue
as a local scan, also when a worker is killed part-way, and records where the work ran."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hashing import time_limit
from hashing.hasher import HashOptions, hash_path
from index.bank_import import ImportOptions
from index.banks import BankStore
from synthetic_fixtures.evidence import make_evidence
from triage.batches import HashBatch, HashTask
from triage.dask_executor import NOT_VISIBLE, DaskExecutor, hash_batch_on_worker
from triage.identity import fs_location
from triage.pipeline import ScanConfig, run_scan
from triage.worker_threads import THREAD_VARIABLES, thread_counts

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.dask


class KillOnceAfterFirstBatch(distributed.WorkerPlugin):
    """Kills the worker process that first finishes a hash batch, exactly once per marker."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "memory" or not str(key).startswith("hash-batch"):
            return
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(1)  # the result held by this worker is lost with it


def _outputs(case: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    manifest = [json.loads(x) for x in (case / "manifest.jsonl").read_text().splitlines()]
    queue = [json.loads(x) for x in (case / "queue.jsonl").read_text().splitlines()]
    return manifest, queue


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dask")
    make_evidence(root / "evidence", seed=11, n_images=14, n_videos=1)
    images = sorted(p for p in (root / "evidence").rglob("IMG_*") if p.is_file())
    hashed = [hash_path(str(p), HashOptions()) for p in images]
    usable = [r for r in hashed if r.status == "hashed" and "pdq" in r.hashes]
    bank = root / "bank.csv"
    with open(bank, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "md5", "pdq", "category"])
        w.writerow(["D-1", usable[0].hashes["md5"], "", "1"])
        w.writerow(["D-2", "", usable[1].hashes["pdq"], "2"])
    with BankStore(root / "store") as store:
        store.import_file(str(bank), ImportOptions(bank="bad", format="csv", scheme="vic"))
    local = run_scan(ScanConfig(evidence=(root / "evidence",), case_dir=root / "local",
                                store_dir=root / "store", workers=1, batch_size=4))
    return {"root": root, "local": _outputs(local.case_dir)}


@pytest.fixture(scope="module")
def cluster() -> Any:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c:
        yield c


def _audit_end(case: Path) -> dict[str, Any]:
    events = [json.loads(x) for x in (case / "audit.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] == "scan_finished"][-1]


def test_distributed_scan_equals_local(setup: dict[str, Any], cluster: Any) -> None:
    root = setup["root"]
    result = run_scan(ScanConfig(evidence=(root / "evidence",), case_dir=root / "dist",
                                 store_dir=root / "store", scheduler=cluster.scheduler_address,
                                 batch_size=4))
    assert _outputs(result.case_dir) == setup["local"]
    run = _audit_end(result.case_dir)["run"]
    assert run["executor"]["executor"] == "dask"
    assert run["executor"]["scheduler"] == cluster.scheduler_address
    assert len(run["executor"]["workers_at_start"]) == 2
    assert run["workers_seen"]


def test_dask_workers_hash_with_one_thread_per_library(setup: dict[str, Any],
                                                       cluster: Any) -> None:
    executor = DaskExecutor(cluster.scheduler_address)
    executor.close()
    with distributed.Client(cluster.scheduler_address) as client:
        seen = client.run(lambda: {"counts": thread_counts(),
                                   "env": {v: os.environ.get(v) for v in THREAD_VARIABLES}})
    assert len(seen) == 2
    for s in seen.values():
        assert s["counts"]["opencv"] == 1 and s["counts"].get("openblas", 1) == 1
        assert s["env"] == dict.fromkeys(THREAD_VARIABLES, "1")


def test_worker_killed_mid_scan_loses_nothing(setup: dict[str, Any], cluster: Any) -> None:
    root = setup["root"]
    marker = root / "killed"
    with distributed.Client(cluster.scheduler_address) as client:
        client.register_plugin(KillOnceAfterFirstBatch(str(marker)), name="kill-once")
        try:
            result = run_scan(ScanConfig(
                evidence=(root / "evidence",), case_dir=root / "killed-case",
                store_dir=root / "store", scheduler=cluster.scheduler_address, batch_size=4))
        finally:
            client.unregister_worker_plugin("kill-once")
    assert marker.exists(), "the plugin never killed a worker: the test proved nothing"
    manifest, queue = _outputs(result.case_dir)
    assert (manifest, queue) == setup["local"]
    paths = [m["path"] + (m.get("path_bytes_hex") or "") for m in manifest]
    assert len(paths) == len(set(paths))


def test_local_dask_scheduler_runs(setup: dict[str, Any]) -> None:
    root = setup["root"]
    result = run_scan(ScanConfig(evidence=(root / "evidence",), case_dir=root / "ld",
                                 store_dir=root / "store", scheduler="local-dask", workers=1,
                                 batch_size=8))
    assert _outputs(result.case_dir) == setup["local"]
    assert _audit_end(result.case_dir)["run"]["executor"]["local_cluster"] is True


def test_worker_that_cannot_see_a_path_says_so(tmp_path: Path) -> None:
    present = tmp_path / "a.bin"
    present.write_bytes(b"hello")
    tasks = tuple(HashTask(path=str(p), fs_path=str(p), data=None, size=5, mtime=0.0,
                           location=fs_location(os.fsencode(p), os.fsencode(p)))
                  for p in (present, tmp_path / "gone.jpg"))
    try:
        result = hash_batch_on_worker(HashBatch(seq=0, tasks=tasks, opts=HashOptions()))
    finally:
        time_limit.set_watch(None)  # this process is not a Dask worker: no native timer
    ok, missing = result.records
    assert ok.status == "hashed" and ok.hashes["md5"] == "5d41402abc4b2a76b9719d911017c592"
    assert missing.status == "error" and missing.error.startswith(NOT_VISIBLE)


def test_member_bytes_in_flight_follow_the_memory_budget() -> None:
    """Batches of 400 KiB members with a 500 KiB budget: at most two are held for the cluster
    at once, where the count limit alone (2 per worker thread) lets four go; every batch's
    result still comes back exactly once."""
    from triage.dask_executor import LOCAL, DaskExecutor
    from triage.identity import member_location

    member = 400 << 10
    opts = HashOptions(algorithms=("md5",))

    def batches() -> list[HashBatch]:
        out = []
        for k in range(10):
            data = bytes([k]) * member
            loc = member_location(fs_location(b"/ev", f"/ev/a{k}.zip".encode()), "zip", 0)
            out.append(HashBatch(k, (HashTask(f"/ev/a{k}.zip!/m.bin", None, data, member, 0.0,
                                              kind="archive_member", location=loc),), opts))
        return out

    bounded = DaskExecutor(LOCAL, 2, max_in_flight_bytes=500 << 10)
    try:
        assert bounded.max_in_flight == 4
        got = sorted(r.seq for r in bounded.run(batches()))
    finally:
        bounded.close()
    assert got == list(range(10))
    assert bounded.peak_in_flight_bytes == 2 * member  # one over 500 KiB, then it waits
    counted = DaskExecutor(LOCAL, 2)  # the default 128 MiB budget: only the count binds
    try:
        assert len(list(counted.run(batches()))) == 10
    finally:
        counted.close()
    assert counted.peak_in_flight_bytes == 4 * member


def test_local_dask_runs_without_dask_housekeeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster `local-dask` starts: workers keep glibc's malloc defaults and run no
    statistical profiler, its processes tick once a second and the scheduler steals no work;
    each of these is Dask's default otherwise."""
    import dask

    # A Nanny copies its spawn variables into its own process's environment, and a variable
    # already there wins over the config: the `cluster` fixture's default Nanny left one here.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)

    from triage.dask_executor import LOCAL

    def worker_view() -> tuple[str | None, bool, str]:
        return (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                bool(dask.config.get("distributed.worker.profile.enabled")),
                str(dask.config.get("distributed.admin.tick.interval")))

    assert dask.config.get("distributed.worker.profile.enabled") is True
    executor = DaskExecutor(LOCAL, 2)
    try:
        views = executor._client.run(worker_view)
        scheduler = executor._cluster.scheduler
        assert "stealing" not in scheduler.extensions
        assert scheduler.periodic_callbacks["tick"].callback_time == 1000
    finally:
        executor.close()
    assert sorted(views.values()) == [(None, False, "1s")] * 2
    assert dask.config.get("distributed.worker.profile.enabled") is True  # the caller's config
