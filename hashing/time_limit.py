"""A wall-clock limit on one block of decoding (SIGALRM; the calling process's main thread).

Decoders of hostile files can run for minutes inside Pillow or FFmpeg, and Pillow and OpenCV
hand control back to Python between chunks of input and between frames, which is where the
alarm's handler runs and ends the block. The signal raises a private `BaseException` so no
decoder's `except Exception` can swallow it; the caller's own error comes out instead. Off
the main thread (Dask worker threads) signals cannot be used and no limit applies here.

A decoder stuck in C code never returns to Python, so no alarm ends it: a watch installed
with `set_watch` is told when each limited block starts and ends, which is how a watchdog
outside the interpreter enforces a hard limit (`triage.watchdog`).

Compiling numba kernels is not decoding: a worker compiles (or loads from numba's cache) the
PDQ kernels on its first image, and on a loaded machine a cold compile took longer than the
default limit; the alarm then fired inside numba's compiler and the file lost its PDQ. So
while numba holds its compiler lock the clock is stopped (the alarm disarmed, the watch told
`None`) and restarted with the time that was left (numba's event API, `numba:compiler_lock`).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

Watch = Callable[[float | None], None]
_watch: Watch | None = None


def set_watch(watch: Watch | None) -> None:
    """Have `watch(seconds)` called as each limited block starts and `watch(None)` as it ends
    (None: no watch)."""
    global _watch
    _watch = watch


class _Expired(BaseException):
    """Raised by the alarm handler; turned into the caller's error at the block's edge."""


def _expire(signum: int, frame: object) -> None:
    raise _Expired


@dataclass(slots=True)
class _Block:
    """The limited block running on one thread: what to stop while numba compiles."""

    deadline: float  # time.monotonic() when the block's time is up
    alarm: bool  # SIGALRM armed (main thread)
    watch: Watch | None
    compiling: int = 0  # nesting depth of numba's (re-entrant) compiler lock
    left: float = 0.0  # the time that was left when compiling began


_running = threading.local()  # .block: the _Block of this thread, if any


def _compile_started() -> None:
    block: _Block | None = getattr(_running, "block", None)
    if block is None:
        return
    block.compiling += 1
    if block.compiling > 1:
        return
    block.left = max(block.deadline - time.monotonic(), 0.0)
    if block.alarm:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if block.watch is not None:
        block.watch(None)


def _compile_ended() -> None:
    block: _Block | None = getattr(_running, "block", None)
    if block is None or block.compiling == 0:
        return
    block.compiling -= 1
    if block.compiling:
        return
    left = max(block.left, 0.001)  # time already up: the alarm fires at once
    block.deadline = time.monotonic() + left
    if block.watch is not None:
        block.watch(left)
    if block.alarm:
        signal.setitimer(signal.ITIMER_REAL, left)


_listening = False


def _listen_to_numba() -> None:
    """Register (once) for numba's compiler-lock events; nothing to do without numba."""
    global _listening
    if _listening:
        return
    _listening = True
    try:
        from numba.core import event
    except ImportError:
        return

    class _Compiling(event.Listener):  # type: ignore[misc]
        def on_start(self, ev: Any) -> None:
            _compile_started()

        def on_end(self, ev: Any) -> None:
            _compile_ended()

    event.register("numba:compiler_lock", _Compiling())


@contextmanager
def time_limit(seconds: float, error: Exception) -> Iterator[None]:
    """Raise `error` if the block runs longer than `seconds` (no limit off the main thread).
    Time spent compiling numba kernels inside the block is not counted."""
    _listen_to_numba()
    watch = _watch
    alarm = threading.current_thread() is threading.main_thread()
    outer = getattr(_running, "block", None)
    _running.block = _Block(time.monotonic() + seconds, alarm, watch)
    if watch is not None:
        watch(seconds)
    try:
        if not alarm:
            yield
        else:
            with _alarm(seconds, error):
                yield
    finally:
        _running.block = outer
        if watch is not None:
            watch(None)


@contextmanager
def _alarm(seconds: float, error: Exception) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise error from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
