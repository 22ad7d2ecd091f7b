"""The walk's value types: the limits it obeys (`WalkLimits`) and the rows it yields (`WalkItem`).

Evidence comes from adversaries, so every unbounded thing the walk could do (descend, expand,
load) has a ceiling here. The defaults are generous for real seizures and still keep a zip
bomb or a hostile directory tree from exhausting memory or time. Both types live in this leaf
module so that `walk` and `archives` share them without importing each other in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from triage.identity import Location

MiB = 1024 * 1024
GiB = 1024 * MiB

# The expansion-ratio guard only applies once an archive has produced this much data: tiny
# archives (a 10 KiB tar of one empty file compresses ~100:1) are not bombs.
RATIO_GRACE_BYTES = 1 * MiB

ItemKind = Literal["file", "archive_member", "image_member", "symlink", "special"]
ItemStatus = Literal["pending", "skipped", "error"]


def format_bytes(n: int) -> str:
    """Human form of a byte count for reasons ("256 MiB"), so rows read naturally."""
    if n >= GiB and n % GiB == 0:
        return f"{n // GiB} GiB"
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB} MiB"
    return f"{n} bytes"


@dataclass(frozen=True, slots=True)
class WalkLimits:
    """Ceilings for one walk; every field is configurable."""

    max_archive_depth: int = 3  # an archive on disk is depth 1, one inside it depth 2, ...
    max_member_bytes: int = 256 * MiB  # larger members become rows, never loaded
    max_archive_total_bytes: int = 4 * GiB  # decompressed bytes per outer archive, nesting included
    max_expansion_ratio: float = 200.0  # decompressed / compressed bytes per archive
    max_members: int = 100_000  # member rows per archive
    max_dir_depth: int = 256  # directory levels below a root (and inside a disk image)
    max_image_entries: int = 10_000_000  # file-system entries per disk image

    def __post_init__(self) -> None:
        for name in (
            "max_archive_depth",
            "max_member_bytes",
            "max_archive_total_bytes",
            "max_members",
            "max_dir_depth",
            "max_image_entries",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"WalkLimits.{name} must be >= 0")
        if self.max_expansion_ratio <= 0:
            raise ValueError("WalkLimits.max_expansion_ratio must be > 0")


@dataclass(frozen=True, slots=True)
class WalkItem:
    """One row of the walk: a file, an archive member, a symlink or a special file.

    `path` is the record path: a filesystem path (`os.fsdecode` of the raw bytes, so
    non-UTF-8 names survive as surrogate escapes) or an archive label such as
    `outer.zip!/dir/member`, nested as `a.zip!/b.tar!/c.jpg`. A label is never joined to a
    filesystem path. Problems with an archive as a whole (corrupt, bomb, depth limit) are
    reported on the archive's root label, `outer.zip!/`, so they never share a path with
    the archive file's own row. Directories are not rows, except one the walk cannot enter
    (unreadable, or past the depth limit): kind "special", status "error".

    `path` is only a label; the row's identity is `location` (`triage.identity`), its real
    place as a chain of typed segments.
    """

    path: str
    kind: ItemKind
    size: int | None
    mtime: float | None
    fs_path: str | None = None  # kind == "file": the real path to open read-only
    data: bytes | None = None  # archive members to hash, in memory
    status: ItemStatus = "pending"  # pending = hash it
    reason: str | None = None
    link_target: str | None = None
    archive_error: bool = False  # an investigator must see this (encrypted, corrupt, bomb)
    location: Location = field(kw_only=True)
    # manifest fields of files inside disk images (deleted, fs_type, inode, times) and of an
    # image's root row (integrity), written as they are
    extra: dict[str, Any] | None = None
    # how a hashing worker reopens a file inside a disk image (`triage.disks.Locator`)
    locator: tuple[Any, ...] | None = None
