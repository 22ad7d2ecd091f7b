"""Disk and volume images end to end: known pictures planted in a raw USB stick (MBR + FAT16),
an E01 of a laptop disk (GPT + ext4 + NTFS with directories and a deleted file, split in
segments), an Ex01 (EWF2) of a workstation (MBR + FAT16, split in segments), an ISO holding a floppy image, a split raw phone dump (ext2), an exFAT card, a Mac
disk (FAT + an APFS container with files), an HFS+ volume, a UDF-bridge DVD and a FAT image inside a zip are all found,
byte-identical copies by MD5 and re-encoded ones by PDQ, deleted ones too. The same scan, of
the same folder, also holds every container of `synthetic_fixtures.seized` (HEIC/AVIF/JXL, 7z,
RAR, zstd, PDF, OOXML/ODF/EPUB, OLE, animations, TIFF) and finds what is planted there. Hostile
images give error rows in bounded time and memory; the evidence is never changed."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from _evidence import tree_digest

from benchmarks.peak import OWN_PEAK
from hashing.hasher import HashOptions, hash_bytes
from index.bank_import import ImportOptions
from index.banks import BankStore
from synthetic_fixtures.disks import (
    MiB,
    ext_image,
    make_disk_evidence,
    make_hostile_disks,
    missing_tools,
)
from synthetic_fixtures.seized import make_seized
from triage.audit import verify_chain
from triage.disks import hash_located, image_kind, read_at_of
from triage.pipeline import ScanConfig, run_scan
from triage.walk import walk

SEIZED_CONTAINERS = ("heif", "avif", "jxl", "7z", "rar", "rar5", "zstd", "zip-zstd", "pdf",
                     "pdf-inline", "ooxml", "odf", "epub", "ole", "gif", "webp", "png", "tiff")
CONTAINERS = ("usb_stick.bin", "pc/laptop.E01", "ws/workstation.Ex01", "disc.iso", "phone/dump.001",
              "card/sdcard.img", "mac/disk.img", "mac/backup.hfs", "dvd/video.iso",
              "mail/attach.zip")


def _require_tools() -> None:
    missing = missing_tools()
    assert not missing, f"install {' '.join(missing)} (scripts/ensure_disk_tools.sh)"


def _rows(case: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (case / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def disk_scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    _require_tools()
    root = tmp_path_factory.mktemp("disks")
    ev = make_disk_evidence(root / "evidence")
    # the phone, archive and document containers in the same folder: one scan of every one
    seized = make_seized(root / "seized", with_hostile=False)
    shutil.move(seized.evidence, root / "evidence" / "seized")
    hostile = make_hostile_disks(root / "hostile")
    opts = HashOptions()
    bank = root / "bank.csv"
    with open(bank, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "md5", "pdq", "category"])
        for k in ev.known:
            h = hash_bytes(k.data, k.entry, opts).hashes
            w.writerow([k.entry, h["md5"], h["pdq"], "1"])
        with open(seized.bank_csv, newline="") as seized_bank:
            w.writerows(list(csv.reader(seized_bank))[1:])
    with BankStore(root / "store") as store:
        store.import_file(str(bank), ImportOptions(bank="known", format="csv", version="v1",
                                                   scheme="vic"))
    before = {p: tree_digest(p) for p in (root / "evidence", root / "hostile")}
    # two workers: files inside images travel to worker processes as locators
    cfg = ScanConfig(evidence=(root / "evidence", root / "hostile"), case_dir=root / "case",
                     store_dir=root / "store", workers=2, argv=("triage", "scan"))
    result = run_scan(cfg)
    case = root / "case"
    return {"root": root, "ev": ev, "seized": seized, "hostile": hostile, "before": before,
            "result": result,
            "manifest": _rows(case, "manifest.jsonl"), "queue": _rows(case, "queue.jsonl"),
            "audit": _rows(case, "audit.jsonl"), "case": case,
            "summary": json.loads((case / "summary.json").read_text())}


@pytest.mark.parametrize("container", CONTAINERS)
def test_every_planted_picture_is_found(disk_scan: dict[str, Any], container: str) -> None:
    root = disk_scan["root"] / "evidence"
    queue = {q["path"]: q for q in disk_scan["queue"]}
    expected = disk_scan["ev"].expect[container]
    assert expected
    for label, (entry, how, _deleted) in expected.items():
        row = queue.get(f"{root}/{label}")
        assert row is not None, f"{label} not in the queue"
        hit = row["reasons"][0]
        assert hit["entry"] == entry and hit["bank"] == "known"
        if how == "md5":
            assert hit["kind"] == "exact" and row["tier"] == 3
        else:
            assert hit["kind"] == "near" and hit["algo"] == "pdq" and hit["distance"] <= 31


@pytest.mark.parametrize("container", SEIZED_CONTAINERS)
def test_every_seized_container_is_found_in_the_same_scan(disk_scan: dict[str, Any],
                                                          container: str) -> None:
    """The same scan, over one folder that also holds every archive, document and decoder
    container of `synthetic_fixtures.seized`, finds their planted pictures too."""
    base = disk_scan["root"] / "evidence" / "seized"
    queue = {q["path"]: q for q in disk_scan["queue"]}
    planted = [p for p in disk_scan["seized"].planted if p.container == container]
    assert planted
    for p in planted:
        row = queue.get(f"{base}/{p.path}")
        assert row is not None, f"{p.path} not in the queue"
        hits = [r for r in row["reasons"] if r["entry"] == p.entry]
        kinds = {r["kind"] for r in hits}
        if p.how == "md5":
            assert "exact" in kinds, hits
        elif p.how == "pdq":
            assert kinds & {"near", "dihedral"}, hits
        else:
            assert [r["frame"] for r in hits if r["kind"] == "frame"] == [p.frame], hits


def test_deleted_files_are_hashed_and_marked(disk_scan: dict[str, Any]) -> None:
    root = disk_scan["root"] / "evidence"
    rows = {d["path"]: d for d in disk_scan["manifest"]}
    known = {k.entry: k for k in disk_scan["ev"].known}
    deleted = [(label, entry) for exp in disk_scan["ev"].expect.values()
               for label, (entry, _, gone) in exp.items() if gone]
    # FAT (mdel), ext2 (debugfs rm), exFAT (InUse cleared), NTFS (unlinked through ntfs-3g)
    assert len(deleted) == 4
    for label, entry in deleted:
        d = rows[f"{root}/{label}"]
        assert d["deleted"] is True and d["status"] == "hashed"
        assert d["md5"] == hash_bytes(known[entry].data, "", HashOptions()).hashes["md5"]
        assert "deleted" in d["reason"]
    live = [d for d in disk_scan["manifest"] if d["kind"] == "image_member"
            and d.get("deleted") is False]
    assert live and all(d["status"] != "error" for d in live if "hostile" not in d["path"])


def test_rows_carry_file_system_metadata(disk_scan: dict[str, Any]) -> None:
    root = disk_scan["root"] / "evidence"
    rows = {d["path"]: d for d in disk_scan["manifest"]}
    known = {k.entry: k for k in disk_scan["ev"].known}
    for exp in disk_scan["ev"].expect.values():
        for label, (entry, how, _) in exp.items():
            d = rows[f"{root}/{label}"]
            if how == "md5":
                assert d["size"] == len(known[entry].data), label
            if d["kind"] == "image_member":
                assert d["fs_type"] and isinstance(d["inode"], int) and d["times"], label
    assert rows[f"{root}/usb_stick.bin!/p1/notes/readme.txt"]["fs_type"] == "fat16"
    ext = rows[f"{root}/pc/laptop.E01!/p1/home/user/Pictures/a.jpg"]
    assert ext["fs_type"] == "ext4" and ext["mtime"] == ext["times"]["mtime"] == 1609459200
    assert rows[f"{root}/pc/laptop.E01!/p2/holiday.jpg"]["fs_type"] == "ntfs"
    nested = rows[f"{root}/pc/laptop.E01!/p2/Users/me/Pictures/2020/a.jpg"]
    assert nested["fs_type"] == "ntfs" and nested["deleted"] is False
    assert nested["status"] == "hashed"
    assert rows[f"{root}/disc.iso!/photos/x.jpg"]["fs_type"] == "iso9660"
    assert rows[f"{root}/card/sdcard.img!/DSC_0001.JPG"]["fs_type"] == "exfat"
    apfs = rows[f"{root}/mac/disk.img!/p2/v1/Users/me/Pictures/IMG_0001.JPG"]
    assert apfs["fs_type"] == "apfs" and apfs["mtime"] == 1609459200
    hfs = rows[f"{root}/mac/backup.hfs!/Users/me/Pictures/a.jpg"]
    assert hfs["fs_type"] == "hfs" and hfs["mtime"] == 1609459200
    assert rows[f"{root}/mac/backup.hfs!/$CatalogFile"]["status"] == "skipped"
    # NTFS's own records are listed but not read; later E01 segments are plain files
    assert rows[f"{root}/pc/laptop.E01!/p2/$MFT"]["status"] == "skipped"
    assert (root / "pc" / "laptop.E02").exists()
    assert not any(p.startswith(f"{root}/pc/laptop.E02!") for p in rows)
    assert (root / "ws" / "workstation.Ex02").exists()
    assert not any(p.startswith(f"{root}/ws/workstation.Ex02!") for p in rows)
    assert rows[f"{root}/ws/workstation.Ex01!/p1/notes/readme.txt"]["fs_type"] == "fat16"
    paths = [d["path"] for d in disk_scan["manifest"]]
    assert len(paths) == len(set(paths))


def test_ewf_integrity_is_verified_and_audited(disk_scan: dict[str, Any]) -> None:
    root = disk_scan["root"]
    checks = [e for e in disk_scan["audit"] if e["event"] == "image_integrity"]
    by_image = {Path(e["image"]).name: e for e in checks}
    rows = {d["path"]: d for d in disk_scan["manifest"]}
    for image, label in (("laptop.E01", "pc/laptop.E01"), ("workstation.Ex01",
                                                           "ws/workstation.Ex01")):
        good = by_image[image]
        assert good["status"] == "verified" and good["stored"] == good["computed"]
        assert set(good["stored"]) == {"md5", "sha1"}
        assert "MD5 and SHA1 verified" in rows[f"{root}/evidence/{label}!/"]["reason"]
    bad = by_image["damaged.Ex01"]
    assert bad["status"] == "mismatch" and bad["stored"]["md5"] != bad["computed"]["md5"]
    assert verify_chain(disk_scan["case"] / "audit.jsonl")


def test_hostile_images_are_error_rows(disk_scan: dict[str, Any]) -> None:
    root = disk_scan["root"] / "hostile"
    rows = {d["path"]: d for d in disk_scan["manifest"]}
    attention = {a["path"]: a for a in disk_scan["summary"]["attention"]}
    for case in disk_scan["hostile"]:
        path = f"{root}/{case.label}"
        assert path in rows, case
        assert case.reason in (rows[path]["reason"] or rows[path]["error"] or ""), rows[path]
        assert path in attention, case
    # what could still be read next to the damage was read
    assert rows[f"{root}/bad_table.img!/p1/ok.jpg"]["status"] == "hashed"
    assert rows[f"{root}/loop.img!/A/B/c.jpg"]["status"] == "hashed"
    assert rows[f"{root}/loop.hfs!/A/B/c.jpg"]["status"] == "hashed"


def test_evidence_unchanged(disk_scan: dict[str, Any]) -> None:
    for path, digest in disk_scan["before"].items():
        assert tree_digest(path) == digest


_WALK = OWN_PEAK + """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from triage.walk import walk
n = sum(1 for _ in walk([sys.argv[1]]))
print(n, own_peak_kib())
"""


def test_hostile_walk_is_bounded(disk_scan: dict[str, Any]) -> None:
    """The hostile images walked under a 3 GiB address-space cap and a 60 s timeout."""
    out = subprocess.run([sys.executable, "-c", _WALK, str(disk_scan["root"] / "hostile")],
                         capture_output=True, text=True, timeout=60, check=True)
    n, peak_kib = map(int, out.stdout.split())
    assert n >= 10 and peak_kib < 1024 * 1024


def test_large_file_inside_an_image_is_streamed(tmp_path: Path) -> None:
    """A file bigger than the media limit is digested in chunks, never held whole."""
    _require_tools()
    big = os.urandom(MiB) * 24  # 24 MiB, repetitive but incompressible per chunk
    img = tmp_path / "big.ext4"
    ext_image(img, 40, {"big.bin": big})
    rows = [r for r in walk([str(img)]) if r.path.endswith("big.bin")]
    assert len(rows) == 1 and rows[0].locator is not None and rows[0].data is None
    opts = HashOptions(max_media_bytes=MiB)
    tracemalloc.start()
    rec = hash_located(rows[0].locator, rows[0].path, opts)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    import hashlib

    assert rec.status == "hashed" and rec.hashes["md5"] == hashlib.md5(big).hexdigest()
    assert rec.size == len(big) and peak < 8 * MiB


def test_recognised_by_content_not_name(tmp_path: Path) -> None:
    _require_tools()
    img = tmp_path / "holiday.jpg"  # a FAT image under a picture's name
    from synthetic_fixtures.disks import fat_image

    fat_image(img, 2, {"x.txt": b"x"}, fat=12)
    with open(img, "rb") as fh:
        assert image_kind(read_at_of(fh)) == "raw"
    assert any(r.path.endswith("holiday.jpg!/x.txt") for r in walk([str(img)]))
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(200_000))
    with open(plain, "rb") as fh:
        assert image_kind(read_at_of(fh)) is None



def test_apfs_container_is_opened(tmp_path: Path) -> None:
    """An empty APFS container made by mkapfs: opened through libfsapfs, its volume walked
    without an error row; with files added (`synthetic_fixtures.apfs`), every file is a row
    with its size, times and identifier, and is read back through its locator."""
    _require_tools()
    import hashlib

    from synthetic_fixtures.disks import BASE_MTIME, apfs_container
    from triage.disk_apfs import open_container
    from triage.disks import _StreamMedia

    img = tmp_path / "mac.apfs"
    apfs_container(img)
    assert [r.path for r in walk([str(img)])] == [str(img)]
    with open(img, "rb") as fh:
        container, _ = open_container(_StreamMedia(fh, img.stat().st_size), 0,
                                      img.stat().st_size)
        assert container.number_of_volumes == 1
        volume = container.get_volume(0)
        assert volume.name == "EVIDENCE" and not volume.is_locked()
    files = {"Users/me/Pictures/a.jpg": os.urandom(300_000), "Users/me/Crème.txt": b"x\n",
             "empty": b""}
    apfs_container(img, files=files)
    rows = {r.path: r for r in walk([str(img)])}
    for name, data in files.items():
        row = rows[f"{img}!/v1/{name}"]
        assert row.size == len(data) and row.mtime == BASE_MTIME, name
        assert row.extra is not None and row.extra["fs_type"] == "apfs"
        if row.locator is not None:
            rec = hash_located(row.locator, row.path, HashOptions())
            assert rec.hashes["md5"] == hashlib.md5(data).hexdigest(), name
        else:  # small files travel with their bytes
            assert row.data == data, name
    assert not any(r.archive_error for r in rows.values())


def test_rows_are_keyed_by_their_location_in_the_image(disk_scan: dict[str, Any]) -> None:
    """Every row has its own location; files inside images extend the image file's chain
    with partition and inode segments."""
    rows = disk_scan["manifest"]
    keys = [json.dumps(d["location"]) for d in rows]
    assert len(keys) == len(set(keys))
    root = disk_scan["root"] / "evidence"
    by_path = {d["path"]: d["location"] for d in rows}
    image = by_path[f"{root}/pc/laptop.E01"]
    inner = by_path[f"{root}/pc/laptop.E01!/p1/home/user/Pictures/a.jpg"]
    assert inner[: len(image)] == image
    assert [s[0] for s in inner[len(image):]] == ["partition", "tsk_inode"]
    assert inner[len(image)][1] == 1
    assert by_path[f"{root}/pc/laptop.E01!/"][len(image):] == [["image", -1]]
    nested = by_path[f"{root}/pc/laptop.E01!/p1/home/user/backup.zip!/trip/beach.jpg"]
    zip_row = by_path[f"{root}/pc/laptop.E01!/p1/home/user/backup.zip"]
    assert nested[: len(zip_row)] == zip_row and nested[len(zip_row)][0] == "zip"
