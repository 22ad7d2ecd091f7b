"""Put files into an empty APFS container made by `mkapfs`, for tests of the APFS reader.

No tool here writes files into APFS: apfsprogs' `mkapfs` makes an empty container, the
apfs-dkms driver needs a loadable kernel module (this machine's kernel has none), and no
PyPI package writes APFS. So the container's structure (checkpoint, object maps, space
manager, volume superblock) comes from `mkapfs`, and this module only rewrites the volume's
file-system tree, which a fresh container keeps in one root leaf node, following Apple's
"Apple File System Reference": for each directory an inode record and a directory record
in its parent (keyed by the name's hash: CRC-32C of the NFD, case-folded UTF-32 name, as
the case-insensitive volume mkapfs makes requires); for each file also a data-stream-id
record and one file-extent record pointing at blocks written past the last block mkapfs
used. The node's table of contents, key and value areas, B-tree info and Fletcher-64
checksum are rebuilt; nothing else changes (the space manager is not told about the new
blocks: a reader does not consult it, `apfsck` would complain).
"""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT_DIR = 2  # the root directory's inode number; 1 is its parent
FIRST_INODE = 16  # the first number APFS gives to user files
TYPE_INODE, TYPE_DSTREAM_ID, TYPE_FILE_EXTENT, TYPE_DIR_REC = 3, 6, 8, 9
BTREE, FSTREE = 0x2, 0xE  # object type of a B-tree root node, subtype of the fs tree
NODE_HEADER, TREE_INFO = 56, 40  # btree_node_phys_t up to btn_data; btree_info_t
XF_NAME, XF_DSTREAM = 4, 8  # inode extended fields
S_IFDIR, S_IFREG = 0o040000, 0o100000
DT_DIR, DT_REG = 4, 8


def fletcher64(block: bytes) -> int:
    """The checksum in every APFS object's header, over the block after its first 8 bytes."""
    s1 = s2 = 0
    for (word,) in struct.iter_unpack("<I", block[8:]):
        s1 = (s1 + word) % 0xFFFFFFFF
        s2 = (s2 + s1) % 0xFFFFFFFF
    c1 = 0xFFFFFFFF - ((s1 + s2) % 0xFFFFFFFF)
    c2 = 0xFFFFFFFF - ((s1 + c1) % 0xFFFFFFFF)
    return (c2 << 32) | c1


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def name_hash(name: str) -> int:
    """The 22-bit hash a case-insensitive volume keys directory records by."""
    crc = 0xFFFFFFFF
    for b in unicodedata.normalize("NFD", name.casefold()).encode("utf-32-le"):
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc & 0x3FFFFF


@dataclass(slots=True)
class _Record:
    key: bytes
    value: bytes

    def sort_key(self) -> tuple[int, int, bytes]:
        head = int.from_bytes(self.key[:8], "little")
        kind = head >> 60
        if kind == TYPE_DIR_REC:  # by hash, then name
            rest = (int.from_bytes(self.key[8:12], "little") >> 10).to_bytes(4, "big") + \
                self.key[12:]
        else:  # a file extent by its logical offset; others have no more key
            rest = int.from_bytes(self.key[8:16] or b"\0", "little").to_bytes(8, "big")
        return head & ((1 << 60) - 1), kind, rest


def _head(oid: int, kind: int) -> bytes:
    return (oid | kind << 60).to_bytes(8, "little")


def _xfields(fields: list[tuple[int, int, bytes]]) -> bytes:
    """An inode's extended fields: count and used size, one (type, flags, size) each, then
    each field's data padded to 8 bytes."""
    data = b"".join(d + b"\0" * (-len(d) % 8) for _, _, d in fields)
    return struct.pack("<HH", len(fields), len(data)) + \
        b"".join(struct.pack("<BBH", t, f, len(d)) for t, f, d in fields) + data


def _inode(oid: int, parent: int, mode: int, ns: int, name: str, links: int,
           dstream: tuple[int, int] | None = None) -> _Record:
    value = struct.pack("<QQQQQQQIIIIIIHHQ", parent, oid, ns, ns, ns, ns, 0, links, 0, 0, 0,
                        0, 0, mode, 0, 0)
    fields = [(XF_NAME, 0x2, name.encode() + b"\0")]  # XF_DO_NOT_COPY
    if dstream is not None:
        size, alloced = dstream
        fields.append((XF_DSTREAM, 0x20, struct.pack("<QQQQQ", size, alloced, 0, size, 0)))
    return _Record(_head(oid, TYPE_INODE), value + _xfields(fields))


def _drec(parent: int, name: str, oid: int, ns: int, dtype: int) -> _Record:
    raw = name.encode() + b"\0"
    key = _head(parent, TYPE_DIR_REC) + struct.pack("<I", len(raw) | name_hash(name) << 10) + raw
    return _Record(key, struct.pack("<QQH", oid, ns, dtype))


def add_files(container: Path, files: dict[str, bytes], mtime: int) -> None:
    """Write `files` ("DIR/name": bytes) into the first volume of the empty container at
    `container`, with every time set to `mtime` (seconds since 1970)."""
    data = bytearray(container.read_bytes())
    bs = int.from_bytes(data[36:40], "little")
    writes: list[tuple[int, bytes]] = []
    node_at = _fs_tree_root(data, bs)
    node = bytes(data[node_at : node_at + bs])
    records = _records(node, bs)
    ns = mtime * 1_000_000_000
    words = np.flatnonzero(np.frombuffer(data, np.uint64))
    next_block = int(words[-1]) * 8 // bs + 1  # after the last block mkapfs wrote
    dirs: dict[str, int] = {"": ROOT_DIR}
    children: dict[int, int] = {}
    oid = FIRST_INODE
    for path, content in files.items():
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in dirs:
                parent = dirs["/".join(parts[: i - 1])]
                dirs[d] = oid
                records += [_inode(oid, parent, S_IFDIR | 0o755, ns, parts[i - 1], 0),
                            _drec(parent, parts[i - 1], oid, ns, DT_DIR)]
                children[parent] = children.get(parent, 0) + 1
                oid += 1
        parent = dirs["/".join(parts[:-1])]
        blocks = -(-len(content) // bs)
        if (next_block + blocks) * bs > len(data):
            raise ValueError("the container is too small for these files")
        writes.append((next_block * bs, content))
        records += [_inode(oid, parent, S_IFREG | 0o644, ns, parts[-1], 1,
                           (len(content), blocks * bs)),
                    _drec(parent, parts[-1], oid, ns, DT_REG),
                    _Record(_head(oid, TYPE_DSTREAM_ID), struct.pack("<I", 1))]
        if content:
            records.append(_Record(_head(oid, TYPE_FILE_EXTENT) + struct.pack("<Q", 0),
                                   struct.pack("<QQQ", blocks * bs, next_block, 0)))
        children[parent] = children.get(parent, 0) + 1
        next_block += blocks
        oid += 1
    for r in records:  # a directory inode counts its children
        head = int.from_bytes(r.key[:8], "little")
        if head >> 60 == TYPE_INODE and (head & ((1 << 60) - 1)) in children:
            r.value = r.value[:56] + struct.pack("<I", children[head & ((1 << 60) - 1)]) + \
                r.value[60:]
    writes.append((node_at, _node(node, sorted(records, key=_Record.sort_key), bs)))
    with open(container, "r+b") as fh:  # in place, so the container stays sparse
        for at, chunk in writes:
            fh.seek(at)
            fh.write(chunk)


def _fs_tree_root(data: bytearray, bs: int) -> int:
    """Where the volume's file-system tree root node lies: the one valid B-tree root object
    of subtype "fs tree" (a fresh container has one volume and one such node)."""
    found = []
    for at in range(0, len(data) - bs + 1, bs):
        kind, subtype = struct.unpack_from("<II", data, at + 24)
        if kind & 0xFFFF == BTREE and subtype == FSTREE:
            block = bytes(data[at : at + bs])
            if int.from_bytes(block[:8], "little") == fletcher64(block):
                found.append(at)
    if len(found) != 1:
        raise ValueError(f"expected one file-system tree root node, found {len(found)}")
    flags = int.from_bytes(data[found[0] + 32 : found[0] + 34], "little")
    if flags & 0x3 != 0x3:  # BTNODE_ROOT | BTNODE_LEAF
        raise ValueError("the file-system tree is more than one node")
    return found[0]


def _records(node: bytes, bs: int) -> list[_Record]:
    nkeys = int.from_bytes(node[36:40], "little")
    toc_off, toc_len = struct.unpack_from("<HH", node, 40)
    keys = NODE_HEADER + toc_off + toc_len
    values_end = bs - TREE_INFO
    out = []
    for i in range(nkeys):
        ko, kl, vo, vl = struct.unpack_from("<HHHH", node, NODE_HEADER + toc_off + 8 * i)
        out.append(_Record(node[keys + ko : keys + ko + kl],
                           node[values_end - vo : values_end - vo + vl]))
    return out


def _node(old: bytes, records: list[_Record], bs: int) -> bytes:
    """The root leaf node holding `records` (sorted), with its header, B-tree info and
    checksum."""
    toc_len = 8 * max(16, len(records))
    key_area = b"".join(r.key for r in records)
    value_area = b"".join(r.value for r in reversed(records))  # values grow from the end
    free = bs - NODE_HEADER - TREE_INFO - toc_len - len(key_area) - len(value_area)
    if free < 0:
        raise ValueError("the files do not fit in one file-system tree node")
    toc = bytearray()
    ko = vo = 0
    for r in records:
        vo += len(r.value)
        toc += struct.pack("<HHHH", ko, len(r.key), vo, len(r.value))
        ko += len(r.key)
    node = bytearray(old[:32])
    node += struct.pack("<HHIHHHHHHHH", 0x3, 0, len(records), 0, toc_len, len(key_area), free,
                        0xFFFF, 0, 0xFFFF, 0)
    node += toc.ljust(toc_len, b"\0") + key_area + b"\0" * free + value_area
    info = bytearray(old[bs - TREE_INFO :])
    struct.pack_into("<IIQQ", info, 16, max(len(r.key) for r in records),
                     max(len(r.value) for r in records), len(records), 1)
    node += info
    assert len(node) == bs
    node[:8] = fletcher64(bytes(node)).to_bytes(8, "little")
    return bytes(node)
