"""The one container dispatch: which reader opens a file or member that holds other files.

The walk and every container reader (archives, disk images) call `container_rows` for each
item they yield, so archives in images, images in archives and images in images all nest
through the same limits. A new container format is one entry in `container_kind` and one
branch in `container_rows`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from hashing.sniff import SNIFF_BYTES, sniff
from triage.archives import _Total, archive_format, iter_archive
from triage.disks import image_kind, iter_image, may_be_image, read_at_of
from triage.identity import Location
from triage.limits import WalkItem, WalkLimits


def container_kind(source: BinaryIO, size: int, head: bytes | None = None) -> str | None:
    """"archive" or "image" when the content (never the name) says so, else None.

    `head` is the first `SNIFF_BYTES` when the caller has them already. Only files large
    enough to hold a file system, whose head is no known media or archive, are probed for
    image signatures (a few small reads).
    """
    if head is None:
        source.seek(0)
        head = source.read(SNIFF_BYTES)
    if archive_format(head) is not None:
        return "archive"
    if may_be_image(head, size) and sniff(head).family == "other":
        if image_kind(read_at_of(source)) is not None:
            return "image"
    return None


def container_rows(source: BinaryIO, label: str, size: int, limits: WalkLimits, depth: int = 1,
                   *, location: Location, head: bytes | None = None,
                   fs_path: str | None = None, total: _Total | None = None) -> Iterator[WalkItem]:
    """Rows of the files inside `source` (seekable) when it is a container, else nothing.

    `location` is the container's own location, which its items' locations extend;
    `fs_path` is the real path of a container on storage (disk images reopen their files
    from it in hashing workers); `total` carries an outer archive's expansion budget.
    """
    kind = container_kind(source, size, head)
    source.seek(0)
    if kind == "archive":
        yield from iter_archive(source, label, size, limits, depth, total, location=location,
                                fs_path=fs_path)
    elif kind == "image":
        yield from iter_image(source, label, size, limits, depth, fs_path, location=location)
