"""Tests of the hostile collection: each file is what it claims to be, and every case is stated."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from synthetic_fixtures.hostile import (
    HostileSpec,
    encrypt_flag_zip,
    gif_canvas_bomb,
    png_pixel_bomb,
    write_hostile,
    zip_nested,
    zip_ratio_bomb,
)

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> HostileSpec:
    root = tmp_path_factory.mktemp("hostile") / "h"
    return write_hostile(root, seed=1, bomb_bytes=4 * MiB, deep_dirs=300, sparse_bytes=3 * 1024**3)


def test_pixel_bombs_declare_huge_sizes_and_pillow_refuses() -> None:
    data = png_pixel_bomb()
    assert struct.unpack(">II", data[16:24]) == (100_000, 100_000)
    assert len(data) < 1000
    for bomb in (data, gif_canvas_bomb()):
        with pytest.raises(Image.DecompressionBombError):
            Image.open(io.BytesIO(bomb))


def test_zip_bombs() -> None:
    bomb = zip_ratio_bomb(8 * MiB)
    with zipfile.ZipFile(io.BytesIO(bomb)) as zf:
        (info,) = zf.infolist()
        assert info.file_size == 8 * MiB
        assert info.file_size / len(bomb) > 200
    data = zip_nested(5, b"payload")
    depth = 0
    while True:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            (name,) = zf.namelist()
            data = zf.read(name)
        depth += 1
        if not name.endswith(".zip"):
            break
    assert depth == 5 and data == b"payload"


def test_encrypted_member_is_refused() -> None:
    with zipfile.ZipFile(io.BytesIO(encrypt_flag_zip("a.jpg", b"x" * 100))) as zf:
        assert zf.infolist()[0].flag_bits & 1
        with pytest.raises(RuntimeError, match="encrypted"):
            zf.read("a.jpg")


def test_every_case_points_at_something_on_disk(hostile: HostileSpec) -> None:
    ev = hostile.evidence
    assert len(hostile.cases) >= 40
    for case in hostile.cases:
        if case.scope == "row":
            assert case.path in ev.entries, case.path
            assert ev.entries[case.path].status in case.statuses
        else:
            top = case.path.split("!/")[0].rstrip("/")
            assert os.path.lexists(os.path.join(ev.root, top)), case.path
    notes = " ".join(c.note for c in hostile.cases)
    for needed in ("cut at 50%", "random body", "zero bytes", "100000 x 100000", "2000 frames",
                   "encrypted", "1000:1", "depth limit", "sparse"):
        assert needed in notes, needed
    labels = set(ev.entries)
    assert "archives/traversal.zip!/../../escape.jpg" in labels
    assert "archives/traversal.tar!/../../escape.jpg" in labels
    assert "archives/traversal.zip!/etc/abs.jpg" not in labels
    assert "archives/traversal.zip!//etc/abs.jpg" in labels
    # Nothing escaped the root when the archives were written.
    assert not (Path(ev.root).parent / "escape.jpg").exists()


def test_statuses_agree_with_pillow(hostile: HostileSpec) -> None:
    ev = hostile.evidence
    for key, entry in ev.entries.items():
        if entry.kind != "file" or entry.media != "image":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if entry.status == "hashed":
                with Image.open(ev.absolute(key)) as im:
                    im.load()
            else:
                with pytest.raises((OSError, SyntaxError, ValueError, Image.DecompressionBombError)):
                    with Image.open(ev.absolute(key)) as im:
                        im.load()


def test_sparse_file_is_sparse(hostile: HostileSpec) -> None:
    path = hostile.evidence.absolute("sparse/disk_image.dd")
    st = os.stat(path)
    assert st.st_size == 3 * 1024**3
    assert st.st_blocks * 512 < 16 * MiB  # holes, not data


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about our corrupt TIFFs
def test_walk_and_hasher_meet_every_expectation(hostile: HostileSpec) -> None:
    """Cross-check with the scan's walk and the hasher: exact rows where the spec has them,
    and every case met (sparse file left out: hashing 3 GiB of zeros is a benchmark's job)."""
    from triage.batches import HashBatch, hash_batch
    from triage.runner import _task

    walk_mod = pytest.importorskip("triage.walk")
    hasher = pytest.importorskip("hashing.hasher")
    opts = hasher.HashOptions(decode_mode="exact")
    root = hostile.evidence.root
    rows: dict[str, tuple[str, str, str]] = {}
    for item in walk_mod.walk([root]):
        key = item.path[len(root) + 1:]
        status = item.status
        reason = item.reason or ""
        if status == "pending" and key != "sparse/disk_image.dd":
            # as a scan's worker hashes it: bytes, a path, or a located archive member
            rec = hash_batch(HashBatch(0, (_task(item),), opts)).records[0]
            status, reason = rec.status, rec.error or reason
        rows[key] = (item.kind, status, reason.lower())
    for key, entry in hostile.evidence.entries.items():
        if key != "sparse/disk_image.dd":
            assert rows[key][:2] == (entry.kind, entry.status), key
    for case in hostile.cases:
        if case.path == "sparse/disk_image.dd":
            continue
        hits = [r for k, r in rows.items()
                if (k == case.path if case.scope == "row" else k.startswith(case.path))
                and r[1] in case.statuses and (case.reason is None or case.reason in r[2])]
        assert hits, case
