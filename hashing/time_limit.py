"""A wall-clock limit on one block of decoding (SIGALRM; the calling process's main thread).

Decoders of hostile files can run for minutes inside Pillow or FFmpeg, and Pillow and OpenCV
hand control back to Python between chunks of input and between frames, which is where the
alarm's handler runs and ends the block. The signal raises a private `BaseException` so no
decoder's `except Exception` can swallow it; the caller's own error comes out instead. Off
the main thread (Dask worker threads) signals cannot be used and no limit applies.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Expired(BaseException):
    """Raised by the alarm handler; turned into the caller's error at the block's edge."""


def _expire(signum: int, frame: object) -> None:
    raise _Expired


@contextmanager
def time_limit(seconds: float, error: Exception) -> Iterator[None]:
    """Raise `error` if the block runs longer than `seconds` (no limit off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise error from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
