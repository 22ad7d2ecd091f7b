"""Walk -> hashing batches -> executor -> one settled outcome per walk item: the one runner
`triage scan` (through the case database) and `triage hash` (`hash_tree`, to stdout) share.

The runner turns a walk into batches of hashing work, runs them on an executor and hands on
every item settled: hashed (a record from a worker), plain (a symlink, special file or walk
error the walk already described) or reused (a case row the caller says is still valid).
It writes nothing itself; the caller's `record` callback does. At most the executor's in-flight
batches are held, so memory does not grow with the evidence.
"""

from __future__ import annotations

import heapq
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hashing.hasher import HashOptions
from hashing.types import HashRecord
from triage.archive_members import is_member_locator, is_read_error
from triage.batches import INTERNAL_ERROR, BatchResult, HashBatch, HashTask
from triage.executor import Executor, make_executor
from triage.identity import Location, is_within
from triage.walk import DEFAULT_LIMITS, WalkItem, WalkLimits, contained, walk

BATCH_BYTES = 32 << 20  # cap on archive-member bytes held by one batch
SETTLE_CHUNK = 512  # settled-without-hashing outcomes handed on together


@dataclass(frozen=True, slots=True)
class Settled:
    """One walk item's outcome. `record` is None when the caller's stored row was reused."""

    seq: int  # position in the walk
    path: str
    record: HashRecord | None
    archive_error: bool = False
    member: bool = False  # inside a container (not a row the file system lists)
    final: bool = True  # False: our own code failed on it, so a rerun hashes it again
    location: Location = field(kw_only=True)  # the row's identity (`triage.identity`)
    extra: dict[str, Any] | None = None  # manifest fields from the walk (disk-image files)


def plain_record(item: WalkItem) -> HashRecord:
    """The manifest row of an item the walk already settled (symlink, special, walk error)."""
    return HashRecord(
        path=item.path, status=item.status if item.status != "pending" else "skipped",
        error=item.reason if item.status == "error" else None, reason=item.reason,
        size=item.size, mtime=item.mtime, kind=item.kind, link_target=item.link_target,
    )


_MEMBERS = ("archive_member", "image_member")


def _task(item: WalkItem, find_container: bool = False) -> HashTask:
    member = item.kind in _MEMBERS
    return HashTask(
        path=item.path, fs_path=None if member else (item.fs_path or item.path),
        data=item.data if member else None, size=item.size, mtime=item.mtime, kind=item.kind,
        reason=item.reason, archive_error=item.archive_error, location=item.location,
        locator=item.locator, extra=item.extra, find_container=find_container,
    )


def _hashed(seq: int, task: HashTask, rec: HashRecord) -> Settled:
    # A file's size and mtime are those of the read its digests came from (it may have
    # changed since the walk looked at it); a member's are its archive header's.
    file_read = task.fs_path is not None and rec.size is not None
    size, mtime = (rec.size, rec.mtime) if file_read else (task.size, task.mtime)
    full = replace(rec, path=task.path, size=size, mtime=mtime,
                   kind=task.kind, reason=task.reason or rec.reason)  # type: ignore[arg-type]
    archive_error = task.archive_error
    if is_member_locator(task.locator) and is_read_error(rec):
        # the row the walk writes when it cannot read a member itself: its reason first
        joined = "; ".join(r for r in (rec.reason, task.reason) if r)
        full = replace(full, error=joined, reason=joined)
        archive_error = True
    return Settled(seq, task.path, full, archive_error, task.kind in _MEMBERS,
                   final=not (rec.error or "").startswith(INTERNAL_ERROR), location=task.location,
                   extra=task.extra)


# the rows inside a file, when its content says it is a container (`triage.walk.contained`)
Expand = Callable[[str, str, Location], Iterable[WalkItem]]


class Runner:
    """One pass of walk items through an executor; counts what it walked, reused and sent.

    With `expand` the walk is one that did not open files (`walk(sniff=False)`): a file sent
    to hashing is asked, in the worker and from the read that hashes it, whether it is a
    container, and only the files that are (or of which the worker could not tell) are
    opened again here to list their members. A reused file is opened here once to look.
    """

    def __init__(self, opts: HashOptions, executor: Executor, batch_size: int,
                 reusable: Callable[[WalkItem], bool] = lambda item: False,
                 expand: Expand | None = None) -> None:
        self.opts = opts
        self.executor = executor
        self.batch_size = batch_size
        self.reusable = reusable
        self.expand = expand
        self.walked = 0
        self.reused = 0
        self.sent = 0
        self.workers: set[str] = set()
        self.hash_seconds = 0.0  # hashing time summed over the workers
        # members still to walk: (their rows, whether their container was hashed again)
        self._found: deque[tuple[Iterable[WalkItem], bool]] = deque()
        self._item_seq = 0
        self._batch_seq = 0

    def run(self, items: Iterable[WalkItem], record: Callable[[list[Settled]], None]) -> None:
        """Hand every item's outcome to `record`, in chunks, as soon as it is settled.

        Items that need no hashing are handed on from inside the walk, so a rerun that
        reuses every row holds no more than one chunk. Members of containers whose verdict
        came back after the walk ended are sent in a further round.
        """
        in_flight: dict[int, tuple[HashBatch, list[int]]] = {}

        def tracked(source: Iterator[tuple[WalkItem, bool]]) -> Iterator[HashBatch]:
            for batch, seqs in self._batches(source, record):
                in_flight[batch.seq] = (batch, seqs)
                yield batch

        source = self._with_found(items)
        while True:
            for result in self.executor.run(tracked(source)):
                batch, seqs = in_flight.pop(result.seq)
                self.workers.add(result.worker)
                self.hash_seconds += result.seconds
                record([_hashed(n, t, r) for n, t, r in
                        zip(seqs, batch.tasks, result.records, strict=True)])
                self._note_containers(batch, result)
            if not self._found:
                return
            source = self._with_found(())

    def _note_containers(self, batch: HashBatch, result: BatchResult) -> None:
        if self.expand is None:
            return
        for i, task in enumerate(batch.tasks):
            found = result.containers[i] if i < len(result.containers) else None
            if task.find_container and task.fs_path is not None and found != "":
                self._found.append((self.expand(task.path, task.fs_path, task.location), True))

    def _with_found(self, items: Iterable[WalkItem]) -> Iterator[tuple[WalkItem, bool]]:
        """The walk's items, each followed by the members found so far: (item, whether it
        lies in a container that was hashed again)."""
        for item in items:
            yield item, False
            yield from self._drain()
        yield from self._drain()

    def _drain(self) -> Iterator[tuple[WalkItem, bool]]:
        while self._found:
            members, changed = self._found.popleft()
            for member in members:
                yield member, changed

    def _batches(self, items: Iterable[tuple[WalkItem, bool]],
                 record: Callable[[list[Settled]], None]
                 ) -> Iterator[tuple[HashBatch, list[int]]]:
        tasks: list[HashTask] = []
        seqs: list[int] = []
        nbytes = 0
        chunk: list[Settled] = []
        # Members of an archive that changed are hashed again even when their own header
        # (size, mtime) looks unchanged: a replaced archive can repeat both with new content.
        changed_archive: Location | None = None
        for item, in_rehashed in items:
            n = self._item_seq
            self._item_seq += 1
            self.walked += 1
            if item.kind == "file":
                changed_archive = None
            in_changed = in_rehashed or (changed_archive is not None
                                         and is_within(item.location, changed_archive))
            if item.status != "pending" or item.kind not in ("file", *_MEMBERS):
                chunk.append(Settled(n, item.path, plain_record(item), item.archive_error,
                                     item.kind in _MEMBERS, location=item.location,
                                     extra=item.extra))
            elif not in_changed and self.reusable(item):
                chunk.append(Settled(n, item.path, None, member=item.kind in _MEMBERS,
                                     location=item.location))
                self.reused += 1
                if self.expand is not None and item.kind == "file":
                    self._found.append((self.expand(item.path, item.fs_path or item.path,
                                                    item.location), False))
            else:
                tasks.append(_task(item, self.expand is not None and item.kind == "file"))
                seqs.append(n)
                # a located member is read by its worker: it closes batches, costs no memory here
                nbytes += len(item.data) if item.data is not None else (
                    item.size or 0) if item.kind in _MEMBERS else 0
                if item.kind == "file":
                    changed_archive = item.location
            if len(chunk) >= SETTLE_CHUNK:
                record(chunk)
                chunk = []
            if len(tasks) >= self.batch_size or nbytes >= BATCH_BYTES:
                yield HashBatch(self._batch_seq, tuple(tasks), self.opts), seqs
                self._batch_seq += 1
                self.sent += len(tasks)
                tasks, seqs, nbytes = [], [], 0
        if chunk:
            record(chunk)
        if tasks:
            self.sent += len(tasks)
            yield HashBatch(self._batch_seq, tuple(tasks), self.opts), seqs
            self._batch_seq += 1


def hash_tree(roots: Sequence[str], opts: HashOptions, workers: int,
              limits: WalkLimits = DEFAULT_LIMITS, batch_size: int = 16) -> Iterator[HashRecord]:
    """`triage hash`: every walk item's record, through the scan's walker, batches and
    executor (`workers` <= 1 hashes in this process), in walk order, except that a
    container's members come once the read that hashed it has said it is one.

    The runner works in a thread, handing chunks over a bounded queue, so records come out
    while the walk goes on; a heap puts them back in walk order, holding no more than the
    batches in flight and one chunk of settled items.
    """
    handoff: queue.Queue[list[Settled] | BaseException | None] = queue.Queue(maxsize=8)

    def produce() -> None:
        try:
            executor = make_executor(workers if workers > 1 else 0, None)
            try:
                Runner(opts, executor, batch_size,
                       expand=lambda p, f, loc: contained(p, f, loc, limits)).run(
                    walk([os.path.abspath(r) for r in roots], limits, sniff=False),
                    handoff.put)
            finally:
                executor.close()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            handoff.put(exc)
            return
        handoff.put(None)

    thread = threading.Thread(target=produce, name="hash-tree", daemon=True)
    thread.start()
    waiting: list[tuple[int, HashRecord]] = []
    following = 0
    while (chunk := handoff.get()) is not None:
        if isinstance(chunk, BaseException):
            raise chunk
        for s in chunk:
            assert s.record is not None  # nothing is reused outside a case
            heapq.heappush(waiting, (s.seq, s.record))
        while waiting and waiting[0][0] == following:
            yield heapq.heappop(waiting)[1]
            following += 1
    thread.join()
