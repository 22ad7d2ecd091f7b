"""Hashing workers end when the scan that started them dies, even by SIGKILL.

A process pool's workers block on their call queue; when the parent is killed nothing tells
them, and they (and their decoders' memory) outlive the scan. Each worker therefore watches
the scan's process through a pidfd (Linux >= 5.3), which becomes readable the moment that
process exits, and ends itself at once. Where pidfds are not available, it polls the pid.
The pool's own forkserver and resource tracker already exit when their pipe from the parent
closes.
"""

from __future__ import annotations

import os
import select
import threading
import time

EXIT_CODE = 70  # EX_SOFTWARE: the scan that owned this worker is gone
_POLL_SECONDS = 0.5


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


def watch_parent(pid: int) -> None:
    """Pool initializer: end this process as soon as process `pid` (the scan) has exited."""
    if _gone(pid):
        os._exit(EXIT_CODE)
    threading.Thread(target=_wait_for_exit, args=(pid,), daemon=True,
                     name="osec-triage-parent-watch").start()
