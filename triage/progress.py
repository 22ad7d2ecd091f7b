"""Counting the walk ahead, so a scan's progress has a total and an ETA.

A second, cheaper pass over the same roots counts what the walk will yield as rows of its
own (files, symlinks, special files; not directories, not archive members, which are only
known once an archive is read). It lists directories with `os.scandir` and never opens,
follows or stats beyond the entry type, so it reads the evidence exactly as the walk does:
read-only. It runs in a thread beside the walk and reports the total once when done.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence


def count_entries(roots: Sequence[str]) -> int:
    """Non-directory entries under `roots` (a root that is not a directory counts one)."""
    total = 0
    stack: list[str] = []
    for root in roots:
        if os.path.isdir(root) and not os.path.islink(root):
            stack.append(root)
        else:
            total += 1
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    if is_dir:
                        stack.append(entry.path)
                    else:
                        total += 1
        except OSError:
            total += 1  # the walk records an unlistable directory as one error row
    return total


def count_ahead(roots: Sequence[str], report: Callable[[int], None]) -> threading.Thread:
    """Count `roots` in a daemon thread and call `report(total)` when done."""
    thread = threading.Thread(target=lambda: report(count_entries(roots)),
                              name="count-ahead", daemon=True)
    thread.start()
    return thread
