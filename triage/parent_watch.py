"""Hashing workers end when the scan that started them dies, even by SIGKILL.

A process pool's workers block on their call queue; when the parent is killed nothing tells
them, and they (and their decoders' memory) outlive the scan. Each worker therefore watches
the scan's process through a pidfd (Linux >= 5.3), which becomes readable the moment that
process exits, and ends itself at once. Where pidfds are not available, it polls the pid.
The pool's own forkserver and resource tracker already exit when their pipe from the parent
closes. The watch is a Python thread, which a decoder stuck in C code holding the GIL starves
(and such a worker keeps the forkserver alive too); so each worker also forks a one-thread
guard process that waits on the same pidfd and SIGKILLs the worker, and that dies with the
worker (`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import threading
import time

EXIT_CODE = 70  # EX_SOFTWARE: the scan that owned this worker is gone
_POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        while not _gone(pid):
            time.sleep(_POLL_SECONDS)
    else:
        select.select([fd], [], [])
    os._exit(EXIT_CODE)


def _fork_guard(pid: int) -> None:
    """A helper process that kills this worker when process `pid` exits (Linux pidfds)."""
    worker = os.getpid()
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return
    if os.fork():
        os.close(fd)
        return
    try:  # the guard: no threads, no imports, nothing that needs the worker's interpreter
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() == worker:
            select.select([fd], [], [])
            os.kill(worker, signal.SIGKILL)
    finally:
        os._exit(0)


def watch_parent(pid: int) -> None:
    """Pool initializer: end this process as soon as process `pid` (the scan) has exited."""
    if _gone(pid):
        os._exit(EXIT_CODE)
    _fork_guard(pid)
    threading.Thread(target=_wait_for_exit, args=(pid,), daemon=True,
                     name="osec-triage-parent-watch").start()
