"""Walk -> hashing batches -> executor -> one settled outcome per walk item.

The runner turns a walk into batches of hashing work, runs them on an executor and hands on
every item settled: hashed (a record from a worker), plain (a symlink, special file or walk
error the walk already described) or reused (a case row the caller says is still valid).
It writes nothing itself; the caller's `record` callback does. At most the executor's in-flight
batches are held, so memory does not grow with the evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from hashing.hasher import HashOptions
from hashing.types import HashRecord
from triage.batches import INTERNAL_ERROR, HashBatch, HashTask
from triage.executor import Executor
from triage.identity import Location, is_within
from triage.walk import WalkItem

BATCH_BYTES = 32 << 20  # cap on archive-member bytes held by one batch
SETTLE_CHUNK = 512  # settled-without-hashing outcomes handed on together


@dataclass(frozen=True, slots=True)
class Settled:
    """One walk item's outcome. `record` is None when the caller's stored row was reused."""

    path: str
    record: HashRecord | None
    archive_error: bool = False
    final: bool = True  # False: our own code failed on it, so a rerun hashes it again
    location: Location = field(kw_only=True)  # the row's identity (`triage.identity`)


def plain_record(item: WalkItem) -> HashRecord:
    """The manifest row of an item the walk already settled (symlink, special, walk error)."""
    return HashRecord(
        path=item.path, status=item.status if item.status != "pending" else "skipped",
        error=item.reason if item.status == "error" else None, reason=item.reason,
        size=item.size, mtime=item.mtime, kind=item.kind, link_target=item.link_target,
    )


def _task(item: WalkItem) -> HashTask:
    member = item.kind == "archive_member"
    return HashTask(
        path=item.path, fs_path=None if member else (item.fs_path or item.path),
        data=item.data if member else None, size=item.size, mtime=item.mtime, kind=item.kind,
        reason=item.reason, archive_error=item.archive_error, location=item.location,
    )


def _hashed(task: HashTask, rec: HashRecord) -> Settled:
    full = replace(rec, path=task.path, size=task.size, mtime=task.mtime,
                   kind=task.kind, reason=task.reason or rec.reason)  # type: ignore[arg-type]
    return Settled(task.path, full, task.archive_error,
                   final=not (rec.error or "").startswith(INTERNAL_ERROR), location=task.location)


class Runner:
    """One pass of walk items through an executor; counts what it walked, reused and sent."""

    def __init__(self, opts: HashOptions, executor: Executor, batch_size: int,
                 reusable: Callable[[WalkItem], bool] = lambda item: False) -> None:
        self.opts = opts
        self.executor = executor
        self.batch_size = batch_size
        self.reusable = reusable
        self.walked = 0
        self.reused = 0
        self.sent = 0
        self.workers: set[str] = set()
        self.hash_seconds = 0.0  # hashing time summed over the workers

    def run(self, items: Iterable[WalkItem], record: Callable[[list[Settled]], None]) -> None:
        """Hand every item's outcome to `record`, in chunks, as soon as it is settled.

        Items that need no hashing are handed on from inside the walk, so a rerun that
        reuses every row holds no more than one chunk.
        """
        in_flight: dict[int, HashBatch] = {}

        def tracked() -> Iterator[HashBatch]:
            for batch in self._batches(items, record):
                in_flight[batch.seq] = batch
                yield batch

        for result in self.executor.run(tracked()):
            batch = in_flight.pop(result.seq)
            self.workers.add(result.worker)
            self.hash_seconds += result.seconds
            record([_hashed(t, r) for t, r in zip(batch.tasks, result.records, strict=True)])

    def _batches(self, items: Iterable[WalkItem],
                 record: Callable[[list[Settled]], None]) -> Iterator[HashBatch]:
        tasks: list[HashTask] = []
        nbytes = 0
        chunk: list[Settled] = []
        seq = 0
        # Members of an archive that changed are hashed again even when their own header
        # (size, mtime) looks unchanged: a replaced archive can repeat both with new content.
        changed_archive: Location | None = None
        for item in items:
            self.walked += 1
            if item.kind == "file":
                changed_archive = None
            in_changed = changed_archive is not None and is_within(item.location,
                                                                   changed_archive)
            if item.status != "pending" or item.kind not in ("file", "archive_member"):
                chunk.append(Settled(item.path, plain_record(item), item.archive_error,
                                     location=item.location))
            elif not in_changed and self.reusable(item):
                chunk.append(Settled(item.path, None, location=item.location))
                self.reused += 1
            else:
                tasks.append(_task(item))
                nbytes += len(item.data or b"")
                if item.kind == "file":
                    changed_archive = item.location
            if len(chunk) >= SETTLE_CHUNK:
                record(chunk)
                chunk = []
            if len(tasks) >= self.batch_size or nbytes >= BATCH_BYTES:
                yield HashBatch(seq, tuple(tasks), self.opts)
                seq += 1
                self.sent += len(tasks)
                tasks, nbytes = [], 0
        if chunk:
            record(chunk)
        if tasks:
            self.sent += len(tasks)
            yield HashBatch(seq, tuple(tasks), self.opts)
