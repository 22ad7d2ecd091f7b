"""Where hashing batches run: in-process, a local process pool, or (seam) a Dask cluster.

The pipeline only sees `Executor.run(batches)`: it feeds a lazy stream of batches and gets
results back as they finish, with at most `max_in_flight` batches outstanding and, for the
local pool, at most `max_in_flight_bytes` of archive-member bytes held for the workers (a
memory budget, not a count: a few 256 MiB members must not be in flight at once), so memory
stays bounded however large the evidence is. Pool workers end when the scan dies
(`triage.parent_watch`), and a worker whose decoder is stuck past the hard per-file time
limit is killed and replaced (`triage.watchdog`). A distributed engine is added as one new module
`triage/dask_executor.py` defining `DaskExecutor(address, workers)` with the same methods;
`make_executor` imports it only when `--scheduler` is given.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Protocol

from hashing.errors import TriageError
from hashing.hasher import HashOptions
from hashing.i18n import tr
from hashing.types import HashRecord
from triage import watchdog
from triage.batches import BatchResult, HashBatch, HashTask, hash_batch
from triage.parent_watch import watch_parent
from triage.worker_threads import limit_threads

DASK_MODULE = "triage.dask_executor"
LOCAL_DASK = "local-dask"  # `--scheduler local-dask`: a LocalCluster on this machine
# Archive-member bytes the parent may hold for batches sent to local workers; one batch is
# always let through, so a single member up to `max_member_bytes` still goes.
DEFAULT_IN_FLIGHT_BYTES = 128 << 20
WATCH_SECONDS = 0.25  # how often the parent looks for a decode past its hard deadline
CLOSE_GRACE_SECONDS = 5.0  # how long close() lets idle workers exit before killing them
KILL_WAIT_SECONDS = 10.0  # bound on waiting for a SIGKILLed worker (one in uninterruptible I/O)


class ExecutorError(TriageError):
    """The requested executor cannot be started (names the scheduler)."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for a `tls://` scheduler: the CA that signed the cluster's certificates, and
    this client's certificate and key (mutual TLS: the scheduler checks the client too)."""

    ca: Path
    cert: Path
    key: Path


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


def _init_worker(parent: int, slots: Any, lock: Any, workers: int) -> None:
    """Pool initializer: end with the scan, take a watchdog slot, and keep to one core
    (`triage.worker_threads`)."""
    watch_parent(parent)
    watchdog.claim(slots, lock, workers)
    limit_threads()


def _sigkill(pid: int) -> None:
    """SIGKILL a worker; one that has already ended is not an error."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _still_running(sentinels: dict[int, int], seconds: float) -> dict[int, int]:
    """Of `sentinels` (a worker's sentinel -> its pid), those not ended within `seconds`."""
    deadline = time.monotonic() + seconds
    while sentinels:
        ended = multiprocessing.connection.wait(
            list(sentinels), timeout=max(0.0, deadline - time.monotonic()))
        if not ended:
            break
        sentinels = {s: pid for s, pid in sentinels.items() if s not in ended}
    return sentinels


def _end_pool(pool: ProcessPoolExecutor, grace: float) -> None:
    """Shut `pool` down, SIGKILLing workers still alive after `grace` seconds, and return
    once they have ended.

    `shutdown(wait=True)` alone can wait forever: a worker busy with a task that never returns
    keeps the pool from sending any worker its stop message, and a worker killed while it held
    the call queue's read lock (an idle worker blocks in the queue's read holding it) leaves
    the others blocked on that lock. Exit is watched on each worker's sentinel (ready once the
    worker has been reaped), never by joining the processes, which the pool's own manager
    thread joins.
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    left = _still_running({proc.sentinel: proc.pid for proc in procs}, grace)
    for pid in left.values():
        _sigkill(pid)
    _still_running(left, KILL_WAIT_SECONDS)


def _digests_only(opts: HashOptions) -> HashOptions:
    return HashOptions(algorithms=opts.digests)


def _crashed(task: HashTask) -> HashRecord:
    return HashRecord(path=task.path, status="error",
                      error="the decoder crashed its worker process (hostile or corrupt file)")


class LocalExecutor:
    """A process pool on this machine; batches, not files, are the unit sent to workers.

    A file that kills its worker (a decoder crash) breaks the whole pool: the batches that
    were in flight are then re-run one file at a time in a fresh pool, so only the culprit
    becomes an error row and the scan goes on. A decode still running past its hard deadline
    (`triage.watchdog`) gets its worker killed the same way; that file is not decoded again,
    only its digests are computed, and its row says `decode time limit`.
    """

    def __init__(self, workers: int,
                 fn: Callable[[HashBatch], BatchResult] = hash_batch,
                 max_in_flight_bytes: int = DEFAULT_IN_FLIGHT_BYTES) -> None:
        self.workers = workers
        self._fn = fn  # the batch function; tests swap in one that crashes on purpose
        self.max_in_flight = 2 * workers
        self.max_in_flight_bytes = max_in_flight_bytes
        self.peak_in_flight_bytes = 0  # the most member bytes held at once (tests, audit)
        self.killed = 0  # workers killed by the watchdog
        self._timed_out: set[tuple[int, int]] = set()  # (batch seq, task index) killed
        self._ctx = _pool_context()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        self._slots = watchdog.Slots(self._ctx, self.workers)
        return ProcessPoolExecutor(
            self.workers, mp_context=self._ctx, initializer=_init_worker,
            initargs=(os.getpid(), self._slots.values, self._slots.lock, self.workers))

    def _kill_overdue(self) -> None:
        """SIGKILL every worker whose decode is past its hard deadline; remember its task."""
        ours = getattr(self._pool, "_processes", None) or {}
        for late in self._slots.overdue():
            if (late.seq, late.index) in self._timed_out or (ours and late.pid not in ours):
                continue
            self._timed_out.add((late.seq, late.index))
            self.killed += 1
            _sigkill(late.pid)

    def _wait(self, futures: Iterable[Future[BatchResult]]) -> set[Future[BatchResult]]:
        """`wait(FIRST_COMPLETED)`, looking out for stuck decodes while it waits."""
        while True:
            done, _ = wait(futures, timeout=WATCH_SECONDS, return_when=FIRST_COMPLETED)
            if done:
                return done
            self._kill_overdue()

    def _restart(self) -> None:
        """A fresh pool for a broken one: nothing the old pool still runs is wanted (its
        batches are re-run), so its remaining workers are killed at once."""
        _end_pool(self._pool, grace=0.0)
        self._pool = self._new_pool()

    def _isolate(self, batch: HashBatch) -> BatchResult:
        records: list[HashRecord] = []
        seconds = 0.0
        worker = "isolated"
        for index, task in enumerate(batch.tasks):
            res = self._alone(batch, index, task)
            if res is None:
                records.append(_crashed(task))
                continue
            records.extend(res.records)
            seconds += res.seconds
            worker = res.worker
        return BatchResult(batch.seq, tuple(records), seconds, worker)

    def _alone(self, batch: HashBatch, index: int, task: HashTask) -> BatchResult | None:
        """Task `index` of `batch` run by itself; None if it crashed its worker. A task the
        watchdog ended (before, or now) is hashed for its digests only, and is an error row."""
        while True:
            stuck = (batch.seq, index) in self._timed_out
            opts = _digests_only(batch.opts) if stuck else batch.opts
            fut = self._pool.submit(self._fn, HashBatch(batch.seq, (task,), opts, index))
            self._wait([fut])
            try:
                res = fut.result()
            except BrokenProcessPool:
                self._restart()
                if stuck or (batch.seq, index) not in self._timed_out:
                    return None  # a crash (or its digests alone crashed)
                continue  # the watchdog ended it just now: digests only
            if not stuck:
                return res
            error = watchdog.timed_out_error(batch.opts.decode_seconds)
            return replace(res, records=tuple(replace(r, status="error", error=error)
                                              for r in res.records))

    def run(self, batches: Iterable[HashBatch]) -> Iterator[BatchResult]:
        pending: dict[Future[BatchResult], HashBatch] = {}
        source = iter(batches)
        exhausted = False
        held = 0  # member bytes of the pending batches
        while True:
            # the next batch is only pulled from the walk while the budget has room, so the
            # walk itself pauses instead of reading more members into memory
            while (not exhausted and len(pending) < self.max_in_flight
                   and (not pending or held < self.max_in_flight_bytes)):
                batch = next(source, None)
                if batch is None:
                    exhausted = True
                else:
                    pending[self._pool.submit(self._fn, batch)] = batch
                    held += batch.data_bytes
                    self.peak_in_flight_bytes = max(self.peak_in_flight_bytes, held)
            if not pending:
                return
            done = self._wait(pending)
            broken: list[HashBatch] = []
            for fut in done:
                batch = pending.pop(fut)
                held -= batch.data_bytes
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken.append(batch)
                    continue
                yield result
            if broken:
                broken.extend(pending.values())  # everything in flight died with the pool
                pending.clear()
                held = 0
                self._restart()
                for batch in broken:
                    yield self._isolate(batch)

    def describe(self) -> dict[str, Any]:
        return {"executor": "local", "workers": self.workers,
                "stuck_workers_killed": self.killed}

    def close(self) -> None:
        _end_pool(self._pool, grace=CLOSE_GRACE_SECONDS)


def scan_cores(workers: int | None, scheduler: str | None) -> int | None:
    """The cores a scan with these arguments works on (its hashing workers, then its own
    matching threads); None for a remote cluster, whose size says nothing about this host."""
    if scheduler:
        return (workers or default_workers()) if scheduler == LOCAL_DASK else None
    return max(1, default_workers() if workers is None else workers)


def make_executor(workers: int | None, scheduler: str | None, *, tls: TlsFiles | None = None,
                  insecure: bool = False, connect_timeout: str | None = None) -> Executor:
    """`--workers 0` runs inline; `--scheduler ADDRESS` hands over to the Dask module
    (`tls`, `insecure`: how it may connect; see `triage.dask_executor.security_for`)."""
    if scheduler:
        try:
            module = importlib.import_module(DASK_MODULE)
        except ModuleNotFoundError as exc:
            raise ExecutorError(tr(
                "--scheduler {scheduler}: distributed execution is not available ({reason})",
                scheduler=scheduler, reason=str(exc))) from exc
        extra = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
        executor: Executor = module.DaskExecutor(scheduler, workers, tls=tls, insecure=insecure,
                                                 **extra)
        return executor
    n = default_workers() if workers is None else workers
    if n <= 0:
        return InlineExecutor()
    return LocalExecutor(n)
