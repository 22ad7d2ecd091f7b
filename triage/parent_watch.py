"""Hashing workers end when the scan that started them dies, even by SIGKILL.

A process pool's workers block on their call queue; when the parent is killed nothing tells
them, and they (and their decoders' memory) outlive the scan. Each worker therefore watches
the scan's process through a pidfd (Linux >= 5.3), which becomes readable the moment that
process exits, and ends itself at once. Where pidfds are not available, it polls the pid.
The pool's own forkserver and resource tracker already exit when their pipe from the parent
closes. The watch is a Python thread, which a decoder stuck in C code holding the GIL starves
(and such a worker keeps the forkserver alive too); so each worker also starts a small guard
process (a bare interpreter, ~10 MiB) that waits on the same pidfd and SIGKILLs the worker,
and that dies with the worker (`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time

EXIT_CODE = 70  # EX_SOFTWARE: the scan that owned this worker is gone
_POLL_SECONDS = 0.5
_guards: list[subprocess.Popen[bytes]] = []  # kept, never waited for: a guard ends with us


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


# The guard is a fresh interpreter, not a fork of the worker: a fork would keep a copy of the
# worker's page tables (~50 MiB of RSS counted again per worker in a process tree's sum) and
# could inherit a lock held by another thread. It sets its own parent-death signal, then checks
# that its parent is still the worker it was started for (the worker may already be gone).
_GUARD = """
import ctypes, os, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker itself
fd, worker = int(sys.argv[1]), int(sys.argv[2])
ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG (linux/prctl.h)
if os.getppid() == worker:
    select.select([fd], [], [])
    os.kill(worker, signal.SIGKILL)
"""


def _start_guard(pid: int) -> None:
    """A helper process that kills this worker when process `pid` exits (Linux pidfds)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return
    try:  # only the pidfd is passed on: the guard holds none of the pool's pipes
        _guards.append(subprocess.Popen(
            [sys.executable, "-S", "-I", "-c", _GUARD, str(fd), str(os.getpid())],
            pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
    except OSError:
        pass  # no guard: the watch thread alone still ends a worker that is not stuck
    finally:
        os.close(fd)


def watch_parent(pid: int) -> None:
    """Pool initializer: end this process as soon as process `pid` (the scan) has exited."""
    if _gone(pid):
        os._exit(EXIT_CODE)
    _start_guard(pid)
    threading.Thread(target=_wait_for_exit, args=(pid,), daemon=True,
                     name="osec-triage-parent-watch").start()
