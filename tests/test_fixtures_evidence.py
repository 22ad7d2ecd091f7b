"""Tests of the synthetic evidence folder: every path exists as promised and nothing is unaccounted."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from synthetic_fixtures.evidence import EvidenceSpec, make_evidence


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> EvidenceSpec:
    root = tmp_path_factory.mktemp("ev") / "evidence"
    return make_evidence(root, seed=3, n_images=14, n_videos=2, sizes=((96, 72), (64, 80)),
                         video_seconds=2, video_fps=4, video_size=(96, 64))


def _archive_members(name: str, data: bytes) -> dict[str, bytes]:
    """Recursively list regular members as 'name!/member' -> bytes, the labelling the spec uses."""
    out: dict[str, bytes] = {}
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            items = [(i.filename, zf.read(i)) for i in zf.infolist() if not i.is_dir()]
    else:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            items = [(m.name, tf.extractfile(m).read()) for m in tf.getmembers() if m.isfile()]
    for member, body in items:
        key = f"{name}!/{member}"
        out[key] = body
        if member.endswith((".zip", ".tar", ".tar.gz")):
            out.update(_archive_members(key, body))
    return out


def _walk(root: Path) -> dict[str, os.stat_result]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                continue
            found[os.fsdecode(os.path.relpath(full, os.fsencode(root)))] = st
    return found


def test_every_path_is_accounted_for_with_its_kind(spec: EvidenceSpec) -> None:
    on_disk = _walk(Path(spec.root))
    top = {k: e for k, e in spec.entries.items() if e.kind != "archive_member"}
    assert set(on_disk) == set(top)
    for key, entry in top.items():
        mode = on_disk[key].st_mode
        expected = {"file": stat.S_ISREG, "symlink": stat.S_ISLNK, "special": stat.S_ISFIFO}[entry.kind]
        assert expected(mode), key
        if entry.kind == "file":
            data = Path(spec.absolute(key)).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry.sha256
        if entry.kind == "symlink":
            assert os.readlink(spec.absolute(key)) == entry.link_target


def test_archive_members_match_the_spec(spec: EvidenceSpec) -> None:
    members: dict[str, bytes] = {}
    for key, entry in spec.entries.items():
        if entry.kind == "file" and entry.media == "archive":
            members.update(_archive_members(key, Path(spec.absolute(key)).read_bytes()))
    expected = {k: e for k, e in spec.entries.items() if e.kind == "archive_member"}
    assert set(members) == set(expected)
    assert "outer.zip!/inner.tar!/x.jpg" in expected
    assert "phone_dump/export.tar.gz!/nested/inner.zip!/deep/y.jpg" in expected
    for key, body in members.items():
        assert hashlib.sha256(body).hexdigest() == expected[key].sha256


def test_statuses_agree_with_what_pillow_can_decode(spec: EvidenceSpec) -> None:
    for key, entry in spec.entries.items():
        if entry.kind != "file" or entry.media != "image":
            continue
        path = spec.absolute(key)
        if entry.status == "hashed":
            with Image.open(path) as im:
                im.load()
        else:
            with pytest.raises((OSError, SyntaxError, ValueError)):
                with Image.open(path) as im:
                    im.load()


def test_required_awkward_cases_are_present(spec: EvidenceSpec) -> None:
    notes = {e.note for e in spec.entries.values()}
    for needed in ("JPEG named .txt", "text named .jpg", "dangling link", "link loop", "named pipe",
                   "non-UTF-8 name", "newline in name", "leading '='", "empty file"):
        assert needed in notes, needed
    assert any(e.note.startswith("duplicate of") for e in spec.entries.values())
    assert sum(1 for e in spec.entries.values() if e.media == "video") == 2
    raw_names = [k for k in spec.entries if os.fsencode(k) != k.encode("utf-8", "surrogatepass")]
    assert raw_names  # the non-UTF-8 name survived as raw bytes
    doc = json.loads(spec.to_json())
    assert any("path_bytes_hex" in e for e in doc["entries"])


def test_two_builds_are_identical(tmp_path: Path) -> None:
    kw = dict(n_images=5, n_videos=1, sizes=((64, 48),), video_seconds=1, video_fps=4, video_size=(64, 48))
    a = make_evidence(tmp_path / "a", seed=8, **kw)
    b = make_evidence(tmp_path / "b", seed=8, **kw)
    assert a.entries == b.entries

    def state(root: Path) -> dict[str, tuple[int, int, bytes]]:
        out = {}
        for key, st in _walk(root).items():
            full = os.path.join(os.fsencode(root), os.fsencode(key))
            body = os.readlink(full) if stat.S_ISLNK(st.st_mode) else (
                Path(os.fsdecode(full)).read_bytes() if stat.S_ISREG(st.st_mode) else b"")
            out[key] = (st.st_mtime_ns, st.st_size, os.fsencode(body))
        return out

    assert state(tmp_path / "a") == state(tmp_path / "b")


def test_walk_and_hasher_agree_with_the_spec(spec: EvidenceSpec) -> None:
    """Cross-check with the scan's walk and the hasher: same rows, kinds and statuses."""
    from triage.batches import HashBatch, hash_batch
    from triage.runner import _task

    walk_mod = pytest.importorskip("triage.walk")
    hasher = pytest.importorskip("hashing.hasher")
    opts = hasher.HashOptions(decode_mode="exact")
    prefix = spec.root + os.sep
    rows = {}
    for item in walk_mod.walk([spec.root]):
        key = item.path[len(prefix):] if item.path.startswith(prefix) else item.path
        status = item.status
        if status == "pending":
            # as a scan's worker hashes it: bytes, a path, or a located archive member
            rec = hash_batch(HashBatch(0, (_task(item),), opts)).records[0]
            status = rec.status
        rows[key] = (item.kind, status)
    assert rows == {k: (e.kind, e.status) for k, e in spec.entries.items()}
