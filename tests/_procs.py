"""Process-tree helpers for the tests that SIGKILL a scan and look for orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc (children of children included)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    """Running (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: set[int] | list[int], seconds: float) -> list[int]:
    """Wait up to `seconds` for `pids` to end; the ones still alive."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def sigkill_and_survivors(proc: subprocess.Popen[bytes], pids: set[int],
                          seconds: float = 15) -> list[int]:
    """SIGKILL the scan `proc`, give its `pids` `seconds` to end, then SIGKILL the survivors
    (so a failing test leaves no orphan behind) and return them."""
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        left = wait_gone(pids, seconds)
    finally:
        if proc.poll() is None:
            proc.kill()
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left
