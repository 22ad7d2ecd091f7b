"""The local executor: batches in, results out exactly once, and a worker killed by a file
costs only that file an error row (the rest of its batch and the other batches survive)."""

from __future__ import annotations

import os
import threading
import time

from _procs import alive

from hashing.hasher import HashOptions
from hashing.types import HashRecord
from triage.batches import BatchResult, HashBatch, HashTask
from triage.executor import InlineExecutor, LocalExecutor, make_executor
from triage.identity import fs_location


def crash_on_poison(batch: HashBatch) -> BatchResult:
    """Batch function for the executor test: a task named 'poison' kills its worker process."""
    if any(t.path.endswith("poison") for t in batch.tasks):
        os._exit(3)
    return BatchResult(batch.seq, tuple(HashRecord(path=t.path, status="hashed")
                                        for t in batch.tasks), 0.0, "w")


def stuck_on_stuck(batch: HashBatch) -> BatchResult:
    """Batch function for the close test: a task named 'stuck' never returns."""
    if any(t.path.endswith("stuck") for t in batch.tasks):
        time.sleep(3600)
    return crash_on_poison(batch)


_LOC = fs_location(b"/e", b"/e")  # the workers never look at a task's location


def test_worker_crash_costs_only_the_culprit() -> None:
    opts = HashOptions()
    batches = [HashBatch(k, tuple(HashTask(f"/e/{k}-{j}" + ("poison" if (k, j) == (2, 1) else ""),
                                           None, b"", 0, 0.0, location=_LOC)
                             for j in range(3)), opts)
               for k in range(5)]
    executor = LocalExecutor(2, fn=crash_on_poison)
    try:
        results = {r.seq: r for r in executor.run(iter(batches))}
    finally:
        executor.close()
    assert sorted(results) == list(range(5))
    records = [rec for k in range(5) for rec in results[k].records]
    assert [r.path for r in records] == [t.path for b in batches for t in b.tasks]
    bad = [r for r in records if r.status == "error"]
    assert [r.path for r in bad] == ["/e/2-1poison"] and "crashed" in (bad[0].error or "")


def test_factory_and_inline_order() -> None:
    inline = make_executor(0, None)
    assert isinstance(inline, InlineExecutor) and inline.describe()["workers"] == 0
    batch = HashBatch(7, (HashTask("/m!/a.txt", None, b"abc", 3, 0.0, kind="archive_member",
                                location=_LOC),),
                      HashOptions())
    (result,) = list(inline.run([batch]))
    assert result.seq == 7 and result.records[0].hashes["md5"] == "900150983cd24fb0d6963f7d28e17f72"


def test_close_ends_a_pool_whose_worker_never_returns() -> None:
    """close() after an abandoned run (a worker still busy, as after Ctrl-C or an error in the
    scan) returns within its grace period and leaves no worker behind, where a plain
    `shutdown(wait=True)` would wait for the task forever."""
    opts = HashOptions()
    stuck = HashBatch(0, (HashTask("/e/stuck", None, b"", 0, 0.0, location=_LOC),), opts)
    fine = HashBatch(1, (HashTask("/e/fine", None, b"", 0, 0.0, location=_LOC),), opts)
    executor = LocalExecutor(2, fn=stuck_on_stuck)
    results = executor.run(iter([stuck, fine]))
    assert next(results).seq == 1
    workers = set(executor._pool._processes)  # type: ignore[attr-defined]
    closing = threading.Thread(target=executor.close, daemon=True)
    started = time.monotonic()
    closing.start()
    closing.join(60)
    assert not closing.is_alive(), "close() waited for a task that never returns"
    assert time.monotonic() - started < 30
    assert workers and not any(alive(pid) for pid in workers)
