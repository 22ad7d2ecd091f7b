"""Digest of an evidence tree (paths, sizes, mtimes, modes, link targets, content), used to
show that a scan left the evidence exactly as it was."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

MiB = 1 << 20


def tree_digest(root: Path) -> str:
    """Paths, sizes, mtimes, modes and content hashes under `root`, links not followed.

    Files over 64 MiB (the sparse one) stand in by their allocation map instead of their
    content: any write allocates blocks or moves a data segment. FIFOs are never opened.
    """
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(p + f" {st.st_size} {st.st_mtime_ns} {st.st_mode}".encode())
            if stat.S_ISREG(st.st_mode) and st.st_size > 64 * MiB:
                h.update(f" {st.st_blocks} {_data_segments(p)}".encode())
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    h.update(hashlib.file_digest(fh, "sha256").digest())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p))
    return h.hexdigest()


def _data_segments(path: bytes) -> list[tuple[int, int]]:
    """(start, end) of each allocated data segment, via SEEK_DATA / SEEK_HOLE."""
    segments = []
    fd = os.open(path, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        pos = 0
        while pos < end:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                break
            pos = os.lseek(fd, start, os.SEEK_HOLE)
            segments.append((start, pos))
    finally:
        os.close(fd)
    return segments
