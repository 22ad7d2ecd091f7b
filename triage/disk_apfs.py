"""APFS containers inside disk images, read in place through libyal's libfsapfs (`pyfsapfs`).

The Sleuth Kit reaches APFS only through its pool API, which `pytsk3` does not expose;
libfsapfs is the maintained reader forensic tools use for it. Each volume of a container is
walked like any other file system by `triage.disks`: one row per file labelled
`disk.img!/p2/v1/Users/a.jpg` (partition, volume, path), sizes and times from the file system,
and a locator step `("apfs", offset, volume)` then `("apfs_id", identifier)` by which a worker
reopens the file and streams it. An encrypted (locked) volume is an attention row
"encrypted: not examined"; a directory seen twice is a loop, never entered again.
Deleted files are not recovered from APFS (libfsapfs reads the live tree only).
"""

from __future__ import annotations

import io
import stat
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyfsapfs

from triage.identity import Segment

if TYPE_CHECKING:
    from triage.disks import Locator, Media, _Image

from triage.limits import WalkItem
from triage.read_at_view import ReadAtView

_CHUNK = 1 << 20


def media_file(media: Media, offset: int, length: int) -> ReadAtView:
    """A read-only file object over `length` bytes of a media at `offset` (for libyal)."""
    return ReadAtView(lambda pos, n: media.read_at(offset + pos, n), length)


def entry_reader(entry: Any) -> ReadAtView:
    """A read-only, seekable view of one APFS file's data, streamed in chunks."""
    return ReadAtView(lambda pos, n: entry.read_buffer_at_offset(n, pos), int(entry.size or 0),
                      _CHUNK)


def open_container(media: Media, offset: int, length: int) -> tuple[Any, ReadAtView]:
    """The container at `offset`; raises OSError when libfsapfs cannot read it."""
    handle = media_file(media, offset, length)
    container = pyfsapfs.container()
    container.open_file_object(handle)
    return container, handle


def _times(entry: Any) -> dict[str, float]:
    out = {}
    for key, getter in (("mtime", "get_modification_time_as_integer"),
                        ("atime", "get_access_time_as_integer"),
                        ("ctime", "get_inode_change_time_as_integer"),
                        ("crtime", "get_creation_time_as_integer")):
        try:
            ns = getattr(entry, getter)()
        except (OSError, AttributeError):
            continue
        if ns:
            out[key] = ns / 1e9  # APFS stores nanoseconds since 1970
    return out


def apfs_rows(media: Media, offset: int, length: int, prefix: str, img: _Image,
              base: Locator | None) -> Iterator[WalkItem]:
    """Rows of every volume in the APFS container at `offset` (see the module docstring)."""
    from triage.disks import DiskImageError, _text

    where = prefix.rstrip("/") or ""
    try:
        container, _ = open_container(media, offset, length)
    except OSError as exc:
        raise DiskImageError(f"APFS container unreadable: {_text(exc)}") from exc
    outer = img.scope
    for index in range(int(container.number_of_volumes)):
        img.scope = (*outer, Segment("apfs_volume", index))
        vprefix = f"{prefix}v{index + 1}/"
        volume = container.get_volume(index)
        if volume.is_locked():
            yield img.row(vprefix.rstrip("/"), status="skipped", error=True,
                          reason="encrypted: not examined (APFS encrypted volume)")
            continue
        locator = (*base, ("apfs", offset, index)) if base is not None else None
        yield from _volume_rows(volume, vprefix, img, locator, where)


def _volume_rows(volume: Any, prefix: str, img: _Image, locator: Locator | None,
                 where: str) -> Iterator[WalkItem]:
    from triage.disks import _DAMAGE, _text

    try:
        root = volume.get_root_directory()
    except _DAMAGE as exc:
        yield img.row(prefix.rstrip("/"), status="error", error=True,
                      reason=f"apfs: cannot read the root directory: {_text(exc)}")
        return
    visited = {int(root.identifier)}
    stack: list[tuple[Iterator[Any], str, int]] = [(iter(root.sub_file_entries), "", 1)]
    while stack:
        entries, dir_rel, depth = stack[-1]
        try:
            entry = next(entries, None)
        except _DAMAGE as exc:
            stack.pop()
            yield img.row(prefix + dir_rel, status="error", error=True,
                          reason=f"apfs: directory unreadable: {_text(exc)}")
            continue
        if entry is None:
            stack.pop()
            continue
        rel = dir_rel + str(entry.name)
        mode = int(entry.file_mode or 0)
        ident = int(entry.identifier)
        times = _times(entry)
        extra: dict[str, Any] = {"deleted": False, "fs_type": "apfs", "inode": ident,
                                 "times": times}
        if stat.S_ISDIR(mode):
            if ident in visited:
                yield img.row(prefix + rel + "/", status="error", error=True,
                              reason=f"apfs: directory loop: inode {ident} already visited; "
                                     "not entered")
            elif depth > img.limits.max_dir_depth:
                yield img.row(prefix + rel + "/", status="error", error=True,
                              reason=f"apfs: directory depth limit "
                                     f"{img.limits.max_dir_depth} reached; not entered")
            else:
                visited.add(ident)
                stack.append((iter(entry.sub_file_entries), rel + "/", depth + 1))
            continue
        size = int(entry.size or 0)
        mtime = times.get("mtime")
        if stat.S_ISLNK(mode):
            yield img.row(prefix + rel, size=size, mtime=mtime, status="skipped",
                          reason="symlink not followed", extra=extra,
                          link_target=str(entry.symbolic_link_target or "") or None,
                          segs=(Segment("apfs_id", ident),))
        elif not stat.S_ISREG(mode):
            yield img.row(prefix + rel, size=size, mtime=mtime, status="skipped",
                          reason="apfs special file not read", extra=extra,
                          segs=(Segment("apfs_id", ident),))
        else:
            from triage.disks import content_rows

            file_loc = (*locator, ("apfs_id", ident)) if locator is not None else None
            yield from content_rows(img, io.BufferedReader(entry_reader(entry), _CHUNK),
                                    prefix + rel, size, mtime, None, extra, file_loc,
                                    (Segment("apfs_id", ident),))
