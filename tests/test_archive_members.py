"""Archive members read by the hashing worker that hashes them: which members travel as a
locator, and that the rows are the same as when the scan's process reads every member.

Every archive is generated here from seeded synthetic bytes and photos.
"""

from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_archives import make_tar

from hashing.hasher import HashOptions
from index.banks import BankStore
from synthetic_fixtures.photos import make_photo
from triage import archives
from triage.archive_members import CHANGED, hash_member, is_member_locator
from triage.executor import LocalExecutor
from triage.pipeline import ScanConfig, run_scan
from triage.runner import Runner, Settled, _hashed, _task
from triage.walk import walk

RNG = random.Random(14)
TEXT = b"synthetic note line\n" * 60
BLOB = bytes(RNG.getrandbits(8) for _ in range(20_000))  # > one read of zipfile


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(make_photo(np.random.default_rng(seed), 96, 72)).save(buf, "JPEG",
                                                                          quality=85)
    return buf.getvalue()


def _inner_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("deep.txt", TEXT)
    return buf.getvalue()


def make_case(root: Path) -> Path:
    ev = root / "evidence"
    ev.mkdir(parents=True)
    with zipfile.ZipFile(ev / "mixed.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("photos/a.jpg", _jpeg(1))
        zf.writestr("notes.txt", TEXT)
        zf.writestr("inner.zip", _inner_zip())  # a container: walked (so read) here
        zf.writestr("old.txt", TEXT, compress_type=zipfile.ZIP_BZIP2)  # read here, bounded
        zf.writestr("../escape.jpg", _jpeg(2))  # a hostile name: only a label
    with zipfile.ZipFile(ev / "stored.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("good.jpg", _jpeg(3))
        zf.writestr("bad.bin", BLOB)
    raw = bytearray((ev / "stored.zip").read_bytes())
    at = raw.index(BLOB[:64]) + 10_000
    raw[at] ^= 0xFF  # bad.bin's bytes no longer match its CRC-32
    (ev / "stored.zip").write_bytes(bytes(raw))
    (ev / "plain.tar").write_bytes(make_tar({"t/a.jpg": _jpeg(4), "t/blob.bin": BLOB,
                                         "t/inner.tgz": make_tar({"x.jpg": _jpeg(5)}, "w:gz")}))
    (ev / "packed.tar.gz").write_bytes(make_tar({"p.jpg": _jpeg(6)}, "w:gz"))
    return ev


@pytest.fixture()
def evidence(tmp_path: Path) -> Path:
    return make_case(tmp_path)


def _members(evidence: Path) -> dict[str, tuple[bool, bool]]:
    """label below the evidence -> (sent as a locator, sent as bytes)"""
    out = {}
    for item in walk([str(evidence)]):
        if item.kind == "archive_member" and item.status == "pending":
            label = item.path[len(str(evidence)) + 1:]
            out[label] = (is_member_locator(item.locator), item.data is not None)
    return out


def test_top_level_zip_and_tar_members_travel_as_locators(evidence: Path) -> None:
    assert _members(evidence) == {
        "mixed.zip!/photos/a.jpg": (True, False),
        "mixed.zip!/notes.txt": (True, False),
        "mixed.zip!/inner.zip": (False, True),
        "mixed.zip!/inner.zip!/deep.txt": (False, True),
        "mixed.zip!/old.txt": (False, True),
        "mixed.zip!/../escape.jpg": (True, False),
        "stored.zip!/good.jpg": (True, False),
        "stored.zip!/bad.bin": (True, False),
        "plain.tar!/t/a.jpg": (True, False),
        "plain.tar!/t/blob.bin": (True, False),
        "plain.tar!/t/inner.tgz": (False, True),
        "plain.tar!/t/inner.tgz!/x.jpg": (False, True),
        "packed.tar.gz!/p.jpg": (False, True),
    }


def test_parent_reads_everything_when_told(evidence: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archives, "READ_IN_WORKERS", False)
    assert all(not located and data for located, data in _members(evidence).values())


def _scan(root: Path, evidence: Path, name: str, workers: int) -> tuple[str, int]:
    store = root / "store"
    if not store.exists():
        BankStore(store).close()
    result = run_scan(ScanConfig(evidence=(evidence,), case_dir=root / name, store_dir=store,
                                 workers=workers, inventory=True, batch_size=3))
    return (root / name / "manifest.jsonl").read_text(), result.hash_calls


def test_members_hashed_in_workers_give_the_rows_read_in_the_parent(
        tmp_path: Path, evidence: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_workers, calls = _scan(tmp_path, evidence, "workers", 2)
    assert calls == 17  # 4 archive files and 13 members to hash
    inline, _ = _scan(tmp_path, evidence, "inline", 0)
    monkeypatch.setattr(archives, "READ_IN_WORKERS", False)
    in_parent, _ = _scan(tmp_path, evidence, "parent", 2)
    assert in_workers == in_parent == inline
    bad = [line for line in in_workers.splitlines() if "bad.bin" in line]
    assert len(bad) == 1 and '"archive_error": true' in bad[0]
    assert "corrupt member: Bad CRC-32 for file 'bad.bin'" in bad[0]
    monkeypatch.setattr(archives, "READ_IN_WORKERS", True)
    again, calls = _scan(tmp_path, evidence, "workers", 2)  # resumed: nothing changed
    assert (again, calls) == (in_workers, 0)


def test_located_members_hold_no_bytes_in_flight(evidence: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (evidence / "packed.tar.gz").unlink()
    for name in ("mixed.zip", "plain.tar"):
        (evidence / name).unlink()

    def peak() -> int:
        executor = LocalExecutor(1)
        got: list[Settled] = []
        try:
            Runner(HashOptions(), executor, 2).run(walk([str(evidence)]), got.extend)
        finally:
            executor.close()
        assert len(got) == 3  # the zip and its two members
        return executor.peak_in_flight_bytes

    assert peak() == 0
    monkeypatch.setattr(archives, "READ_IN_WORKERS", False)
    assert peak() == len(_jpeg(3))  # read here, bad.bin is an error row before any hashing


def test_an_archive_changed_after_the_walk_is_an_error_row(evidence: Path) -> None:
    item = next(i for i in walk([str(evidence / "stored.zip")]) if i.path.endswith("good.jpg"))
    st = os.stat(evidence / "stored.zip")
    os.utime(evidence / "stored.zip", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    task = _task(item)
    assert task.locator is not None
    rec = hash_member(task.locator, task.path, HashOptions(), size=task.size, mtime=task.mtime)
    assert (rec.status, rec.error) == ("error", CHANGED)
    settled = _hashed(0, task, rec)
    assert settled.archive_error and settled.record is not None
    assert settled.record.reason == CHANGED and not settled.record.hashes
