"""Atomic, private output files: every case output is written to a temp name, fsynced and renamed.

A reader (or a scan killed half-way) therefore sees either the previous complete file or the
new complete file, never a torn one. Temp files are named `TEMP_PREFIX<name>.<random>.tmp`, so
a later scan removes only files that are unmistakably the tool's own (`stale_temp_files`).
Case directories are 0700 and files 0600 because they name evidence paths and hashes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

DIR_MODE = 0o700
FILE_MODE = 0o600
TEMP_PREFIX = ".osec-triage-tmp."
TEMP_SUFFIX = ".tmp"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed and make it owner-only."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_text(path: Path) -> Iterator[IO[str]]:
    """Open a text stream whose content replaces `path` only when the block ends cleanly."""
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX,
                               dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def stale_temp_files(directory: Path) -> list[Path]:
    """Temp files `atomic_text` left in `directory` (a process killed while writing)."""
    return [
        p for p in directory.iterdir()
        if p.name.startswith(TEMP_PREFIX) and p.name.endswith(TEMP_SUFFIX) and p.is_file()
    ]


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_text(path) as fh:
        fh.write(text)


def append_line_durable(path: Path, line: str) -> None:
    """Append one line with O_APPEND and fsync (the audit log is append-only, never rewritten)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
