"""Disk-image benchmark: MB/s reading files out of an E01, an Ex01 and a raw image, against
reading the same files from a folder, all in this process on the same data.

The files (random bytes, so nothing compresses and every byte is read) are written to a folder,
to an ext4 file system image (`mkfs.ext4 -d`, a raw image), to an E01 of that image
(`ewfacquirestream`, deflate "fast") and to an Ex01 (EWF2, `synthetic_fixtures.ewf2`: chunks
zlib-compressed where that makes them smaller, so the random files' chunks are stored as
they are with an Adler-32 and the empty ones compressed). Each source is read file by file with an MD5 over the
bytes, the way a hashing worker reads it: the folder through `open_evidence`, the images
through `triage.disks.open_located` (a locator per file from the walk, the image and file
system kept open across files as a worker keeps them). Also timed: listing the image (the
walk) and the E01 and Ex01 integrity checks (one sequential read of the whole image, MD5 +
SHA-1). The
page cache is warm for every source (each is read once untimed first), so the figures compare
the readers, not the disk.

Run: `triage bench disks [--quick]` or `python -m benchmarks.disks [--quick]`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import main, median_seconds, write_results
from benchmarks.plots import bars, grid, save
from synthetic_fixtures.disks import MiB, ewf_image, ex01_image, ext_image
from triage import disks
from triage.walk import open_evidence, walk

CHUNK = 1 << 20


def _files(rng: np.random.Generator, n: int, size: int, big: int) -> dict[str, bytes]:
    out = {f"DCIM/{i // 50:03d}/IMG_{i:05d}.JPG": rng.bytes(size) for i in range(n)}
    out["video/big.mp4"] = rng.bytes(big)
    return out


def _md5_reader(read: Any) -> int:
    h = hashlib.md5()
    n = 0
    while True:
        chunk = read(CHUNK)
        if not chunk:
            return n
        h.update(chunk)
        n += len(chunk)


def _read_folder(paths: list[str]) -> int:
    total = 0
    for p in paths:
        with open_evidence(p) as fh:
            total += _md5_reader(fh.read)
    return total


def _read_image(locators: list[disks.Locator]) -> int:
    total = 0
    for loc in locators:
        reader, _size = disks.open_located(loc)
        total += _md5_reader(reader.read)
    return total


def _locators(image: Path) -> tuple[list[disks.Locator], float]:
    t0 = time.perf_counter()
    locs = [r.locator for r in walk([str(image)]) if r.locator is not None]
    return locs, time.perf_counter() - t0


def run(out_dir: str, quick: bool = False) -> dict[str, Any]:
    n, size, big = (40, 256 * 1024, 8 * MiB) if quick else (400, 512 * 1024, 64 * MiB)
    work = Path(tempfile.mkdtemp(prefix="bench-disks-"))
    try:
        files = _files(np.random.default_rng(1), n, size, big)
        nbytes = sum(len(v) for v in files.values())
        folder = work / "folder"
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        raw = work / "disk.raw"
        ext_image(raw, int(nbytes * 1.25 / MiB) + 16, files)
        ewf_image(raw, work / "disk")
        e01 = work / "disk.E01"
        ex01 = ex01_image(raw, work / "disk2")[0]
        paths = sorted(str(p) for p in folder.rglob("*") if p.is_file())

        raw_locs, raw_walk = _locators(raw)
        # the E01 walk includes its integrity check; timed on its own below
        e01_locs, e01_walk = _locators(e01)
        ex01_locs, ex01_walk = _locators(ex01)
        assert len(raw_locs) == len(e01_locs) == len(ex01_locs) == len(paths) == len(files)
        repeat = 3 if quick else 5
        seconds = {
            "folder": median_seconds(lambda: _read_folder(paths), repeat),
            "raw image": median_seconds(lambda: _read_image(raw_locs), repeat),
            "E01": median_seconds(lambda: _read_image(e01_locs), repeat),
            "Ex01": median_seconds(lambda: _read_image(ex01_locs), repeat),
        }
        for read in (_read_image(raw_locs), _read_image(e01_locs), _read_image(ex01_locs),
                     _read_folder(paths)):
            assert read == nbytes
        verify_s = {}
        for name, image in (("E01", e01), ("Ex01", ex01)):
            with open_evidence(str(image)) as fh:
                media = disks.EwfMedia([fh])
                verify_s[name] = median_seconds(partial(disks.verify_ewf, media, "bench"),
                                                repeat, 0)
                media_bytes = media.size
                assert disks.verify_ewf(media, "bench").status == "verified"
        mbps = {k: nbytes / s / 1e6 for k, s in seconds.items()}
        ratio = {k: mbps[k] / mbps["folder"] for k in mbps}
        result = {
            "quick": quick, "files": len(files), "bytes": nbytes, "file_bytes": size,
            "big_file_bytes": big, "image_bytes": raw.stat().st_size,
            "e01_bytes": e01.stat().st_size, "ex01_bytes": ex01.stat().st_size,
            "read_seconds": seconds, "mb_per_s": mbps, "ratio_vs_folder": ratio,
            "walk_seconds": {"raw image": raw_walk, "E01": e01_walk, "Ex01": ex01_walk},
            "verify_seconds": verify_s,
            "verify_mb_per_s": {k: media_bytes / v / 1e6 for k, v in verify_s.items()},
            "load_1min": os.getloadavg()[0],
        }
        rows = [[k, mbps[k], ratio[k], seconds[k]] for k in seconds]
        for name, secs in verify_s.items():
            rows.append([f"{name} integrity check (whole image)", media_bytes / secs / 1e6, "",
                         secs])
        notes = (f"{len(files)} files ({n} x {size // 1024} KiB + one {big // MiB} MiB), "
                 f"{nbytes / 1e6:.0f} MB, random bytes; ext4 image "
                 f"{raw.stat().st_size / 1e6:.0f} MB, E01 {e01.stat().st_size / 1e6:.0f} MB, "
                 f"Ex01 {ex01.stat().st_size / 1e6:.0f} MB. "
                 f"Read with MD5 in 1 MiB chunks, page cache warm, median of {repeat}. "
                 f"Listing the images: raw {raw_walk:.2f} s, E01 {e01_walk:.2f} s, Ex01 "
                 f"{ex01_walk:.2f} s (an EWF walk includes its integrity check). Load average at the end: "
                 f"{os.getloadavg()[0]:.1f} on a machine shared with other developers.")
        write_results(out_dir, "disks", result, ["source", "MB/s", "vs folder", "seconds"],
                      rows, notes)
        fig, (ax,) = grid(1, panel_size=(5, 3.2))
        bars(ax, list(mbps), {"MB/s": list(mbps.values())}, "MB/s (read + MD5)")
        save(fig, Path(out_dir) / "disks.png", title="reading files out of disk images")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(run, "disks", __doc__)
