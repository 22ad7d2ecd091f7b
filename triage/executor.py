"""Where hashing batches run: in-process, a local process pool, or (seam) a Dask cluster.

The pipeline only sees `Executor.run(batches)`: it feeds a lazy stream of batches and gets
results back as they finish, with at most `max_in_flight` batches outstanding so memory stays
bounded however large the evidence is. A distributed engine is added as one new module
`triage/dask_executor.py` defining `DaskExecutor(address, workers)` with the same methods;
`make_executor` imports it only when `--scheduler` is given.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any, Protocol

from hashing.errors import TriageError
from hashing.types import HashRecord
from triage.batches import BatchResult, HashBatch, HashTask, hash_batch

DASK_MODULE = "triage.dask_executor"


class ExecutorError(TriageError):
    """The requested executor cannot be started (names the scheduler)."""


class Executor(Protocol):
    def run(self, batches: Iterable[HashBatch]) -> Iterator[BatchResult]:
        """Results in completion order; each batch's result exactly once."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the audit log records about where the work ran."""
        ...

    def close(self) -> None: ...


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


class InlineExecutor:
    """Hashes in the calling process (`--workers 0`): simplest to debug and profile."""

    def run(self, batches: Iterable[HashBatch]) -> Iterator[BatchResult]:
        for batch in batches:
            yield hash_batch(batch)

    def describe(self) -> dict[str, Any]:
        return {"executor": "inline", "workers": 0}

    def close(self) -> None:
        return None


def _pool_context() -> BaseContext:
    """Workers forked from a clean server that has already imported the hashing code.

    Plain fork would copy the parent's SQLite handle and thread pools (numba, FAISS)
    mid-state; spawn would re-import NumPy, OpenCV and numba in every worker.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["triage.batches", "hashing.algorithms.pdq", "hashing.algorithms.video"]
    )
    return ctx


def _crashed(task: HashTask) -> HashRecord:
    return HashRecord(path=task.path, status="error",
                      error="the decoder crashed its worker process (hostile or corrupt file)")


class LocalExecutor:
    """A process pool on this machine; batches, not files, are the unit sent to workers.

    A file that kills its worker (a decoder crash) breaks the whole pool: the batches that
    were in flight are then re-run one file at a time in a fresh pool, so only the culprit
    becomes an error row and the scan goes on.
    """

    def __init__(self, workers: int,
                 fn: Callable[[HashBatch], BatchResult] = hash_batch) -> None:
        self.workers = workers
        self._fn = fn  # the batch function; tests swap in one that crashes on purpose
        self.max_in_flight = 2 * workers
        self._ctx = _pool_context()
        self._pool = ProcessPoolExecutor(workers, mp_context=self._ctx)

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=self._ctx)

    def _isolate(self, batch: HashBatch) -> BatchResult:
        records: list[HashRecord] = []
        seconds = 0.0
        worker = "isolated"
        for task in batch.tasks:
            one = HashBatch(batch.seq, (task,), batch.opts)
            try:
                res = self._pool.submit(self._fn, one).result()
            except BrokenProcessPool:
                self._restart()
                records.append(_crashed(task))
                continue
            records.extend(res.records)
            seconds += res.seconds
            worker = res.worker
        return BatchResult(batch.seq, tuple(records), seconds, worker)

    def run(self, batches: Iterable[HashBatch]) -> Iterator[BatchResult]:
        pending: dict[Future[BatchResult], HashBatch] = {}
        source = iter(batches)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.max_in_flight:
                batch = next(source, None)
                if batch is None:
                    exhausted = True
                else:
                    pending[self._pool.submit(self._fn, batch)] = batch
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken: list[HashBatch] = []
            for fut in done:
                batch = pending.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken.append(batch)
                    continue
                yield result
            if broken:
                broken.extend(pending.values())  # everything in flight died with the pool
                pending.clear()
                self._restart()
                for batch in broken:
                    yield self._isolate(batch)

    def describe(self) -> dict[str, Any]:
        return {"executor": "local", "workers": self.workers}

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def make_executor(workers: int | None, scheduler: str | None) -> Executor:
    """`--workers 0` runs inline; `--scheduler ADDRESS` hands over to the Dask module."""
    if scheduler:
        try:
            module = importlib.import_module(DASK_MODULE)
        except ModuleNotFoundError as exc:
            raise ExecutorError(
                f"--scheduler {scheduler}: distributed execution is not available ({exc})"
            ) from exc
        executor: Executor = module.DaskExecutor(scheduler, workers)
        return executor
    n = default_workers() if workers is None else workers
    if n <= 0:
        return InlineExecutor()
    return LocalExecutor(n)
