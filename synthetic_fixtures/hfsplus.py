"""HFS+ volumes with files, written directly (Apple Technical Note TN1150).

Nothing in Debian 12 or on PyPI makes one here: hfsprogs (`mkfs.hfsplus`) is not in Debian 12's
main archive, hfsutils writes classic HFS only, and the hfsplus package (libhfsp) edits an
existing HFS+ volume but cannot create one. So this module lays out the smallest volume
TN1150 allows: the volume header (and its copy at the end), an allocation bitmap, an empty
extents-overflow B-tree and a catalog B-tree of one header node and one leaf node holding the
folder, file and thread records; each file's data fork is one contiguous extent. Names are
ASCII, compared case-insensitively as HFS+ orders them. Enough for a few dozen files.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

BLOCK = 4096
NODE = 4096
HFS_EPOCH_OFFSET = 2_082_844_800  # seconds from 1904-01-01 to 1970-01-01
ROOT_PARENT, ROOT_FOLDER, FIRST_USER_ID = 1, 2, 16
S_IFDIR, S_IFREG = 0o040000, 0o100000


@dataclass(frozen=True, slots=True)
class _Node:
    cnid: int
    parent: int
    name: str
    data: bytes | None  # None for a folder
    start: int = 0  # first allocation block of a file's data


def _key(parent: int, name: str) -> bytes:
    units = name.encode("utf-16-be")
    return struct.pack(">HIH", 6 + len(units), parent, len(units) // 2) + units


def _uni(name: str) -> bytes:
    units = name.encode("utf-16-be")
    return struct.pack(">H", len(units) // 2) + units


def _fork(size: int, start: int, blocks: int) -> bytes:
    extents = struct.pack(">II", start, blocks) + bytes(56) if blocks else bytes(64)
    return struct.pack(">QII", size, 0, blocks) + extents


def _perms(mode: int) -> bytes:
    return struct.pack(">IIBBHI", 0, 0, 0, 0, mode, 0)


def _node(kind: int, height: int, records: list[bytes]) -> bytes:
    node = bytearray(NODE)
    struct.pack_into(">IIbBHH", node, 0, 0, 0, kind, height, len(records), 0)
    offsets, pos = [], 14
    for r in records:
        offsets.append(pos)
        node[pos : pos + len(r)] = r
        pos += len(r)
    offsets.append(pos)  # where free space starts
    if pos + 2 * len(offsets) > NODE:
        raise ValueError("catalog records do not fit in one leaf node")
    for i, off in enumerate(offsets):
        struct.pack_into(">H", node, NODE - 2 * (i + 1), off)
    return bytes(node)


def _header_node(total: int, leaf_records: int, depth: int, max_key: int, attrs: int) -> bytes:
    header = struct.pack(">HIIIIHHIIHIBBI", depth, 1 if depth else 0, leaf_records,
                         1 if depth else 0, 1 if depth else 0, NODE, max_key, total, 0, 0,
                         NODE, 0, 0, attrs) + bytes(64)
    used = bytearray(NODE - 256)
    for i in range(total):
        used[i // 8] |= 0x80 >> (i % 8)
    return _node(1, 0, [header, bytes(128), bytes(used)])


def hfsplus_image(path: Path, size_mib: int, files: dict[str, bytes], mtime: int,
                  label: str = "EVIDENCE", loop_in: str | None = None) -> None:
    """Write an HFS+ volume of `size_mib` MiB holding `files` ("dir/name": bytes), every
    time set to `mtime` (Unix seconds). `loop_in` (hostile) names a folder that gets a
    folder record "again" carrying that folder's own ID: a directory loop."""
    total_blocks = size_mib * (1 << 20) // BLOCK
    stamp = mtime + HFS_EPOCH_OFFSET
    folders: dict[str, int] = {"": ROOT_FOLDER}
    nodes: list[_Node] = []
    next_id = FIRST_USER_ID
    next_block = 5  # 0: headers, 1: bitmap, 2: extents tree, 3-4: catalog tree
    for name in sorted(files):
        parts = name.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in folders:
                folders[d] = next_id
                nodes.append(_Node(next_id, folders["/".join(parts[: i - 1])], parts[i - 1],
                                   None))
                next_id += 1
        data = files[name]
        nodes.append(_Node(next_id, folders["/".join(parts[:-1])], parts[-1], data, next_block))
        next_id += 1
        next_block += -(-len(data) // BLOCK)
    if next_block >= total_blocks - 1:
        raise ValueError("files do not fit in the volume")

    def valence(cnid: int) -> int:
        return sum(1 for n in nodes if n.parent == cnid)

    def folder(cnid: int) -> bytes:
        return struct.pack(">HHII5I", 1, 0, valence(cnid), cnid, *[stamp] * 5) + \
            _perms(S_IFDIR | 0o755) + bytes(32) + struct.pack(">II", 0, 0)

    records: list[tuple[tuple[int, str], bytes]] = [
        ((ROOT_PARENT, label.lower()), _key(ROOT_PARENT, label) + folder(ROOT_FOLDER)),
        ((ROOT_FOLDER, ""), _key(ROOT_FOLDER, "") +
         struct.pack(">HHI", 3, 0, ROOT_PARENT) + _uni(label)),
    ]
    for n in nodes:
        if n.data is None:
            body = folder(n.cnid)
            thread = 3
        else:
            blocks = -(-len(n.data) // BLOCK)
            body = struct.pack(">HHII5I", 2, 0, 0, n.cnid, *[stamp] * 5) + \
                _perms(S_IFREG | 0o644) + bytes(32) + struct.pack(">II", 0, 0) + \
                _fork(len(n.data), n.start, blocks) + _fork(0, 0, 0)
            thread = 4
        records.append(((n.parent, n.name.lower()), _key(n.parent, n.name) + body))
        records.append(((n.cnid, ""), _key(n.cnid, "") +
                        struct.pack(">HHI", thread, 0, n.parent) + _uni(n.name)))
    if loop_in is not None:
        own = folders[loop_in]
        records.append(((own, "again"), _key(own, "again") + folder(own)))
    records.sort(key=lambda r: r[0])
    leaf = _node(-1, 1, [r for _, r in records])
    catalog = _header_node(2, len(records), 1, 516, 6) + leaf
    extents = _header_node(1, 0, 0, 10, 2)

    used = next_block
    bitmap = bytearray(BLOCK)
    for b in list(range(used)) + [total_blocks - 1]:  # the last block holds the copy
        bitmap[b // 8] |= 0x80 >> (b % 8)
    header = bytearray(512)
    struct.pack_into(">2sHI4sI4I", header, 0, b"H+", 4, 0x100, b"10.0", 0, stamp, stamp,
                     stamp, stamp)
    struct.pack_into(">8I", header, 32, sum(1 for n in nodes if n.data is not None),
                     sum(1 for n in nodes if n.data is None), BLOCK, total_blocks,
                     total_blocks - used - 1, used, BLOCK, BLOCK)
    struct.pack_into(">II", header, 64, next_id, 1)
    header[112:192] = _fork(BLOCK, 1, 1)
    header[192:272] = _fork(NODE, 2, 1)
    header[272:352] = _fork(2 * NODE, 3, 2)
    with open(path, "wb") as fh:
        fh.truncate(total_blocks * BLOCK)
        for at, data in ((1024, bytes(header)), (BLOCK, bytes(bitmap)), (2 * BLOCK, extents),
                         (3 * BLOCK, catalog), (total_blocks * BLOCK - 1024, bytes(header))):
            fh.seek(at)
            fh.write(data)
        for n in nodes:
            if n.data is not None:
                fh.seek(n.start * BLOCK)
                fh.write(n.data)
