"""Row identity: where an item really is, as a chain of typed segments (a path specification).

A manifest row is keyed by its real location, never by the label it is shown with. The
location is a chain, like a dfVFS path spec: the evidence root, the file-system path below
it, then one segment per container the item sits in (`zip` member 3, `tar` member 0, ...).
`a.zip!/x` is only how a row is displayed; a directory named `a.zip!` next to `a.zip`, or a
member literally named `inner.zip!/y.txt`, has a different chain and so a different row.

A new container type extends the chain with its own segment type and no other change: a disk
image adds e.g. `Segment("ewf", 0)`, `Segment("partition", 2)`, `Segment("tsk_inode", 1234)`;
7z/RAR members `Segment("7z", index)`; PDF objects `Segment("pdf_object", number)`. A
segment's locator is an int (an index, an inode, an object number) or bytes (a path).

`location_key` encodes a chain as bytes for the case database's primary key. The encoding is
lossless and order-preserving (in the way of FoundationDB's tuple layer), so rows sort as the
walk visits them: a directory's entries by their name bytes, an archive's members after the
archive file and in member order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Locator of the segment naming a container as a whole (its "corrupt archive" row): it sorts
# before every member (index >= 0).
WHOLE = -1

_INT_BIAS = 1 << 63
_END = b"\x00\x00"  # ends a segment; sorts before any payload byte
_SEP = b"\x00\x01"  # separates path components: `dir/x` sorts right after `dir`
_NUL = b"\x00\xff"  # an escaped NUL byte inside a payload


@dataclass(frozen=True, slots=True)
class Segment:
    """One step of a location: a type indicator and where, inside its parent, the item is.

    Types in use: `root` (absolute path bytes of an evidence root), `os` (path bytes below
    the root; empty for the root itself), and one per container format (`zip`, `tar`,
    `gzip`, `bzip2`, `xz`, ...) whose locator is the member's index in that container
    (`WHOLE` for the container as a whole).
    """

    type: str
    locator: int | bytes

    def __post_init__(self) -> None:
        if not self.type or not self.type.isascii() or ":" in self.type:
            raise ValueError(f"bad segment type {self.type!r}")
        if isinstance(self.locator, bool) or not isinstance(self.locator, int | bytes):
            raise TypeError(f"segment locator must be int or bytes, not {self.locator!r}")


Location = tuple[Segment, ...]


def fs_location(root: bytes, path: bytes) -> Location:
    """The location of `path` (bytes, as walked) found under evidence root `root`."""
    if path == root:
        rel = b""
    elif path.startswith(root.rstrip(b"/") + b"/"):
        rel = path[len(root.rstrip(b"/")) + 1 :]
    else:
        raise ValueError(f"{path!r} is not under {root!r}")
    return (Segment("root", root), Segment("os", rel))


def member_location(container: Location, fmt: str, index: int) -> Location:
    """The location of member `index` (or `WHOLE`) of the `fmt` container at `container`."""
    return (*container, Segment(fmt, index))


def _escape(raw: bytes, split_slash: bool) -> bytes:
    out = raw.replace(b"\x00", _NUL)
    return out.replace(b"/", _SEP) if split_slash else out


def location_key(location: Location) -> bytes:
    """Lossless, order-preserving bytes of a location (the case database's row key)."""
    if not location:
        raise ValueError("empty location")
    parts: list[bytes] = []
    for seg in location:
        parts.append(seg.type.encode("ascii") + b":")
        if isinstance(seg.locator, int):
            parts.append(_escape((seg.locator + _INT_BIAS).to_bytes(8, "big"), False))
        else:
            parts.append(_escape(seg.locator, seg.type == "os"))
        parts.append(_END)
    return b"".join(parts)


def _bytes_json(raw: bytes) -> str | dict[str, str]:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": raw.hex()}


def location_json(location: Location) -> list[list[Any]]:
    """The location as JSON for the manifest: `[["root", "/ev"], ["os", "a.zip"], ["zip", 3]]`.

    Bytes that are not valid UTF-8 are written as `{"hex": ...}`, so the value is lossless.
    """
    return [
        [s.type, s.locator if isinstance(s.locator, int) else _bytes_json(s.locator)]
        for s in location
    ]


def location_from_json(value: list[list[Any]]) -> Location:
    """Inverse of `location_json`."""
    segs = []
    for typ, loc in value:
        if isinstance(loc, int):
            segs.append(Segment(typ, loc))
        elif isinstance(loc, dict):
            segs.append(Segment(typ, bytes.fromhex(loc["hex"])))
        else:
            segs.append(Segment(typ, loc.encode("utf-8")))
    return tuple(segs)


def is_within(location: Location, container: Location) -> bool:
    """True when `location` lies inside the container at `container` (strictly below it)."""
    return len(location) > len(container) and location[: len(container)] == container
