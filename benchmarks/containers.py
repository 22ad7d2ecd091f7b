"""Container reading benchmark: MB/s of pictures read out of tar, zip, 7z, RAR and PDF by the
walk, against reading the same files from a folder, in one run on the same pictures.

Every container holds the same JPEGs; a run also checks that the walk returned each one
byte-identical (the digests agree), so a fast reader that loses members cannot look good.
Run: `triage bench containers [--quick]` or `python -m benchmarks.containers`.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import main, median_seconds, write_results
from benchmarks.plots import bars, grid, save
from synthetic_fixtures.photos import make_photo
from synthetic_fixtures.rar import RarMember, rar4_stored, rar5_stored
from synthetic_fixtures.sevenzip import make_7z
from triage.archive_members import read_member
from triage.walk import open_evidence, walk


def _pictures(n: int, size: tuple[int, int]) -> dict[str, bytes]:
    from PIL import Image

    rng = np.random.default_rng(17)
    out = {}
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(make_photo(rng, *size)).save(buf, "JPEG", quality=88)
        out[f"pics/img_{i:04d}.jpg"] = buf.getvalue()
    return out


def _pdf(pictures: dict[str, bytes], size: tuple[int, int]) -> bytes:
    import pikepdf
    from pikepdf import Dictionary, Name

    pdf = pikepdf.new()
    for data in pictures.values():
        s = pikepdf.Stream(pdf, data)
        s.Type, s.Subtype, s.Width, s.Height = Name.XObject, Name.Image, size[0], size[1]
        s.ColorSpace, s.BitsPerComponent, s.Filter = Name.DeviceRGB, 8, Name.DCTDecode
        page = pdf.add_blank_page()
        page.Resources = Dictionary(XObject=Dictionary(Im0=pdf.make_indirect(s)))
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def _zip(pictures: dict[str, bytes], method: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in pictures.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(pictures: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in pictures.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _read_folder(root: Path) -> list[str]:
    """What a scan does with plain files: walk them and read each once."""
    digests = []
    for item in walk([str(root)]):
        if item.kind == "file" and item.fs_path:
            with open_evidence(item.fs_path) as fh:
                digests.append(hashlib.md5(fh.read()).hexdigest())
    return digests


def _read_container(path: Path) -> list[str]:
    """Every member's bytes as a scan reads them: from the walk, or (a zip or tar on storage)
    by reopening the member from its locator, as the hashing worker does."""
    out = []
    for i in walk([str(path)]):
        if i.kind == "archive_member" and i.data is not None:
            out.append(hashlib.md5(i.data).hexdigest())
        elif i.kind == "archive_member" and i.locator is not None:
            out.append(hashlib.md5(read_member(i.locator)).hexdigest())
    return out


def run(out_dir: str | Path, quick: bool = False) -> dict[str, Any]:
    n, size = (12, (320, 240)) if quick else (150, (1024, 768))
    repeat = 3 if quick else 5
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-containers-"))
    try:
        pictures = _pictures(n, size)
        payload = sum(map(len, pictures.values()))
        expected = sorted(hashlib.md5(d).hexdigest() for d in pictures.values())
        folder = work / "folder"
        for name, data in pictures.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        members = [RarMember(k, v) for k, v in pictures.items()]
        containers: dict[str, bytes] = {
            "tar": _tar(pictures),
            "zip (stored)": _zip(pictures, zipfile.ZIP_STORED),
            "zip (deflate)": _zip(pictures, zipfile.ZIP_DEFLATED),
            "7z (LZMA2, solid)": make_7z(pictures),
            "RAR 4 (stored)": rar4_stored(members),
            "RAR 5 (stored)": rar5_stored(members),
            "PDF (JPEG streams)": _pdf(pictures, size),
        }
        readers: dict[str, Callable[[], list[str]]] = {"folder": lambda: _read_folder(folder)}
        for k, (label, data) in enumerate(containers.items()):
            path = work / f"c{k}.bin"
            path.write_bytes(data)
            readers[label] = lambda p=path: _read_container(p)  # type: ignore[misc]
        rows, by_reader = [], {}
        base = None
        for label, read in readers.items():
            found = sorted(read())
            if found != expected:
                raise AssertionError(f"{label}: read {len(found)} pictures, not the {n} planted")
            seconds = median_seconds(read, repeat=repeat)
            mbps = payload / seconds / 1e6
            base = base or mbps
            size_on_disk = (payload if label == "folder"
                            else len(containers[label]))
            by_reader[label] = {"seconds": seconds, "mb_per_s": mbps, "vs_folder": mbps / base,
                                "bytes_on_disk": size_on_disk}
            rows.append([label, mbps, mbps / base, size_on_disk / 1e6])
        result = {"pictures": n, "image_size": size, "payload_bytes": payload, "quick": quick,
                  "load_average": load, "by_reader": by_reader}
        notes = (f"{n} JPEGs of {size[0]}x{size[1]} ({payload / 1e6:.1f} MB); MB/s of picture "
                 "bytes out of the walk (median of repeated runs, page cache warm), every "
                 f"picture checked byte-identical. Load average at start: {load[0]:.1f} "
                 "(shared machine: compare ratios, not absolute MB/s).")
        write_results(out_dir, "containers", result,
                      ["source", "MB/s", "vs folder", "MB on disk"], rows, notes)
        fig, (ax,) = grid(1, panel_size=(7, 3.6))
        bars(ax, list(by_reader), {"MB/s": [v["mb_per_s"] for v in by_reader.values()]}, "MB/s")
        save(fig, Path(out_dir) / "containers.png", title="pictures read out of containers")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(run, "containers", __doc__)
