"""The unit of hashing work a scan sends to a worker: a batch of tasks in, records out.

Files are sent by path (the worker reads them from storage it can see and, for a file the
walk did not open, says from the same open whether its content is a container); members of a zip or
plain tar on storage as a locator the worker reopens and inflates (`triage.archive_members`),
other archive members as bytes, because only the parent could read them; files inside a
disk image on storage as a locator the worker reopens and streams (`triage.disks`). A batch never fails as a whole:
each task yields a record, an error record when something goes wrong.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from hashing.hasher import HashOptions, hash_bytes, hash_path
from hashing.types import HashRecord
from triage import watchdog
from triage.archive_members import hash_member, is_member_locator
from triage.containers import container_kind
from triage.identity import Location


@dataclass(frozen=True, slots=True)
class HashTask:
    path: str  # record path (for archive members the ARCHIVE!/member label)
    fs_path: str | None  # where a file is read from; None for archive members
    data: bytes | None  # archive member bytes (None for a located member)
    size: int | None
    mtime: float | None
    kind: str = "file"  # manifest fields the parent fills in; the worker ignores them
    reason: str | None = None
    archive_error: bool = False
    location: Location = field(kw_only=True)  # the row's identity; the worker ignores it
    locator: tuple[Any, ...] | None = None  # a file inside a disk image (`triage.disks`)
    extra: dict[str, Any] | None = None  # manifest fields the walk found (deleted, times, ...)
    # a file the walk did not open: the worker says whether its content is a container
    find_container: bool = False


@dataclass(frozen=True, slots=True)
class HashBatch:
    seq: int
    tasks: tuple[HashTask, ...]
    opts: HashOptions
    first: int = 0  # index of tasks[0] in the batch `seq` was made as (a task re-run alone)

    @property
    def nbytes(self) -> int:
        return sum(t.size or 0 for t in self.tasks)

    @property
    def data_bytes(self) -> int:
        """Member bytes this batch carries (files are sent by path and cost nothing here)."""
        return sum(len(t.data) for t in self.tasks if t.data is not None)


@dataclass(frozen=True, slots=True)
class BatchResult:
    seq: int
    records: tuple[HashRecord, ...]  # in task order
    seconds: float  # hashing time inside the worker
    worker: str  # host:pid, for the audit log
    # per task asked to (`find_container`): "archive" or "image" when its content is one, ""
    # when it is not; None, or a result without them, when nobody could tell
    containers: tuple[str | None, ...] = ()


INTERNAL_ERROR = "internal error"  # prefix of records a rerun should hash again


def _hash_one(task: HashTask, opts: HashOptions) -> tuple[HashRecord, str | None]:
    """The task's record and, if asked, what container its content is (see `BatchResult`)."""
    if task.find_container and task.fs_path is not None:
        found: list[str] = []

        def inspect(f: BinaryIO) -> None:
            try:
                found.append(container_kind(f, os.fstat(f.fileno()).st_size) or "")
            except Exception:  # noqa: BLE001 - then the parent looks for itself
                pass

        rec = _hash_plain(task, opts, inspect)
        return rec, found[0] if found else None
    return _hash_plain(task, opts, None), None


def _hash_plain(task: HashTask, opts: HashOptions,
                inspect: Callable[[BinaryIO], None] | None) -> HashRecord:
    try:
        if task.data is not None:
            return hash_bytes(task.data, task.path, opts, size=task.size, mtime=task.mtime)
        if is_member_locator(task.locator):
            assert task.locator is not None
            return hash_member(task.locator, task.path, opts, size=task.size, mtime=task.mtime)
        if task.locator is not None:
            from triage.disks import hash_located

            return hash_located(task.locator, task.path, opts, mtime=task.mtime)
        assert task.fs_path is not None
        return hash_path(task.fs_path, opts, inspect)
    except Exception as exc:  # noqa: BLE001 - one bad item must never abort the batch
        return HashRecord(path=task.path, status="error",
                          error=f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}")


def hash_batch(batch: HashBatch) -> BatchResult:
    """Hash every task of `batch` (module level so process pools and Dask can pickle it)."""
    start = time.perf_counter()
    records = []
    containers = []
    for index, task in enumerate(batch.tasks, batch.first):
        watchdog.task_started(batch.seq, index)  # what a watchdog names if this one sticks
        rec, container = _hash_one(task, batch.opts)
        records.append(rec)
        containers.append(container)
    return BatchResult(
        batch.seq, tuple(records), time.perf_counter() - start,
        f"{socket.gethostname()}:{os.getpid()}", tuple(containers)
    )
