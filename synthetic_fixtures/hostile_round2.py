"""Hostile inputs of the second hardening round, each built in memory or on disk from a seed.

- label collisions: a directory `a.zip!` next to `a.zip`, and a zip member literally named
  `inner.zip!/y.txt` next to a nested `inner.zip` holding `y.txt`; one of each colliding pair
  is a known-bad JPEG that a last-writer-wins manifest would hide;
- a zip with one member name that is not UTF-8 under the UTF-8 flag, among good members;
- a zip member whose header declares a 300 MiB size while it holds a small JPEG;
- a GNU sparse tar that is a few KiB on disk and GiBs once its holes are filled;
- VICS JSON nested far deeper than any real export (the reader must bound depth);
- names drawn to print like archive labels (hypothesis-generated trees);
- someone's own directory given as the case directory, and a policy file that is not UTF-8;
- media that cost memory or time to decode: a huge RGBA PNG, an MP4 whose sample table
  lies, a progressive JPEG of repeated scans, an AVI of huge frames, and a tar.gz of big
  members; and a hash list whose cells are spreadsheet formulas.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthetic_fixtures.evidence import ZIP_DATE, image_bytes

MiB = 1024 * 1024


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_DATE), data)
    return buf.getvalue()


@dataclass(frozen=True, slots=True)
class Collisions:
    root: Path
    known_bad: bytes  # the JPEG a bank lists; two rows hold it, each shadowed by a label twin
    benign: bytes  # the JPEG its label twins hold
    rows: int  # manifest rows the tree must give (files and members)


def write_label_collisions(root: Path, seed: int) -> Collisions:
    """Evidence where two pairs of distinct items print the same label."""
    rng = np.random.default_rng([seed, 1100])
    bad = image_bytes(rng, "jpeg", (96, 64))
    benign = image_bytes(rng, "jpeg", (96, 64))
    root.mkdir(parents=True)
    # ev/a.zip!/bad.jpg is a zip member (known-bad) and a file in the directory `a.zip!`
    (root / "a.zip").write_bytes(_zip([("bad.jpg", bad), ("y.txt", b"in the zip\n")]))
    (root / "a.zip!").mkdir()
    (root / "a.zip!" / "bad.jpg").write_bytes(benign)
    (root / "a.zip!" / "y.txt").write_bytes(b"in the directory\n")
    # ev/outer.zip!/inner.zip!/y.txt is a member of a nested zip (known-bad) and a member of
    # outer.zip literally named `inner.zip!/y.txt`
    inner = _zip([("y.txt", bad)])
    (root / "outer.zip").write_bytes(_zip([("inner.zip", inner), ("inner.zip!/y.txt", benign)]))
    # files: a.zip, a.zip!/bad.jpg, a.zip!/y.txt, outer.zip; members: 2 + 2 + 1
    return Collisions(root, bad, benign, rows=9)


def write_generated_names(root: Path, dirs: list[str], members: list[str]) -> None:
    """A tree of names drawn to print like archive labels (`dirs`, `members`: hypothesis
    draws them from `ab!/. `): a directory per name in `dirs` holding a file `y`, a zip
    `a.zip` whose members are `members` (repeated names and `!/` inside names allowed), and
    a directory `a.zip!` holding a file whose label the first member's label shadows. A
    manifest keyed by label loses rows on it (the last writer wins)."""
    root.mkdir(parents=True)
    for d in dirs:
        (root / d).mkdir(exist_ok=True)
        (root / d / "y").write_bytes(d.encode())
    (root / "a.zip").write_bytes(_zip([(m, m.encode()) for m in members]))
    (root / "a.zip!").mkdir(exist_ok=True)
    shadow = members[0].split("/")[0].strip(".") or "m"
    (root / "a.zip!" / shadow).write_bytes(b"shadow")


def write_foreign_directory(root: Path) -> list[Path]:
    """A directory that is someone's own, not a case of the tool: a report, a hidden
    `.cache.tmp` and a file named like the tool's own temp files (mode 0755). Given as
    `--case` (or as evidence with itself as the case), round 1 deleted the temp files,
    overwrote the report and changed the mode. Returns the files."""
    root.mkdir(mode=0o755, parents=True)
    os.chmod(root, 0o755)
    files = [root / "report.html", root / ".cache.tmp", root / ".osec-triage-tmp.x.tmp"]
    for f, text in zip(files, ("my report\n", "my cache\n", "looks like ours, is not\n"),
                       strict=True):
        f.write_text(text)
    return files


def non_utf8_policy() -> bytes:
    """A policy file with a Latin-1 byte in a comment (`café`): a traceback on round 1."""
    return b"[limits]\n# caf\xe9\npixel_limit = 100\n"


def zip_with_bad_utf8_name(good: list[tuple[str, bytes]], bad_name: bytes, data: bytes) -> bytes:
    """A zip whose middle member's name is not UTF-8 although its UTF-8 flag (bit 11) is set.

    zipfile refuses to write such a name, so a placeholder of the same length is written and
    patched, with the flag, in the local header and the central directory.
    """
    placeholder = b"#" * len(bad_name)
    members = [*good[:1], (placeholder.decode(), data), *good[1:]]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_DATE), payload)
    raw = bytearray(buf.getvalue())
    for sig, flags_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        at = raw.index(placeholder) - name_at
        assert raw[at : at + 4] == sig
        raw[at + flags_at + 1] |= 0x08  # bit 11: the name is UTF-8
        raw[at + name_at : at + name_at + len(bad_name)] = bad_name
    return bytes(raw)


def zip_with_lying_size(name: str, data: bytes, declared: int = 300 * MiB) -> bytes:
    """A stored zip member holding `data` whose headers declare `declared` bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_DATE), data)
    raw = bytearray(buf.getvalue())
    size = struct.pack("<I", len(data))
    lie = struct.pack("<I", declared)
    # uncompressed size: local header offset 22, central directory entry offset 24
    local = raw.index(b"PK\x03\x04")
    assert raw[local + 22 : local + 26] == size
    raw[local + 22 : local + 26] = lie
    central = raw.index(b"PK\x01\x02")
    assert raw[central + 24 : central + 28] == size
    raw[central + 24 : central + 28] = lie
    return bytes(raw)


def sparse_tar(path: Path, members: int, member_bytes: int) -> None:
    """A GNU sparse tar (`tar -S`): each member is `member_bytes` long, all hole but its last
    512 bytes, so the tar is a few KiB. Made with GNU tar from sparse files in a scratch
    directory next to `path` (tarfile can read sparse members but not write them)."""
    scratch = path.parent / f".{path.name}.src"
    scratch.mkdir()
    try:
        for k in range(members):
            with open(scratch / f"hole{k:02d}.bin", "wb") as f:
                f.truncate(member_bytes - 512)
                f.seek(member_bytes - 512)
                f.write(bytes([k + 1]) * 512)
        subprocess.run(["tar", "--format=gnu", "-S", "-cf", str(path), "-C", str(scratch),
                        *sorted(os.listdir(scratch))], check=True, capture_output=True)
    finally:
        shutil.rmtree(scratch)


def deep_vics(depth: int) -> bytes:
    """A VICS-looking document whose one Media record nests `depth` arrays deep."""
    head = b'{"odata.metadata": "x/DataModels/1.3.xml#Cases", "value": [{"MD5": "'
    head += b"0" * 32 + b'", "Deep": '
    return head + b"[" * depth + b"]" * depth + b"}]}\n"


def write_round2(root: Path, seed: int) -> dict[str, Path]:
    """The archive cases above as files under `root`; returns name -> path."""
    rng = np.random.default_rng([seed, 1200])
    jpeg = image_bytes(rng, "jpeg", (64, 48))
    root.mkdir(parents=True, exist_ok=True)
    out = {
        "bad_utf8.zip": zip_with_bad_utf8_name(
            [("first.txt", b"first\n"), ("last.jpg", jpeg)], b"caf\xe9\xff.jpg", jpeg
        ),
        "lying_size.zip": zip_with_lying_size("known.jpg", jpeg),
    }
    paths = {}
    for name, data in out.items():
        (root / name).write_bytes(data)
        paths[name] = root / name
    paths["sparse.tar"] = root / "sparse.tar"
    sparse_tar(paths["sparse.tar"], members=24, member_bytes=200 * MiB)
    return paths


def mp4_with_patched_sample_count(path: Path, seed: int,
                                  count: int | None = 500_000_000) -> None:
    """A tiny MP4 (a few frames, written by OpenCV) whose `stsz` box claims `count` samples
    (None: left as written, the control case)."""
    from synthetic_fixtures.videos import make_video

    make_video(np.random.default_rng([seed, 1300]), path, seconds=0.6, fps=5, size=(32, 32))
    if count is None:
        return
    raw = bytearray(path.read_bytes())
    at = raw.index(b"stsz")
    # stsz: size, "stsz", version/flags (4), sample_size (4, 0 = a table follows), count (4)
    assert raw[at + 8 : at + 12] == b"\0\0\0\0"
    raw[at + 12 : at + 16] = struct.pack(">I", count)
    path.write_bytes(bytes(raw))


def huge_rgba_png(width: int = 12000, height: int = 12000) -> bytes:
    """A valid RGBA PNG of `width` x `height` transparent pixels that compresses to ~0.5 MB.

    Built row by row with zlib, so making it costs little memory; decoding it whole costs
    `width * height * 4` bytes and more.
    """
    import zlib

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(
            ">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\0" + bytes(width * 4)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def slow_progressive_jpeg(seed: int, side: int = 1024, scans: int = 400) -> bytes:
    """A progressive JPEG whose scans are repeated many times: each repeat is a full
    refinement pass for the decoder, so the file decodes in seconds per MB."""
    from PIL import Image

    rng = np.random.default_rng([seed, 1400])
    img = Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, progressive=True)
    data = buf.getvalue()
    # Split into markers; repeat the last AC-refinement scan (SOS ... up to the next marker)
    sos = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xDA]
    last = sos[-1]
    end = data.rindex(b"\xff\xd9")
    scan = data[last:end]
    return data[:end] + scan * scans + b"\xff\xd9"


# Cells a spreadsheet would run (OWASP CSV injection), for the ids and labels of a hash list:
# each opens with `=`, `+`, `-`, `@`, a tab or a CR, some behind a quote already.
FORMULA_CELLS = ("=1+1", "+1+1", "-1+1", "@SUM(A1)", "=cmd|' /C calc'!A0", "'=1+1", "''@x",
                 '=HYPERLINK("http://x.invalid/","y")', '=DDE("cmd";"/C calc";"!A0")',
                 "\t=1+1", "\r=1+1", "-", "'")


def formula_cell_list(seed: int, quoted: bool) -> str:
    """A CSV hash list whose ids, categories and series are `FORMULA_CELLS` (`quoted`: the
    cells that need CSV quoting, else only those that do not, so the importer's unquoted bulk
    path reads them). Cells are written as `bank export` would write them for a bank holding
    these exact labels, i.e. neutralised, so importing gives the bank those labels."""
    import csv

    from hashing.output import neutralise_text

    rng = np.random.default_rng([seed, 1500])
    cells = [c for c in FORMULA_CELLS if any(ch in c for ch in '"\r\t,') == quoted]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n",
                        quoting=csv.QUOTE_ALL if quoted else csv.QUOTE_MINIMAL)
    writer.writerow(["id", "md5", "category", "series"])
    for k, cell in enumerate(cells):
        md5 = rng.bytes(16).hex()
        writer.writerow([neutralise_text(f"{cell}{k}" if k % 2 else cell), md5,
                         neutralise_text(cell), neutralise_text(cell)])
    return buf.getvalue()


def flat_jpeg(side: int) -> bytes:
    """A baseline greyscale JPEG of `side` x `side` mid-grey pixels (`side` a multiple of 32),
    written without ever holding its pixels: every 8x8 block of flat 128 grey is the same 6
    bits (DC difference 0, then end of block), so the scan is one 3-byte pattern per 4
    blocks behind the header of a small JPEG of the same kind, its size patched."""
    from PIL import Image

    if side % 32:
        raise ValueError("side must be a multiple of 32")
    buf = io.BytesIO()
    Image.new("L", (16, 8), 128).save(buf, "JPEG", quality=75)
    small = buf.getvalue()
    sos = small.index(b"\xff\xda")
    header = bytearray(small[: sos + 2 + int.from_bytes(small[sos + 2 : sos + 4], "big")])
    assert small[len(header) :] == b"\x28\xaf\xff\xd9"  # 2 blocks of "00" + "1010", padding
    sof = header.index(b"\xff\xc0")
    header[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    return bytes(header) + b"\x28\xa2\x8a" * ((side // 8) ** 2 // 4) + b"\xff\xd9"


def mjpeg_avi(frames: list[bytes], width: int, height: int, fps: int = 1) -> bytes:
    """An AVI (RIFF, one MJPEG video stream, with an idx1 index) holding JPEG `frames`.

    Written by hand because OpenCV's writer would need every frame's pixels in memory."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return tag + struct.pack("<I", len(body)) + body + b"\0" * (len(body) % 2)

    def listed(kind: bytes, body: bytes) -> bytes:
        return chunk(b"LIST", kind + body)

    biggest = max(map(len, frames))
    avih = struct.pack("<14I", 1_000_000 // fps, 0, 0, 0x10, len(frames), 0, 1, biggest,
                       width, height, 0, 0, 0, 0)
    strh = struct.pack("<4s4sIHH8I4h", b"vids", b"MJPG", 0, 0, 0, 0, 1, fps, 0, len(frames),
                       biggest, 0xFFFFFFFF, 0, 0, 0, width, height)
    strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG",
                       width * height * 3, 0, 0, 0, 0)
    movi, index, at = [], [], 4
    for frame in frames:
        c = chunk(b"00dc", frame)
        index.append(struct.pack("<4sIII", b"00dc", 0x10, at, len(frame)))
        movi.append(c)
        at += len(c)
    body = (listed(b"hdrl", chunk(b"avih", avih)
                   + listed(b"strl", chunk(b"strh", strh) + chunk(b"strf", strf)))
            + listed(b"movi", b"".join(movi)) + chunk(b"idx1", b"".join(index)))
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"AVI " + body


def huge_frame_video(side: int = 12000, frames: int = 2) -> bytes:
    """A ~2 MB MJPEG AVI of `frames` flat frames of `side` x `side` (under the pixel limit at
    the default 12000): each decoded frame costs ~1 GiB as YUV, BGR and RGB at once."""
    frame = flat_jpeg(side)
    return mjpeg_avi([frame] * frames, side, side)


class _Runs(io.RawIOBase):
    """`size` bytes of random byte values repeated in runs of 64: deflate shrinks them ~20x,
    under the expansion ratio, and a member of them is made and read without holding it."""

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self._rng, self._left = rng, size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self._left, 1 << 20) // 64 * 64 or min(len(buf), self._left)
        block = np.repeat(self._rng.integers(0, 256, -(-n // 64), dtype=np.uint8), 64)[:n]
        buf[:n] = block.tobytes()
        self._left -= n
        return n


def big_member_targz(path: Path, seed: int, members: int = 5,
                     member_bytes: int = 200 * MiB) -> None:
    """A tar.gz inside every walk limit whose members are each just under the member limit
    (default 5 x 200 MiB, ~50 MB on disk): many of them in flight at once cost GiBs."""
    import tarfile

    rng = np.random.default_rng([seed, 1700])
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        for k in range(members):
            info = tarfile.TarInfo(f"part{k}.bin")
            info.size, info.mtime = member_bytes, 1_600_000_000
            tf.addfile(info, io.BufferedReader(_Runs(rng, member_bytes)))
