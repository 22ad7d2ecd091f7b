"""A wall-clock limit on one block of decoding (SIGALRM; the calling process's main thread).

Decoders of hostile files can run for minutes inside Pillow or FFmpeg, and Pillow and OpenCV
hand control back to Python between chunks of input and between frames, which is where the
alarm's handler runs and ends the block. The signal raises a private `BaseException` so no
decoder's `except Exception` can swallow it; the caller's own error comes out instead. Off
the main thread (Dask worker threads) signals cannot be used and no limit applies here.

A decoder stuck in C code never returns to Python, so no alarm ends it: a watch installed
with `set_watch` is told when each limited block starts and ends, which is how a watchdog
outside the interpreter enforces a hard limit (`triage.watchdog`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


@contextmanager
def time_limit(seconds: float, error: Exception) -> Iterator[None]:
    """Raise `error` if the block runs longer than `seconds` (no limit off the main thread)."""
    watch = _watch
    if watch is not None:
        watch(seconds)
    try:
        if threading.current_thread() is not threading.main_thread():
            yield
        else:
            with _alarm(seconds, error):
                yield
    finally:
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
