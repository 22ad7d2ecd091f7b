"""Hashing batches on a Dask distributed cluster (`triage scan --scheduler ADDRESS`).

Dask owns scheduling, worker liveness and re-running the tasks of a lost worker; we do not
write a scheduler. What this module adds is the scan's contract on top of it:

- batches, not files, are the unit sent (the pipeline sizes them), with a bounded number in
  flight and the archive-member bytes they carry bounded by the same memory budget as the
  local pool (`max_in_flight_bytes`), so the client's memory stays flat however large the
  evidence is;
- a decoder stuck in C code past the hard per-file time limit ends its worker process
  (`triage.watchdog.use_native_timer`; Dask's nanny starts a new one); the batch that lost
  workers that way (`KilledWorker`) is run again one task at a time, and the task that still
  ends its worker becomes an error row (`decode time limit or decoder crash`);
- results stream back in completion order and the client alone writes the case database, so
  resume, the manifest and the queue behave exactly as in a local scan;
- a lost worker costs only its in-flight batches: the scheduler re-runs them elsewhere (up
  to `distributed.scheduler.allowed-failures` times) and each batch's result reaches the
  pipeline exactly once, because every batch is one future read once;
- workers read files by path, which assumes every worker mounts the evidence at the same
  path; a worker that cannot see a path says so in the record instead of guessing.

`--scheduler local-dask` starts a LocalCluster on loopback for trying it out.

A Dask scheduler runs whatever any client that reaches it sends, and the bytes sent (archive
members) and the hashes that come back are evidence. So a scheduler is reached over `tls://`
with mutual certificates (Dask's own `distributed.security.Security`, from `--tls-ca`,
`--tls-cert`, `--tls-key` or Dask's `distributed.comm.tls.*` config, with
`require_encryption`), and a plain `tcp://` scheduler is refused unless it is on a loopback
address or the user passed `--insecure` (`security_for`).
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from hashing.i18n import tr
from hashing.types import HashRecord
from triage import watchdog
from triage.batches import BatchResult, HashBatch, hash_batch
from triage.executor import (
    DEFAULT_IN_FLIGHT_BYTES,
    LOCAL_DASK,
    ExecutorError,
    TlsFiles,
    default_workers,
)
from triage.worker_threads import limit_threads

__all__ = ["LOCAL", "DaskExecutor", "TlsFiles", "hash_batch_on_worker", "security_for"]

LOCAL = LOCAL_DASK
CONNECT_TIMEOUT = "20s"
NOT_VISIBLE = "path not visible on worker"
_DECODERS = ("hashing.algorithms.pdq", "hashing.algorithms.video", "hashing.decode")
NANNY_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
# What the cluster `local-dask` starts runs with. Dask starts its workers with
# MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap threshold: every image-sized
# buffer a decode frees goes back to the kernel and the next one faults in fresh pages
# (measured: 3.3x the page faults and ~85 % more CPU per hashed photo), so hashing workers
# keep glibc's defaults, as local pool workers do. The rest are Dask's housekeeping timers, made
# for a dashboard on a long-lived cluster: a statistical profiler sampling every worker's stack
# each 10 ms, event-loop health ticks each 20 ms, memory checks each 100 ms, system monitors each
# 500 ms. Together they woke an idle 2-worker cluster often enough to cost 3.5 % of a core in
# the scan's process (which hosts the scheduler) and 2.5 % in each worker; at the values below,
# 0.7 % and 0.3 %. Nothing here is used by a scan (no dashboard; limits are the scan's own), and
# work stealing is off because the scan already keeps just two batches per worker in flight.
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    NANNY_MALLOC_TRIM: None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing": False,
}


def hash_batch_on_worker(batch: HashBatch) -> BatchResult:
    """`hash_batch`, plus a clear error for files this worker's storage does not show.

    A decode past its hard deadline ends this worker process (`triage.watchdog`); the
    decoders are imported first, so a fresh worker's imports never count against it (local
    pool workers get them from the forkserver's preload). The worker is held to one thread
    per library from its first batch on."""
    for module in _DECODERS:
        importlib.import_module(module)
    watchdog.use_native_timer()
    limit_threads()
    result = hash_batch(batch)
    missing = [
        i for i, task in enumerate(batch.tasks)
        if task.fs_path is not None and not os.path.lexists(task.fs_path)
    ]
    if not missing:
        return result
    host = socket.gethostname()
    records = list(result.records)
    for i in missing:
        records[i] = replace(
            records[i], status="error",
            error=f"{NOT_VISIBLE} {host}: every worker must mount the evidence at the same path",
        )
    return replace(result, records=tuple(records))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: not resolved here, so not trusted to be loopback


def security_for(address: str, tls: TlsFiles | None, insecure: bool) -> Any:
    """The `Security` to reach `address` with, or None for plain TCP; refuses what is unsafe.

    `tls://` needs certificates (`tls`, else Dask's config) and always requires encryption;
    `tcp://` (or no scheme) is allowed on a loopback address, elsewhere only with `insecure`.
    """
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.security import Security

    scheme, loc = parse_address(address, strict=False)
    if scheme == "tls":
        if tls is not None:
            return Security(tls_ca_file=str(tls.ca), tls_client_cert=str(tls.cert),
                            tls_client_key=str(tls.key), require_encryption=True)
        configured = Security(require_encryption=True)
        if not (getattr(configured, "tls_ca_file", None)
                and getattr(configured, "tls_client_cert", None)):
            raise ExecutorError(tr(
                "--scheduler {address}: tls:// needs --tls-ca, --tls-cert and --tls-key "
                "(or distributed.comm.tls.ca-file and .client.cert in the Dask config)",
                address=address))
        return configured
    if tls is not None:
        raise ExecutorError(tr(
            "--scheduler {address}: --tls-ca/--tls-cert/--tls-key need a tls:// address",
            address=address))
    if scheme != "tcp":
        raise ExecutorError(tr("--scheduler {address}: unsupported protocol {scheme!r}",
                               address=address, scheme=scheme))
    host, _ = parse_host_port(loc)
    if not _is_loopback(host) and not insecure:
        raise ExecutorError(tr(
            "--scheduler {address}: plain tcp:// to a non-loopback address is refused: anyone "
            "who can reach the scheduler can run code on its workers and read the evidence "
            "sent in clear; use tls:// with --tls-ca/--tls-cert/--tls-key, or pass --insecure "
            "on a network you control", address=address))
    return None


class DaskExecutor:
    """Runs `HashBatch`es on a Dask cluster; the same methods as the local executors."""

    def __init__(self, address: str, workers: int | None = None, *,
                 tls: TlsFiles | None = None, insecure: bool = False,
                 connect_timeout: str = CONNECT_TIMEOUT,
                 max_in_flight_bytes: int = DEFAULT_IN_FLIGHT_BYTES,
                 fn: Callable[[HashBatch], BatchResult] = hash_batch_on_worker) -> None:
        self.max_in_flight_bytes = max_in_flight_bytes
        self.peak_in_flight_bytes = 0  # the most member bytes held for the cluster at once
        self.lost = 0  # tasks that ended their worker even when run alone
        self._fn = fn  # the batch function; tests swap in one that sticks on purpose
        try:
            from distributed import Client, LocalCluster
        except ModuleNotFoundError as exc:
            raise ExecutorError(tr(
                "--scheduler {address}: install the dask extra (pip install -e '.[dask]')",
                address=address)) from exc
        self._cluster: Any = None
        security = None if address == LOCAL else security_for(address, tls, insecure)
        try:
            if address == LOCAL:
                import dask

                with dask.config.set(LOCAL_CLUSTER_CONFIG):
                    self._cluster = LocalCluster(
                        n_workers=workers or default_workers(), threads_per_worker=1,
                        processes=True, host="127.0.0.1", dashboard_address=None,
                    )
                    self._client = Client(self._cluster)
                from triage.dask_worker_watch import EndWithScan

                self._client.register_plugin(EndWithScan(os.getpid()))
            elif security is not None:
                self._client = Client(address, timeout=connect_timeout, security=security)
            else:
                self._client = Client(address, timeout=connect_timeout)
        except (OSError, TimeoutError) as exc:
            if self._cluster is not None:
                self._cluster.close()
            raise ExecutorError(tr("--scheduler {address}: cannot connect ({reason})",
                                   address=address, reason=str(exc))) from exc
        self.address = self._client.scheduler.address
        self._client.run(limit_threads)  # OpenCV, OpenBLAS: per process (`hash_batch_on_worker`)
        n = len(self._client.scheduler_info()["workers"])
        # Two batches per worker thread keeps every worker busy while results stream back.
        threads = sum(self._client.nthreads().values()) or max(n, 1)
        self.max_in_flight = 2 * threads
        self._workers_at_start = sorted(self._client.scheduler_info()["workers"])
        self._token = uuid.uuid4().hex[:12]  # unique task keys per scan, even for equal seqs

    def run(self, batches: Iterable[HashBatch]) -> Iterator[BatchResult]:
        from distributed import KilledWorker, as_completed

        source = iter(batches)
        # Bind to our client's event loop: by default as_completed takes the process's default
        # client, and with another client present every result then waited about a second.
        pending = as_completed(loop=self._client.loop)
        sent: dict[str, HashBatch] = {}  # future key -> its batch, while in flight
        held = 0  # member bytes of the batches in flight
        exhausted = False

        def fill() -> None:
            # the next batch is pulled from the walk only while both the count and the memory
            # budget have room (one batch always goes, so a member up to the limit still does)
            nonlocal held, exhausted
            while (not exhausted and len(sent) < self.max_in_flight
                   and (not sent or held < self.max_in_flight_bytes)):
                batch = next(source, None)
                if batch is None:
                    exhausted = True
                    return
                key = f"hash-batch-{self._token}-{batch.seq}"
                pending.add(self._client.submit(self._fn, batch, pure=False, key=key))
                sent[key] = batch
                held += batch.data_bytes
                self.peak_in_flight_bytes = max(self.peak_in_flight_bytes, held)

        fill()
        for future in pending:
            batch = sent.pop(future.key)
            try:
                result: BatchResult = future.result()
            except KilledWorker:
                result = self._isolate(batch)
            future.release()
            held -= batch.data_bytes
            fill()
            yield result

    def _isolate(self, batch: HashBatch) -> BatchResult:
        """A batch whose worker died (a stuck decoder, a crash): each task alone; a task that
        still ends its worker is an error row and the rest are hashed."""
        from distributed import KilledWorker

        records: list[HashRecord] = []
        seconds = 0.0
        worker = "isolated"
        for index, task in enumerate(batch.tasks):
            one = HashBatch(batch.seq, (task,), batch.opts, index)
            future = self._client.submit(self._fn, one, pure=False,
                                         key=f"hash-task-{self._token}-{batch.seq}-{index}")
            try:
                res: BatchResult = future.result()
            except KilledWorker as exc:
                self.lost += 1
                records.append(HashRecord(path=task.path, status="error", error=(
                    f"{watchdog.DECODE_TIME_LIMIT} or decoder crash: its Dask worker died "
                    f"hashing it (hard limit {watchdog.hard_seconds(batch.opts.decode_seconds):g}"
                    f" s; {type(exc).__name__})")))
                continue
            finally:
                future.release()
            records.extend(res.records)
            seconds += res.seconds
            worker = res.worker
        return BatchResult(batch.seq, tuple(records), seconds, worker)

    def describe(self) -> dict[str, Any]:
        return {
            "executor": "dask",
            "scheduler": self.address,
            "local_cluster": self._cluster is not None,
            "workers_at_start": self._workers_at_start,
            "workers_at_end": sorted(self._client.scheduler_info()["workers"]),
        }

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()
