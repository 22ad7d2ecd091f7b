"""Walk evidence read-only: one row per file, symlink, special file and archive member.

The walk never writes, renames or follows anything in the evidence tree:
- `os.scandir` and `lstat` only (no `follow_symlinks`), so a symlink is a row with its
  target and a link loop cannot hang the walk;
- FIFOs, sockets and devices are rows and are never opened (opening a FIFO blocks);
- regular files are opened with `open_evidence` (O_RDONLY | O_NOFOLLOW | O_NOATIME), only
  to read the first bytes that say whether the file is a container; archives are then read
  in memory by `triage.archives` and disk images in place by `triage.disks` (dispatched by
  `triage.containers`), after the container's own file row. With `sniff=False` (the scan)
  files are not opened here: the hashing worker that reads a file says whether it is a
  container, and only then are its rows listed (`contained`), so a plain file is opened
  once;
- names are handled as bytes and recorded with `os.fsdecode` (surrogate escapes), so
  non-UTF-8 bytes, newlines and a leading `=` survive unchanged;
- order is deterministic: entries sorted by their raw name bytes, depth first;
- an unreadable directory or file, or one too deep, is an error row, never an exception;
- a directory or file that is the case directory, the bank store or one of their files
  (reached through a bind mount or a hard link; `exclude`, by device and inode) is an
  error row and is never read.

Each row carries its location (`triage.identity`): the root, the path bytes below it and,
for archive members, the chain of member indices.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from hashing.errors import TriageError
from hashing.sniff import SNIFF_BYTES
from triage.containers import container_rows
from triage.identity import Location, fs_location
from triage.limits import WalkItem, WalkLimits

__all__ = [
    "DEFAULT_LIMITS",
    "NotRegularFileError",
    "WalkItem",
    "WalkLimits",
    "contained",
    "open_evidence",
    "walk",
]

_O_NOATIME = getattr(os, "O_NOATIME", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# O_NONBLOCK makes opening a FIFO that replaced a file after the lstat return at once
# instead of blocking; it has no effect on reads of regular files.
_OPEN_FLAGS = os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)

_SPECIAL_REASONS = (
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


class NotRegularFileError(TriageError, OSError):
    """`open_evidence` was given something that is not a regular file (a FIFO, a device)."""

    def __init__(self, path: str | bytes) -> None:
        OSError.__init__(self, errno.EINVAL, "not a regular file", os.fsdecode(path))
        self.path = os.fsdecode(path)


def open_evidence(path: str | bytes) -> BinaryIO:
    """Open a regular evidence file read-only without touching its access time.

    O_NOFOLLOW refuses a symlink swapped in for the file; O_NOATIME is only allowed to the
    file's owner (or root), so on EPERM the open is retried without it. Raises `OSError`
    (`NotRegularFileError` for a FIFO, device or directory).
    """
    try:
        fd = os.open(path, _OPEN_FLAGS | _O_NOATIME)
    except PermissionError as exc:
        if not _O_NOATIME or exc.errno != errno.EPERM:
            raise
        fd = os.open(path, _OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFileError(path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


DEFAULT_LIMITS = WalkLimits()

# (st_dev, st_ino) -> what it is ("case directory", "bank store"): never read as evidence
Excluded = Mapping[tuple[int, int], str]


@dataclass(frozen=True, slots=True)
class _Root:
    path: bytes
    limits: WalkLimits
    exclude: Excluded
    sniff: bool

    def location(self, path_b: bytes) -> Location:
        return fs_location(self.path, path_b)


def walk(
    roots: Sequence[str], limits: WalkLimits = DEFAULT_LIMITS, exclude: Excluded | None = None,
    sniff: bool = True,
) -> Iterator[WalkItem]:
    """Yield every row under `roots` (files or directories), in a deterministic order.

    A root that is a symlink is recorded, not followed. A root given twice is walked once.
    Never raises for what it finds. `sniff=False` yields regular files unopened and none of
    their members; whoever reads a file then lists what is inside with `contained`.
    """
    seen: set[bytes] = set()
    for root in roots:
        root_b = os.fsencode(root)
        if root_b in seen:
            continue
        seen.add(root_b)
        r = _Root(root_b, limits, exclude or {}, sniff)
        try:
            st = os.lstat(root_b)
        except OSError as exc:
            yield _error_row(r, root_b, "file", exc)
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(r, st)
        else:
            yield from _entry_rows(r, root_b, st)


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _error_row(
    r: _Root,
    path_b: bytes,
    kind: str,
    exc: OSError | str,
    prefix: str = "",
    st: os.stat_result | None = None,
) -> WalkItem:
    return WalkItem(
        path=os.fsdecode(path_b),
        kind=kind,  # type: ignore[arg-type]
        size=st.st_size if st is not None else None,
        mtime=st.st_mtime if st is not None else None,
        status="error",
        reason=prefix + (exc if isinstance(exc, str) else _reason(exc)),
        location=r.location(path_b),
    )


def _excluded(r: _Root, st: os.stat_result) -> str | None:
    what = r.exclude.get((st.st_dev, st.st_ino))
    if what is None:
        return None
    return f"this is the {what} (same device and inode); not read as evidence"


def _listing(dir_b: bytes) -> list[os.DirEntry[bytes]]:
    with os.scandir(dir_b) as it:
        return sorted(it, key=lambda e: e.name)


def _walk_dir(r: _Root, root_st: os.stat_result) -> Iterator[WalkItem]:
    """Depth-first over a directory with an explicit stack (no recursion limit to hit)."""
    limits = r.limits
    # directories have no kind of their own; "special" marks a row that is not a file
    if (why := _excluded(r, root_st)) is not None:
        yield _error_row(r, r.path, "special", why)
        return
    try:
        stack = [(iter(_listing(r.path)), 1)]
    except OSError as exc:
        yield _error_row(r, r.path, "special", exc, "cannot list directory: ")
        return
    while stack:
        entries, depth = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            yield _error_row(r, entry.path, "file", exc)
            continue
        if not stat.S_ISDIR(st.st_mode):
            yield from _entry_rows(r, entry.path, st)
        elif (why := _excluded(r, st)) is not None:
            yield _error_row(r, entry.path, "special", why)
        elif depth > limits.max_dir_depth:
            yield WalkItem(
                path=os.fsdecode(entry.path),
                kind="special",
                size=None,
                mtime=st.st_mtime,
                status="error",
                reason=f"directory depth limit {limits.max_dir_depth} reached; not entered",
                location=r.location(entry.path),
            )
        else:
            try:
                stack.append((iter(_listing(entry.path)), depth + 1))
            except OSError as exc:
                yield _error_row(r, entry.path, "special", exc, "cannot list directory: ")


def _entry_rows(r: _Root, path_b: bytes, st: os.stat_result) -> Iterator[WalkItem]:
    """Rows for one non-directory entry, from its lstat result."""
    path = os.fsdecode(path_b)
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        try:
            target: str | None = os.fsdecode(os.readlink(path_b))
        except OSError:
            target = None
        yield WalkItem(
            path=path,
            kind="symlink",
            size=st.st_size,
            mtime=st.st_mtime,
            status="skipped",
            reason="symlink not followed",
            link_target=target,
            location=r.location(path_b),
        )
    elif stat.S_ISREG(mode):
        yield from _file_rows(r, path_b, st)
    else:
        reason = next((r for test, r in _SPECIAL_REASONS if test(mode)), "unknown file type")
        yield WalkItem(
            path=path,
            kind="special",
            size=st.st_size,
            mtime=st.st_mtime,
            status="skipped",
            reason=reason,
            location=r.location(path_b),
        )


def _file_rows(r: _Root, path_b: bytes, st: os.stat_result) -> Iterator[WalkItem]:
    """The file's own row, then its members when its first bytes say it is an archive."""
    path = os.fsdecode(path_b)
    if (why := _excluded(r, st)) is not None:
        yield _error_row(r, path_b, "file", why, st=st)
        return
    if not r.sniff:
        yield WalkItem(path=path, kind="file", size=st.st_size, mtime=st.st_mtime,
                       fs_path=path, location=r.location(path_b))
        return
    try:
        f = open_evidence(path_b)
    except OSError as exc:
        yield _error_row(r, path_b, "file", exc, st=st)
        return
    with f:
        try:
            head = f.read(SNIFF_BYTES)
        except OSError as exc:
            yield _error_row(r, path_b, "file", exc, st=st)
            return
        loc = r.location(path_b)
        yield WalkItem(path=path, kind="file", size=st.st_size, mtime=st.st_mtime, fs_path=path,
                       location=loc)
        yield from container_rows(f, path, st.st_size, r.limits, head=head, fs_path=path,
                                  location=loc)


def contained(path: str, fs_path: str, location: Location,
              limits: WalkLimits = DEFAULT_LIMITS) -> Iterator[WalkItem]:
    """The rows inside a regular file that `walk(sniff=False)` yielded unopened, if its
    content says it is a container (else nothing): the members `walk` would have yielded
    after it. Opens it read-only; a file that cannot be opened now yields nothing (its own
    row, from the read that hashed it, says why)."""
    try:
        f = open_evidence(fs_path)
    except OSError:
        return
    with f:
        yield from container_rows(f, path, os.fstat(f.fileno()).st_size, limits,
                                  fs_path=fs_path, location=location)
