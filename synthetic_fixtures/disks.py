"""Disk and volume images with known pictures planted in them, built with Debian's own tools.

Python cannot write FAT, ext, NTFS, ISO 9660 or EWF faithfully, so the images are made the way
an examiner would meet them: `mkfs.vfat` + `mtools` (files copied and deleted without
mounting), `mkfs.ext4 -d` / `mkfs.ext2 -d` + `debugfs` (a deleted file whose blocks are still
referenced), `mkntfs` + `ntfscp` (NTFS populated without mounting) or, for directories and a
deleted file, an `ntfs-3g` FUSE mount of the image file (ntfs-3g has NTFS's directory-index
code only behind FUSE), `hformat`/`hcopy` (classic HFS, no mount),
`synthetic_fixtures.hfsplus` (HFS+: no tool here creates one), `mkapfs` +
`synthetic_fixtures.apfs` (APFS: no tool here adds files), pycdlib (UDF with an ISO 9660
bridge), `xorriso` (ISO 9660 with Rock Ridge and Joliet), `sfdisk` (MBR and GPT tables),
`ewfacquirestream` (EWF with stored MD5 and SHA-1, split into segments),
`synthetic_fixtures.ewf2` (Ex01: no tool here writes EWF2) and `cryptsetup` (a LUKS
volume). BitLocker cannot be written on Linux; its volume is a boot sector carrying
BitLocker's signature, which is all detection reads.
`scripts/ensure_disk_tools.sh` (run by `make test`) installs the tools.

`make_disk_evidence` returns, for each container, which planted file must be found how: a
byte-identical copy of a known picture (by MD5), a re-encoded one (by PDQ) and, where the file
system keeps it recoverable, a deleted copy. `make_hostile_disks` writes the damaged cases.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from synthetic_fixtures.apfs import add_files
from synthetic_fixtures.ewf2 import write_ex01
from synthetic_fixtures.hfsplus import hfsplus_image
from synthetic_fixtures.photos import make_photo

TOOLS = {
    "mkfs.vfat": "dosfstools", "mcopy": "mtools", "mmd": "mtools", "mdel": "mtools",
    "mkfs.ext4": "e2fsprogs", "mkfs.ext2": "e2fsprogs", "debugfs": "e2fsprogs",
    "mkntfs": "ntfs-3g", "ntfscp": "ntfs-3g", "ntfs-3g": "ntfs-3g", "xorriso": "xorriso",
    "sfdisk": "fdisk", "umount": "mount",
    "ewfacquirestream": "ewf-tools", "cryptsetup": "cryptsetup-bin",
    "mkfs.exfat": "exfatprogs", "mkudffs": "udftools", "mkapfs": "apfsprogs",
    "hformat": "hfsutils", "hcopy": "hfsutils",
    "hmkdir": "hfsutils", "humount": "hfsutils",
}
MiB = 1 << 20
SECTOR = 512
MIN_PROBE = 64 * 1024  # files smaller than triage.disks.MIN_IMAGE_BYTES are never probed
BASE_MTIME = 1_609_459_200  # 2021-01-01T00:00:00Z: file times inside the images


class ToolMissing(RuntimeError):
    """A Debian tool the fixtures need is not installed (names the package)."""


def _which(tool: str) -> str | None:
    # mkfs.* and sfdisk live in sbin, which a non-login PATH may lack
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def missing_tools() -> list[str]:
    """Debian packages still to install for the disk fixtures (empty when all are there)."""
    return sorted({pkg for tool, pkg in TOOLS.items() if _which(tool) is None})


def _run(cmd: Sequence[str], stdin: bytes | None = None, home: Path | None = None) -> None:
    exe = _which(cmd[0])
    if exe is None:
        raise ToolMissing(f"{cmd[0]} not found: install Debian package {TOOLS.get(cmd[0])} "
                          "(scripts/ensure_disk_tools.sh)")
    cmd = [exe, *cmd[1:]]
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "E2FSPROGS_FAKE_TIME": str(BASE_MTIME)}
    if home is not None:  # hfsutils keeps its "mounted" volume in $HOME/.hcwd
        env["HOME"] = str(home)
    subprocess.run(list(cmd), input=stdin, check=True, capture_output=True, env=env)


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@dataclass(frozen=True, slots=True)
class Known:
    """One known picture: the bytes the bank's MD5 and PDQ were taken from."""

    entry: str
    data: bytes
    rgb: np.ndarray = field(repr=False, compare=False)


@dataclass(slots=True)
class DiskEvidence:
    """The evidence folder, the known pictures, and where each must be found.

    `expect[container]` maps a record label relative to the evidence root (such as
    `laptop.E01!/p1/home/user/a.jpg`) to (bank entry, how: "md5" or "pdq", deleted?).
    """

    root: Path
    known: list[Known]
    expect: dict[str, dict[str, tuple[str, str, bool]]] = field(default_factory=dict)


def _known_set(rng: np.random.Generator, n: int) -> list[Known]:
    out = []
    for i in range(n):
        rgb = make_photo(rng, 320, 240)
        out.append(Known(f"K-{i:02d}", jpeg(rgb, 92), rgb))
    return out


class _Plan:
    """Hands out known pictures to containers: each gets its own, so a test says which
    container found what."""

    def __init__(self, known: list[Known], ev: DiskEvidence) -> None:
        self._left = list(known)
        self.ev = ev

    def exact(self, container: str, label: str, deleted: bool = False) -> bytes:
        k = self._left.pop(0)
        self.ev.expect.setdefault(container, {})[label] = (k.entry, "md5", deleted)
        return k.data

    def reencoded(self, container: str, label: str) -> bytes:
        k = self._left.pop(0)
        self.ev.expect.setdefault(container, {})[label] = (k.entry, "pdq", False)
        return jpeg(k.rgb, 55)


# --- building blocks --------------------------------------------------------------------


def fat_image(path: Path, size_mib: int, files: dict[str, bytes], deleted: Sequence[str] = (),
              fat: int | None = None) -> None:
    """A FAT file system holding `files` ("DIR/name": bytes); `deleted` are copied then
    deleted with `mdel`, which frees the clusters but leaves them unchanged."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size_mib * MiB)
    _run(["mkfs.vfat", *(["-F", str(fat)] if fat else []), "-n", "EVIDENCE", str(path)])
    staging = path.parent / (path.name + ".d")
    made: set[str] = set()
    for name, data in files.items():
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                _run(["mmd", "-i", str(path), f"::/{d}"])
                made.add(d)
        staging.mkdir(exist_ok=True)
        src = staging / "f"
        src.write_bytes(data)
        _run(["mcopy", "-i", str(path), str(src), f"::/{name}"])
    for name in deleted:
        _run(["mdel", "-i", str(path), f"::/{name}"])
    shutil.rmtree(staging, ignore_errors=True)


def _tree(root: Path, files: dict[str, bytes]) -> None:
    """Files for `mkfs.ext4 -d` / xorriso, with fixed times (the tools copy them)."""
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.utime(p, (BASE_MTIME, BASE_MTIME))


def ext_image(path: Path, size_mib: int, files: dict[str, bytes], kind: str = "ext4",
              deleted: Sequence[str] = ()) -> None:
    """An ext2/3/4 file system built from a directory (`mkfs.ext4 -d`); `deleted` files are
    removed with `debugfs rm`. On ext2 the inode keeps its block map, so TSK recovers them."""
    staging = path.parent / (path.name + ".d")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    _tree(staging, files)
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size_mib * MiB)
    _run([f"mkfs.{kind}", "-q", "-F", "-d", str(staging), str(path)])
    for name in deleted:
        _run(["debugfs", "-w", "-R", f"rm /{name}", str(path)])
    shutil.rmtree(staging, ignore_errors=True)


def ntfs_image(path: Path, size_mib: int, files: dict[str, bytes],
               deleted: Sequence[str] = (), after: dict[str, bytes] | None = None) -> None:
    """NTFS made by `mkntfs`. Root-level files without deletions are written by `ntfscp`
    (no mount); directories and deletions need NTFS's own directory-index code, which
    ntfs-3g has only behind FUSE, so then the volume is filled through an `ntfs-3g` mount
    of the image file (root and /dev/fuse, as `make test` has) and unmounted: `deleted`
    files are removed there, which frees their MFT records as Windows does; `after` files
    are written last, so they may take over a deleted file's record."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size_mib * MiB)
    _run(["mkntfs", "-q", "-F", "-f", "-L", "EVIDENCE", str(path)])
    if not deleted and not after and not any("/" in name for name in files):
        staging = path.parent / (path.name + ".f")
        for name, data in files.items():
            staging.write_bytes(data)
            _run(["ntfscp", "-f", str(path), str(staging), name])
        staging.unlink(missing_ok=True)
        return
    mnt = path.parent / (path.name + ".mnt")
    mnt.mkdir(exist_ok=True)
    exe = _which("ntfs-3g")
    if exe is None or not os.path.exists("/dev/fuse"):
        raise ToolMissing("NTFS with directories needs ntfs-3g and /dev/fuse (Debian "
                          "package ntfs-3g; run as root)")
    # no_detach: the process ends only when every write is on the image
    daemon = subprocess.Popen([exe, "-o", "no_detach", str(path), str(mnt)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            if os.path.ismount(mnt) or daemon.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.ismount(mnt):
            err = daemon.stderr.read().decode(errors="replace") if daemon.stderr else ""
            raise ToolMissing(f"ntfs-3g could not mount {path.name}: {err.strip()}")
        _tree(mnt, files)
        for name in deleted:
            (mnt / name).unlink()
        _tree(mnt, after or {})
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["umount", str(mnt)], check=True, capture_output=True)
        daemon.wait(timeout=60)
        mnt.rmdir()


def exfat_image(path: Path, size_mib: int, files: dict[str, bytes],
                deleted: Sequence[str] = ()) -> None:
    """exFAT formatted by `mkfs.exfat`, then filled here: no Debian tool writes files into
    exFAT without mounting, so each file's directory entry set (File, Stream Extension, File
    Name entries with their checksums and name hash, exFAT specification sections 6-7) and its
    data (contiguous clusters, NoFatChain, marked in the allocation bitmap) are written
    directly. Only root-level files; a `deleted` file's entries have the InUse bit cleared
    and its clusters freed, which leaves its content recoverable from the entry."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size_mib * MiB)
    _run(["mkfs.exfat", "-L", "EVIDENCE", str(path)])
    img = bytearray(path.read_bytes())
    sector = 1 << img[108]
    cluster = sector << img[109]
    heap = int.from_bytes(img[88:92], "little") * sector
    root = int.from_bytes(img[96:100], "little")

    def at(c: int) -> int:
        return heap + (c - 2) * cluster

    entries = [at(root) + 32 * i for i in range(cluster // 32)]
    bitmap = next(e for e in entries if img[e] == 0x81)
    bitmap_at = at(int.from_bytes(img[bitmap + 20 : bitmap + 24], "little"))
    count = int.from_bytes(img[92:96], "little")
    used = [bool(img[bitmap_at + i // 8] >> (i % 8) & 1) for i in range(count)]
    free = iter(e for e in entries if img[e] == 0)
    for name, data in files.items():
        n = max(1, -(-len(data) // cluster))
        first = next(i for i in range(count) if not any(used[i : i + n]) and i + n <= count)
        for i in range(first, first + n):
            used[i] = name not in deleted
        img[at(first + 2) : at(first + 2) + len(data)] = data
        units = name.encode("utf-16-le")
        chars = [units[i : i + 30] for i in range(0, len(units), 30)]
        dos = ((41 << 25) | (1 << 21) | (1 << 16))  # 2021-01-01 00:00:00 in DOS form
        file_e = bytearray(32)
        file_e[0], file_e[1] = 0x85, 1 + len(chars)
        file_e[4:6] = (0x20).to_bytes(2, "little")  # archive attribute
        for off in (8, 12, 16):
            file_e[off : off + 4] = dos.to_bytes(4, "little")
        stream = bytearray(32)
        stream[0], stream[1], stream[3] = 0xC0, 0x03, len(name)  # AllocationPossible|NoFatChain
        stream[4:6] = _exfat_hash(name.upper().encode("utf-16-le")).to_bytes(2, "little")
        stream[8:16] = len(data).to_bytes(8, "little")
        stream[20:24] = (first + 2).to_bytes(4, "little")
        stream[24:32] = len(data).to_bytes(8, "little")
        names = [bytes([0xC1, 0]) + c.ljust(30, b"\0") for c in chars]
        entry_set = bytearray(file_e + stream + b"".join(names))
        entry_set[2:4] = _exfat_hash(bytes(entry_set), skip=(2, 3)).to_bytes(2, "little")
        if name in deleted:
            for i in range(0, len(entry_set), 32):
                entry_set[i] &= 0x7F  # InUse cleared
        for i in range(0, len(entry_set), 32):
            e = next(free)
            img[e : e + 32] = entry_set[i : i + 32]
    for i, bit in enumerate(used):
        mask = 1 << (i % 8)
        img[bitmap_at + i // 8] = (img[bitmap_at + i // 8] | mask) if bit else \
            (img[bitmap_at + i // 8] & ~mask)
    path.write_bytes(bytes(img))


def _exfat_hash(data: bytes, skip: tuple[int, ...] = ()) -> int:
    """The 16-bit rotate-and-add checksum exFAT uses for name hashes and entry sets."""
    h = 0
    for i, b in enumerate(data):
        if i not in skip:
            h = (((h & 1) << 15) | (h >> 1)) + b & 0xFFFF
    return h


def apfs_container(path: Path, size_mib: int = 128, files: dict[str, bytes] | None = None,
                   mtime: int = BASE_MTIME) -> None:
    """An APFS container with one volume, by `mkapfs` (apfsprogs), holding `files`: no tool
    here writes files into APFS, so `synthetic_fixtures.apfs` adds them to the empty
    volume's file-system tree."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size_mib * MiB)
    _run(["mkapfs", "-L", "EVIDENCE", str(path)])
    if files:
        add_files(path, files, mtime)


def iso_image(path: Path, files: dict[str, bytes]) -> None:
    staging = path.parent / (path.name + ".d")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    _tree(staging, files)
    _run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "EVIDENCE",
          "-o", str(path), str(staging)])
    shutil.rmtree(staging, ignore_errors=True)


def udf_bridge_image(path: Path, files: dict[str, bytes]) -> None:
    """A UDF 2.60 disc with an ISO 9660 (and Joliet) side naming the same files, written by
    pycdlib (xorriso writes no UDF). Directory and file names are lower-case ASCII."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(udf="2.60", interchange_level=3, joliet=3)
    made: set[str] = set()
    for name, data in files.items():
        parts = name.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in made:
                iso.add_directory("/" + d.upper(), udf_path="/" + d, joliet_path="/" + d)
                made.add(d)
        iso.add_fp(io.BytesIO(data), len(data), "/" + name.upper() + ";1", udf_path="/" + name,
                   joliet_path="/" + name)
    iso.write(str(path))
    iso.close()


def partitioned(path: Path, volumes: Sequence[Path | int], table: str = "dos") -> list[int]:
    """A disk holding `volumes` (file-system images, or a size in MiB left zeroed) behind an
    MBR ("dos") or GPT table written by `sfdisk`; returns each partition's byte offset."""
    start = 2048  # sectors: the 1 MiB alignment every partitioning tool uses
    layout = []
    for v in volumes:
        size = (v.stat().st_size if isinstance(v, Path) else v * MiB) // SECTOR
        layout.append((start, size))
        start += size
    total = start + (34 if table == "gpt" else 0)
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(total * SECTOR)
    lines = [f"label: {table}"]
    type_code = "0FC63DAF-8483-4772-8E79-3D69D8477DE4" if table == "gpt" else "83"
    lines += [f"start={s}, size={n}, type={type_code}" for s, n in layout]
    _run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(path)],
         stdin=("\n".join(lines) + "\n").encode())
    with open(path, "r+b") as fh:
        for v, (s, _) in zip(volumes, layout, strict=True):
            if isinstance(v, Path):
                _copy_sparse(v, fh, s * SECTOR)
    return [s * SECTOR for s, _ in layout]


def _copy_sparse(src: Path, dst: io.BufferedRandom, at: int) -> None:
    """Copy `src` into `dst` at byte `at`, leaving all-zero MiBs as holes (an empty 128 MiB
    APFS container stays a few hundred KiB on disk)."""
    with open(src, "rb") as fh:
        pos = 0
        while chunk := fh.read(MiB):
            if chunk.count(0) != len(chunk):
                dst.seek(at + pos)
                dst.write(chunk)
            pos += len(chunk)


def ewf_image(raw: Path, target: Path, segment_bytes: int | None = None) -> list[Path]:
    """Acquire `raw` into EWF (E01, E02, ...) with stored MD5 and SHA-1; returns the
    segments. `target` is the name without extension."""
    cmd = ["ewfacquirestream", "-q", "-c", "fast", "-d", "sha1", "-C", "case-1",
           "-D", "synthetic", "-e", "examiner", "-E", "ev-1", "-N", "generated fixture",
           "-t", str(target)]
    if segment_bytes:
        cmd += ["-S", str(segment_bytes)]
    _run(cmd, stdin=raw.read_bytes())
    return sorted(target.parent.glob(target.name + ".E*"))


EWF2_SIGNATURE = b"EVF2\r\n\x81\x00"


def ex01_image(raw: Path, target: Path, chunks_per_segment: int | None = None,
               **options: Any) -> list[Path]:
    """Acquire `raw` as Ex01 (EWF2: `target.Ex01`, `.Ex02`, ...) with stored MD5 and SHA-1;
    returns the segments. Written by `synthetic_fixtures.ewf2`: Debian's ewfacquire 20140813
    turns `-f encase7-v2` into EnCase 6, pyewf's writer is not built, and no other Debian or
    PyPI tool writes Ex01. `options` go to `write_ex01` (compression, stored hashes)."""
    for old in target.parent.glob(target.name + ".Ex*"):
        old.unlink()
    return write_ex01(raw.read_bytes(), target, chunks_per_segment=chunks_per_segment,
                      **options)


def ex01_header_stub(path: Path, segment: int = 1, body: bytes = b"") -> None:
    """An EWF2 segment file header (signature, format 2.1, deflate, segment number, set
    identifier) followed by `body` and no sections: what the scan must recognise as Ex01
    and report as damaged."""
    header = EWF2_SIGNATURE + bytes([2, 1]) + (1).to_bytes(2, "little") + \
        segment.to_bytes(4, "little") + bytes(range(16))
    path.write_bytes(header + body)


def hfs_standard_image(path: Path, size_mib: int, files: dict[str, bytes]) -> None:
    """A classic HFS (pre-HFS+) volume by hfsutils' `hformat`, filled with `hcopy` (no mount:
    hfsutils writes the volume itself). TSK reads HFS+ only, so this is the case the scan must
    recognise and list as not examined."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size_mib * MiB)
    home = path.parent / (path.name + ".home")
    home.mkdir(exist_ok=True)
    _run(["hformat", "-l", "EVIDENCE", str(path)], home=home)  # also makes it current
    staging = home / "f"
    made: set[str] = set()
    for name, data in files.items():
        parts = name.split("/")
        for i in range(1, len(parts)):
            if (d := ":".join(parts[:i])) not in made:
                _run(["hmkdir", f":{d}"], home=home)
                made.add(d)
        staging.write_bytes(data)
        _run(["hcopy", "-r", str(staging), ":" + ":".join(parts)], home=home)
    _run(["humount"], home=home)
    shutil.rmtree(home, ignore_errors=True)


def luks_volume(path: Path, size_mib: int = 3) -> None:
    """A real LUKS1 header (cryptsetup works on a plain file; nothing is opened or mounted)."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size_mib * MiB)
    _run(["cryptsetup", "luksFormat", "-q", "--type", "luks1", "--pbkdf-force-iterations", "1000", "--key-file", "-", str(path)], stdin=b"secret")


def bitlocker_volume(path: Path, size_mib: int = 1) -> None:
    """A volume whose boot sector carries BitLocker's `-FVE-FS-` signature (nothing else:
    Linux has no tool that writes BitLocker, and detection reads only the signature)."""
    boot = bytearray(SECTOR)
    boot[0:3] = b"\xeb\x58\x90"
    boot[3:11] = b"-FVE-FS-"
    boot[11:13] = (512).to_bytes(2, "little")
    boot[510:512] = b"\x55\xaa"
    with open(path, "wb") as fh:
        fh.write(boot)
        fh.truncate(size_mib * MiB)


# --- the evidence folder ------------------------------------------------------------------


def make_disk_evidence(out: Path, seed: int = 10) -> DiskEvidence:
    """An evidence folder with one of each disk container, known pictures planted in each."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    work = out.parent / (out.name + ".work")
    work.mkdir(exist_ok=True)
    ev = DiskEvidence(out, _known_set(rng, 27))
    plan = _Plan(ev.known, ev)
    filler = {"notes/readme.txt": b"nothing to see\n" * 10}

    # A USB stick: MBR + FAT16, with a deleted picture; named so its name says nothing.
    c = "usb_stick.bin"
    fat = work / "usb.fat"
    fat_image(fat, 16, {
        **filler,
        "DCIM/100PHOTO/IMG_0001.JPG": plan.exact(c, f"{c}!/p1/DCIM/100PHOTO/IMG_0001.JPG"),
        "DCIM/100PHOTO/IMG_0002.JPG": plan.reencoded(c, f"{c}!/p1/DCIM/100PHOTO/IMG_0002.JPG"),
        # mdel turns the first letter into 0xE5, which TSK shows as "_"
        "DCIM/100PHOTO/IMG_0003.JPG": plan.exact(c, f"{c}!/p1/DCIM/100PHOTO/_MG_0003.JPG",
                                                 deleted=True),
    }, deleted=["DCIM/100PHOTO/IMG_0003.JPG"], fat=16)
    partitioned(out / c, [fat], "dos")

    # A laptop disk: GPT with ext4 (home, and a zip of pictures) and NTFS, acquired to E01
    # in 1 MiB segments.
    c = "pc/laptop.E01"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("trip/beach.jpg",
                    plan.exact(c, f"{c}!/p1/home/user/backup.zip!/trip/beach.jpg"))
    ext4 = work / "laptop.ext4"
    ext_image(ext4, 8, {
        **filler,
        "home/user/Pictures/a.jpg": plan.exact(c, f"{c}!/p1/home/user/Pictures/a.jpg"),
        "home/user/Pictures/b.jpg": plan.reencoded(c, f"{c}!/p1/home/user/Pictures/b.jpg"),
        "home/user/backup.zip": archive.getvalue(),
        # incompressible, so the E01 needs more than one 1 MiB segment
        "home/user/noise.bin": rng.bytes(3 * MiB // 2),
    })
    ntfs = work / "laptop.ntfs"
    ntfs_image(ntfs, 8, {
        "holiday.jpg": plan.exact(c, f"{c}!/p2/holiday.jpg"),
        "scan.jpg": plan.reencoded(c, f"{c}!/p2/scan.jpg"),
        "Users/me/Pictures/2020/a.jpg": plan.exact(c, f"{c}!/p2/Users/me/Pictures/2020/a.jpg"),
        "Users/me/Pictures/gone.jpg": plan.exact(c, f"{c}!/p2/Users/me/Pictures/gone.jpg",
                                                 deleted=True),
    }, deleted=["Users/me/Pictures/gone.jpg"])
    disk = work / "laptop.dd"
    partitioned(disk, [ext4, ntfs], "gpt")
    (out / "pc").mkdir(exist_ok=True)
    ewf_image(disk, out / "pc" / "laptop", segment_bytes=MiB)

    # A workstation acquired by EnCase 7: MBR + FAT16 in an Ex01 (EWF2) split in segments;
    # the empty clusters are stored as compressed chunks, the pictures as uncompressed ones.
    c = "ws/workstation.Ex01"
    ws = work / "ws.fat"
    fat_image(ws, 16, {
        **filler,
        "Users/Bob/Pictures/DSC01.JPG": plan.exact(c, f"{c}!/p1/Users/Bob/Pictures/DSC01.JPG"),
        "Users/Bob/Pictures/DSC02.JPG": plan.reencoded(c,
                                                       f"{c}!/p1/Users/Bob/Pictures/DSC02.JPG"),
    }, fat=16)
    partitioned(work / "ws.dd", [ws], "dos")
    (out / "ws").mkdir(exist_ok=True)
    ex01_image(work / "ws.dd", out / "ws" / "workstation", chunks_per_segment=96)

    # An optical disc: ISO 9660 (Rock Ridge, Joliet) with a FAT floppy image inside it.
    c = "disc.iso"
    floppy = work / "floppy.img"
    fat_image(floppy, 2, {"a.jpg": plan.exact(c, f"{c}!/images/floppy.img!/a.jpg")}, fat=12)
    iso_image(out / c, {
        "photos/x.jpg": plan.exact(c, f"{c}!/photos/x.jpg"),
        "photos/y.jpg": plan.reencoded(c, f"{c}!/photos/y.jpg"),
        "images/floppy.img": floppy.read_bytes(),
    })

    # A phone dump split in two raw segments: bare ext2 with a deleted, recoverable picture.
    c = "phone/dump.001"
    ext2 = work / "phone.ext2"
    ext_image(ext2, 4, {
        "DCIM/p1.jpg": plan.exact(c, f"{c}!/DCIM/p1.jpg"),
        "DCIM/gone.jpg": plan.exact(c, f"{c}!/DCIM/gone.jpg", deleted=True),
    }, kind="ext2", deleted=["DCIM/gone.jpg"])
    data = ext2.read_bytes()
    (out / "phone").mkdir(exist_ok=True)
    half = len(data) // 2
    (out / "phone" / "dump.001").write_bytes(data[:half])
    (out / "phone" / "dump.002").write_bytes(data[half:])

    # A camera card: bare exFAT (no partition table), one picture deleted.
    c = "card/sdcard.img"
    (out / "card").mkdir(exist_ok=True)
    exfat_image(out / c, 8, {
        "DSC_0001.JPG": plan.exact(c, f"{c}!/DSC_0001.JPG"),
        "DSC_0002.JPG": plan.reencoded(c, f"{c}!/DSC_0002.JPG"),
        "DSC_0003.JPG": plan.exact(c, f"{c}!/DSC_0003.JPG", deleted=True),
    }, deleted=["DSC_0003.JPG"])

    # A Mac disk: GPT with a FAT partition and an APFS container (files added to mkapfs's
    # empty volume: see apfs_container).
    c = "mac/disk.img"
    (out / "mac").mkdir(exist_ok=True)
    efi = work / "mac.fat"
    fat_image(efi, 2, {"EFI/a.jpg": plan.exact(c, f"{c}!/p1/EFI/a.jpg")}, fat=12)
    apfs = work / "mac.apfs"
    apfs_container(apfs, files={
        **filler,
        "Users/me/Pictures/IMG_0001.JPG": plan.exact(
            c, f"{c}!/p2/v1/Users/me/Pictures/IMG_0001.JPG"),
        "Users/me/Pictures/IMG_0002.JPG": plan.reencoded(
            c, f"{c}!/p2/v1/Users/me/Pictures/IMG_0002.JPG"),
    })
    partitioned(out / c, [efi, apfs], "gpt")

    # An old Mac backup disk: bare HFS+ (written by synthetic_fixtures.hfsplus: see there).
    c = "mac/backup.hfs"
    hfsplus_image(out / c, 4, {
        "Users/me/Pictures/a.jpg": plan.exact(c, f"{c}!/Users/me/Pictures/a.jpg"),
        "Users/me/Pictures/b.jpg": plan.reencoded(c, f"{c}!/Users/me/Pictures/b.jpg"),
        **filler,
    }, BASE_MTIME)

    # A DVD as most burners write it: UDF with an ISO 9660 bridge (pycdlib), read through
    # the ISO 9660 side (TSK has no UDF reader; a UDF-only disc is in make_hostile_disks).
    c = "dvd/video.iso"
    (out / "dvd").mkdir(exist_ok=True)
    udf_bridge_image(out / c, {"photos/c.jpg": plan.exact(c, f"{c}!/photos/c.jpg")})

    # A memory card image sent as a mail attachment: FAT12 inside a zip.
    c = "mail/attach.zip"
    card = work / "card.img"
    fat_image(card, 2, {"a.jpg": plan.exact(c, f"{c}!/card.img!/a.jpg")}, fat=12)
    (out / "mail").mkdir(exist_ok=True)
    with zipfile.ZipFile(out / c, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(card, "card.img")

    shutil.rmtree(work, ignore_errors=True)
    _settle(out)
    return ev


def _settle(out: Path) -> None:
    """fsync every file written, so later digests of the tree see it as it stays: ext4's
    delayed allocation adds extent blocks to a sparse image's `st_blocks` at writeback."""
    for dirpath, _, names in os.walk(out):
        for name in names:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


# --- hostile images -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostileDisk:
    """A damaged or unreadable image and the label whose error row must say `reason`."""

    name: str
    label: str
    reason: str


def make_hostile_disks(out: Path) -> list[HostileDisk]:
    """Truncated E01 and Ex01, an Ex01 with a damaged chunk, a partition table pointing
    outside the image, a FAT directory loop, encrypted volumes (LUKS, BitLocker), a UDF-only
    disc, an Ex01 header over garbage, a classic HFS
    volume, HFS+ with a directory loop or a garbage catalog, and a partition with no file
    system."""
    out.mkdir(parents=True, exist_ok=True)
    work = out.parent / (out.name + ".work")
    work.mkdir(exist_ok=True)
    cases = []
    rng = np.random.default_rng(3)
    pic = jpeg(make_photo(rng, 160, 120))

    fat = work / "t.fat"
    fat_image(fat, 4, {"a.jpg": pic, "b.jpg": pic}, fat=12)
    segs = ewf_image(fat, work / "t")
    data = segs[0].read_bytes()
    (out / "truncated.E01").write_bytes(data[: len(data) // 2])
    cases.append(HostileDisk("truncated.E01", "truncated.E01!/", "corrupt disk image"))

    vol = work / "p.fat"
    fat_image(vol, 2, {"ok.jpg": pic}, fat=12)
    # sfdisk refuses what no disk could hold, so two MBR entries are written by hand: the
    # second starts inside the image and runs 1 GiB past its end, the third starts beyond it
    partitioned(out / "bad_table.img", [vol, 1], "dos")
    _mbr_entry(out / "bad_table.img", 1, 6144, 2097152)
    _mbr_entry(out / "bad_table.img", 2, 4194304, 2048)
    cases.append(HostileDisk("bad_table.img", "bad_table.img!/p2", "extends past the end"))
    cases.append(HostileDisk("bad_table.img", "bad_table.img!/p3", "lies outside the image"))

    loop = out / "loop.img"
    fat_image(loop, 2, {"A/B/c.jpg": pic}, fat=12)
    _make_fat_loop(loop)
    # TSK names a FAT directory by its entry's position, so the loop shows one level late
    cases.append(HostileDisk("loop.img", "loop.img!/A/B/B/B/", "directory loop"))

    luks = work / "l.luks"
    luks_volume(luks)
    bitlocker = work / "b.bde"
    bitlocker_volume(bitlocker)
    partitioned(out / "encrypted.img", [luks, bitlocker], "dos")
    cases.append(HostileDisk("encrypted.img", "encrypted.img!/p1", "encrypted: not examined"))
    cases.append(HostileDisk("encrypted.img", "encrypted.img!/p2", "encrypted: not examined"))
    shutil.copyfile(luks, out / "container.bin")
    cases.append(HostileDisk("container.bin", "container.bin!/", "encrypted: not examined"))

    dvd = out / "dvd.img"  # a UDF-only disc (no ISO 9660 side), as mkudffs makes them
    with open(dvd, "wb") as fh:
        fh.truncate(4 * MiB)
    _run(["mkudffs", "-b", "2048", str(dvd)])
    cases.append(HostileDisk("dvd.img", "dvd.img!/", "UDF-only disc: not examined"))

    apfs = bytearray(2 * MiB)  # APFS's container signature over garbage
    apfs[32:36] = b"NXSB"
    apfs[64:4096] = np.random.default_rng(4).bytes(4096 - 64)
    (out / "bad.apfs").write_bytes(bytes(apfs))
    cases.append(HostileDisk("bad.apfs", "bad.apfs!/", "APFS container unreadable"))

    # Ex01: cut in half (its sections unreachable), and one whole but for a flipped byte in
    # an uncompressed chunk (libewf reads that chunk as zeros: only the stored hashes tell)
    segs = ex01_image(fat, work / "t")
    data = segs[0].read_bytes()
    (out / "truncated.Ex01").write_bytes(data[: len(data) // 2])
    cases.append(HostileDisk("truncated.Ex01", "truncated.Ex01!/",
                             "corrupt or truncated EWF2 (Ex01) image; not examined"))
    damaged = bytearray(ex01_image(fat, work / "u", compress="never",
                                   sectors_per_chunk=8)[0].read_bytes())
    at = damaged.index(pic[4096:4112])  # inside a picture
    damaged[at] ^= 0xFF
    (out / "damaged.Ex01").write_bytes(bytes(damaged))
    cases.append(HostileDisk("damaged.Ex01", "damaged.Ex01!/",
                             "computed hash differs from the stored acquisition hash"))

    # an Ex01 header over no sections at all, under a name that says nothing, and a
    # classic HFS volume TSK cannot read
    ex01_header_stub(out / "acquired.bin", body=np.random.default_rng(5).bytes(MIN_PROBE))
    cases.append(HostileDisk("acquired.bin", "acquired.bin!/",
                             "corrupt or truncated EWF2 (Ex01) image; not examined"))
    hfs_standard_image(out / "old_mac.img", 2, {"Pictures/a.jpg": pic})
    cases.append(HostileDisk("old_mac.img", "old_mac.img!/", "classic HFS volume"))

    # HFS+ with a folder record pointing back at its own folder, and one whose catalog leaf
    # node is garbage
    hfsplus_image(out / "loop.hfs", 2, {"A/B/c.jpg": pic}, BASE_MTIME, loop_in="A/B")
    cases.append(HostileDisk("loop.hfs", "loop.hfs!/A/B/again/", "directory loop"))
    hfsplus_image(work / "bad.hfs", 2, {"A/c.jpg": pic}, BASE_MTIME)
    damaged = bytearray((work / "bad.hfs").read_bytes())
    damaged[4 * 4096 + 14 : 5 * 4096 - 64] = np.random.default_rng(6).bytes(4096 - 78)
    (out / "bad_catalog.hfs").write_bytes(bytes(damaged))
    cases.append(HostileDisk("bad_catalog.hfs", "bad_catalog.hfs!/",
                             "cannot read the root directory"))

    blank = bytearray(2 * MiB)  # an MBR whose only partition holds no file system
    partitioned(work / "blank.img", [1], "dos")
    blank[:SECTOR] = (work / "blank.img").read_bytes()[:SECTOR]
    (out / "no_fs.img").write_bytes(bytes(blank))
    cases.append(HostileDisk("no_fs.img", "no_fs.img!/p1", "no readable file system"))

    shutil.rmtree(work, ignore_errors=True)
    _settle(out)
    return cases


def _mbr_entry(path: Path, slot: int, start: int, sectors: int) -> None:
    """Write MBR partition entry `slot` (0-3): Linux type, LBA start and length in sectors."""
    entry = bytes([0, 0xFE, 0xFF, 0xFF, 0x83, 0xFE, 0xFF, 0xFF]) + \
        start.to_bytes(4, "little") + sectors.to_bytes(4, "little")
    with open(path, "r+b") as fh:
        fh.seek(446 + 16 * slot)
        fh.write(entry)


def _make_fat_loop(path: Path) -> None:
    """Point directory A/B's entry for B... at A itself: A/B/B is then A/B again, forever.

    Done by rewriting the start cluster of the `B` entry inside B's own directory listing
    (the `.` entry stays), so a walker that follows cluster chains without a visited set
    descends A/B/B/B/... without end.
    """
    data = bytearray(path.read_bytes())
    bps = int.from_bytes(data[11:13], "little")
    spc = data[13]
    reserved = int.from_bytes(data[14:16], "little")
    nfats = data[16]
    root_entries = int.from_bytes(data[17:19], "little")
    fat_sectors = int.from_bytes(data[22:24], "little")
    root_at = (reserved + nfats * fat_sectors) * bps
    data_at = root_at + root_entries * 32
    cluster_bytes = spc * bps

    def entries(at: int, n: int) -> list[int]:
        return [at + 32 * i for i in range(n)]

    def find(at: int, n: int, name: bytes) -> int:
        for e in entries(at, n):
            if data[e : e + 11] == name:
                return e
        raise ValueError(f"{name!r} not found")

    def cluster_at(c: int) -> int:
        return data_at + (c - 2) * cluster_bytes

    a = find(root_at, root_entries, b"A          ")
    a_cluster = int.from_bytes(data[a + 26 : a + 28], "little")
    b = find(cluster_at(a_cluster), cluster_bytes // 32, b"B          ")
    b_cluster = int.from_bytes(data[b + 26 : b + 28], "little")
    # a new entry "B" inside B pointing at B's own cluster: B/B is B
    listing = cluster_at(b_cluster)
    for e in entries(listing, cluster_bytes // 32):
        if data[e] == 0:
            data[e : e + 32] = data[b : b + 32]
            break
    path.write_bytes(bytes(data))
