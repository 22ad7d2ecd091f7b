"""A cap on the memory one block of decoding may add (RLIMIT_DATA, lowered for the block).

A demuxer sizes its tables from counts in the container's headers, and a few patched bytes
make FFmpeg ask for gigabytes. `hashing.mp4_tables` checks MP4/MOV tables before FFmpeg opens
them; for every container (Matroska/WebM, AVI, FLV, MPEG, ASF, ...) this cap is the bound:
while a video decodes, the process's soft RLIMIT_DATA is its current data size plus
`max_bytes`, so an allocation past it fails inside the decoder (NULL from malloc, ENOMEM from
FFmpeg, MemoryError in Python) and the file becomes an error row instead of costing GiBs.
RLIMIT_DATA (Linux >= 4.7) counts private writable mappings, which is where malloc's heap and
its large `mmap`s go, and not file mappings or reserved address space (so, unlike RLIMIT_AS,
the thread stacks and arenas numba and OpenCV reserve do not count against it).

The limit is per process: other threads of the process (none decode at the same time in a
pool worker) share the headroom while the block runs. Where the limit cannot be read or set
(not Linux), the block runs unlimited.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager


def data_bytes() -> int | None:
    """This process's data size now (VmData), or None where /proc does not say."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@contextmanager
def memory_limit(max_bytes: int) -> Iterator[bool]:
    """Let the block allocate at most about `max_bytes` more; yields whether a cap is on."""
    now = data_bytes()
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    except (AttributeError, OSError, ValueError):
        now = None
    if now is None:
        yield False
        return
    cap = now + max_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        yield False  # a tighter limit is already in force
        return
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield True
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
