"""A hard per-file time limit for decoders stuck where SIGALRM cannot reach them.

`hashing.time_limit` ends a slow decode with SIGALRM, which works only when the decoder hands
control back to Python. A C decoder that holds the GIL, blocks signals or spins in a system
call never sees the alarm, and would hold its worker, and the scan, forever. So each decode
also publishes a hard deadline (`hard_seconds`: the soft limit plus a grace), and something
outside the Python interpreter enforces it:

- local pool workers write (pid, batch, task, deadline) into their slot of a shared array
  (`Slots`); the parent checks the slots while it waits for results, kills a worker past its
  deadline (SIGKILL) and gives that one file an error row (`decode time limit`) instead of
  running it again (`triage.executor.LocalExecutor`);
- Dask workers, which the client cannot kill, arm `faulthandler`'s watchdog, a C thread that
  needs no GIL and ends the worker process (`exit=True`) at the deadline; Dask's nanny starts a
  new worker, and the client gives the batch's culprit its error row
  (`triage.dask_executor`).

A slot's four values are written one 8-byte double at a time (atomic stores on the platforms
we run on); the deadline is cleared first and set last, and the parent reads it before and
after the task fields, so it never acts on a half-written slot.
"""

from __future__ import annotations

import faulthandler
import os
import threading
import time
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

from hashing import time_limit as soft

DECODE_TIME_LIMIT = "decode time limit"
_FIELDS = 4  # pid, batch seq, task index, deadline (CLOCK_MONOTONIC: one clock per machine)


def hard_seconds(decode_seconds: float) -> float:
    """When a decode the soft limit did not stop is ended from outside: the soft limit plus
    half of it, at least 5 s (time for a decoder that does return to reach Python)."""
    return decode_seconds + max(5.0, decode_seconds / 2)


def timed_out_error(decode_seconds: float) -> str:
    return (f"{DECODE_TIME_LIMIT}: the decoder did not stop at the {decode_seconds:g} s "
            f"per-file time limit and was ended after {hard_seconds(decode_seconds):g} s "
            "(its worker was killed); digests only")


@dataclass(frozen=True, slots=True)
class Overdue:
    pid: int
    seq: int
    index: int


class Slots:
    """One slot per pool worker in shared memory (made by the parent for each new pool)."""

    def __init__(self, ctx: BaseContext, workers: int) -> None:
        self.values: Any = ctx.RawArray("d", _FIELDS * workers)  # type: ignore[attr-defined]
        self.lock: Any = ctx.Lock()
        self.workers = workers

    def overdue(self, now: float | None = None) -> list[Overdue]:
        """Workers whose decode is past its hard deadline."""
        now = time.monotonic() if now is None else now
        v = self.values
        out = []
        for k in range(self.workers):
            at = k * _FIELDS
            deadline = v[at + 3]
            if not deadline or deadline > now:
                continue
            pid, seq, index = int(v[at]), int(v[at + 1]), int(v[at + 2])
            if v[at + 3] == deadline:  # not rewritten while we read it
                out.append(Overdue(pid, seq, index))
        return out


# -- the worker's side ----------------------------------------------------------------------

_slot: tuple[Any, int] | None = None  # (shared values, offset) in a local pool worker
_task = (0, 0)


def claim(values: Any, lock: Any, workers: int) -> None:
    """Pool initializer part: take a free slot and publish every decode's deadline in it."""
    global _slot
    pid = os.getpid()
    with lock:
        for k in range(workers):
            at = k * _FIELDS
            if not values[at]:
                values[at] = pid
                _slot = (values, at)
                break
    if _slot is not None:
        soft.set_watch(_publish)


def task_started(seq: int, index: int) -> None:
    """Which task of which batch this worker is on (hash_batch calls it per task)."""
    global _task
    _task = (seq, index)


def _publish(seconds: float | None) -> None:
    assert _slot is not None
    values, at = _slot
    values[at + 3] = 0.0
    if seconds is None:
        return
    values[at + 1], values[at + 2] = _task
    values[at + 3] = time.monotonic() + hard_seconds(seconds)


_armed: dict[int, float] = {}  # thread id -> deadline, for the native timer
_armed_lock = threading.Lock()
_native_out: Any = None  # where faulthandler writes the stuck thread's traceback


def use_native_timer() -> None:
    """On a Dask worker: end this process at a decode's hard deadline (faulthandler's C
    thread). Several decoding threads share the one timer: it is armed for the earliest.

    faulthandler needs a real file descriptor; `sys.stderr` may have been replaced by one
    without (a captured or redirected stream), so the timer keeps its own copy of fd 2, taken
    once, and arming it can never fail a decode."""
    global _native_out
    if _native_out is None:
        _native_out = os.fdopen(os.dup(2), "w", closefd=True)
    soft.set_watch(_native)


def _native(seconds: float | None) -> None:
    me = threading.get_ident()
    with _armed_lock:
        if seconds is None:
            _armed.pop(me, None)
        else:
            _armed[me] = time.monotonic() + hard_seconds(seconds)
        faulthandler.cancel_dump_traceback_later()
        if _armed:
            left = max(min(_armed.values()) - time.monotonic(), 0.001)
            faulthandler.dump_traceback_later(left, exit=True, file=_native_out)
