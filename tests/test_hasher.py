"""hash_path / hash_bytes / hash_tree: one read, digests plus decode from the same bytes,
read-only opening, error rows that keep their digests, and deterministic pooled output."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import cv2
import imagehash
import numpy as np
import pytest
from _pdq_oracle import pdq_oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hashing.errors import UnknownAlgorithmError
from hashing.hasher import (
    HashOptions,
    hash_bytes,
    hash_path,
)
from triage.runner import hash_tree

ALL = ("pdq", "phash", "dhash", "ahash", "whash", "md5", "sha1", "sha256")
EXACT = HashOptions(algorithms=ALL, decode_mode="exact")


def _photo(h: int = 90, w: int = 120, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 220, y / h * 200, (x * y) / (w * h) * 255], 2)
    for _ in range(5):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        img[y0 : y0 + 25, x0 : x0 + 25] = rng.integers(0, 255, 3)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def _write_image(path: Path, fmt: str = "JPEG", seed: int = 0, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_photo(seed=seed)).save(buf, format=fmt, **kw)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _digests(data: bytes) -> dict[str, str]:
    return {n: hashlib.new(n, data).hexdigest() for n in ("md5", "sha1", "sha256")}


def _bits_apart(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def test_image_record_matches_references(tmp_path: Path) -> None:
    p = tmp_path / "a.jpg"
    data = _write_image(p)
    rec = hash_path(str(p), EXACT)
    assert rec.status == "hashed" and rec.error is None
    assert (rec.media_type, rec.width, rec.height) == ("image/jpeg", 120, 90)
    assert rec.size == len(data) and rec.mtime == pytest.approx(p.stat().st_mtime)
    for name, value in _digests(data).items():
        assert rec.hashes[name] == value
    assert (rec.hashes["pdq"], rec.pdq_quality) == pdq_oracle(
        np.asarray(Image.open(p).convert("RGB")))
    assert rec.hashes["phash"] == str(imagehash.phash(Image.open(p)))
    assert rec.hashes["dhash"] == str(imagehash.dhash(Image.open(p)))
    assert rec.hashes["ahash"] == str(imagehash.average_hash(Image.open(p)))
    assert rec.hashes["whash"] == str(imagehash.whash(Image.open(p)))
    assert list(rec.hashes) == list(ALL)
    assert hash_bytes(data, str(p), EXACT, mtime=rec.mtime) == rec


def test_fast_mode_close_to_exact(tmp_path: Path) -> None:
    from hashing.decode import decode_image

    p = tmp_path / "big.jpg"
    Image.fromarray(_photo(900, 1400, seed=8)).save(p, quality=90)  # 1.26 MP: fast path used
    assert decode_image(p.read_bytes(), path=str(p), mode="fast", need={"luma"}).fast_luma
    fast = hash_path(str(p), HashOptions(algorithms=("pdq",)))
    exact = hash_path(str(p), HashOptions(algorithms=("pdq",), decode_mode="exact"))
    assert fast.status == exact.status == "hashed"
    assert _bits_apart(fast.hashes["pdq"], exact.hashes["pdq"]) <= 4


def test_opened_read_only_with_noatime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "a.png"
    data = _write_image(p, "PNG")
    os.chmod(p, 0o444)
    before = p.stat()
    flags_seen: list[int] = []
    real_open = os.open

    def spy(path, flags, *args):  # type: ignore[no-untyped-def]
        flags_seen.append(flags)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", spy)
    rec = hash_path(str(p), EXACT)
    assert rec.status == "hashed"
    assert len(flags_seen) == 1 and flags_seen[0] & os.O_ACCMODE == os.O_RDONLY
    assert flags_seen[0] & getattr(os, "O_NOATIME", 0) == getattr(os, "O_NOATIME", 0)
    assert not flags_seen[0] & (os.O_CREAT | os.O_TRUNC | os.O_APPEND)
    after = p.stat()
    assert p.read_bytes() == data
    assert (after.st_mtime_ns, after.st_atime_ns, after.st_mode) == (
        before.st_mtime_ns, before.st_atime_ns, before.st_mode)


@pytest.mark.skipif(not hasattr(os, "O_NOATIME"), reason="Linux only")
def test_noatime_refused_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "a.png"
    _write_image(p, "PNG")
    real_open = os.open

    def not_owner(path, flags, *args):  # type: ignore[no-untyped-def]
        if flags & os.O_NOATIME:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", not_owner)
    assert hash_path(str(p), EXACT).status == "hashed"


def test_truncated_jpeg_is_error_with_digests(tmp_path: Path) -> None:
    data = _write_image(tmp_path / "full.jpg", seed=3)
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) * 2 // 3])
    rec = hash_path(str(p), EXACT)
    assert rec.status == "error" and rec.error is not None and rec.error.startswith("truncated")
    assert rec.hashes == _digests(p.read_bytes())
    assert rec.pdq_quality is None and rec.media_type == "image/jpeg"


@pytest.mark.parametrize(
    ("name", "content"),
    [("zero.jpg", b""), ("text.jpg", b"just some notes\n" * 40),
     ("random.jpg", np.random.default_rng(9).integers(0, 256, 3000, dtype=np.uint8).tobytes()),
     ("fake.mp4", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 200)],
)
def test_disguised_or_broken_media_is_error(tmp_path: Path, name: str, content: bytes) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    rec = hash_path(str(p), EXACT)
    assert rec.status == "error" and rec.error, rec
    assert rec.hashes == _digests(content)
    assert rec.size == len(content)


def test_jpeg_named_txt_is_hashed_as_jpeg(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    _write_image(p)
    rec = hash_path(str(p), EXACT)
    assert rec.status == "hashed" and rec.media_type == "image/jpeg" and "pdq" in rec.hashes


def test_plain_non_media_gets_digests_only(tmp_path: Path) -> None:
    p = tmp_path / "readme.txt"
    p.write_bytes(b"hello\n")
    rec = hash_path(str(p), EXACT)
    assert rec.status == "hashed" and rec.error is None and rec.media_type is None
    assert rec.hashes == _digests(b"hello\n")


def test_archive_is_reported_as_archive() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "x")
    rec = hash_bytes(buf.getvalue(), "a.zip", EXACT)
    assert rec.status == "hashed" and rec.media_type == "application/zip"
    assert set(rec.hashes) == {"md5", "sha1", "sha256"}


def test_pixel_bomb_is_error(tmp_path: Path) -> None:
    from test_decode import _png_header

    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header(100_000, 100_000))
    rec = hash_path(str(p), EXACT)
    assert rec.status == "error" and rec.error is not None and "pixel limit" in rec.error
    small = hash_path(str(p), HashOptions(pixel_limit=1000))
    assert small.status == "error" and "pixel limit" in (small.error or "")


def test_digests_only_never_decodes(tmp_path: Path) -> None:
    p = tmp_path / "cut.jpg"
    p.write_bytes(_write_image(tmp_path / "x.jpg")[:300])
    rec = hash_path(str(p), HashOptions(algorithms=("sha256",)))
    assert rec.status == "hashed" and rec.hashes == {"sha256": _digests(p.read_bytes())["sha256"]}
    assert rec.width is None


def test_exif_orientation_and_transposed_hashes(tmp_path: Path) -> None:
    from hashing.algorithms.pdq import pdq_from_rgb

    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "r.jpg"
    _write_image(p, exif=exif.tobytes(), quality=95)
    plain = hash_path(str(p), EXACT)
    assert plain.exif_orientation == 6 and plain.exif_hashes is None
    opts = HashOptions(algorithms=ALL, decode_mode="exact", exif_transpose=True)
    rec = hash_path(str(p), opts)
    assert rec.hashes == plain.hashes and rec.exif_hashes is not None
    shown = Image.open(p).transpose(Image.Transpose.ROTATE_270)
    assert rec.exif_hashes["pdq"] == pdq_from_rgb(np.asarray(shown.convert("RGB"))).hash
    assert rec.exif_hashes["phash"] == str(imagehash.phash(shown))
    assert rec.to_dict()["pdq_exif"] == rec.exif_hashes["pdq"]
    upright = tmp_path / "u.jpg"
    _write_image(upright)
    assert hash_path(str(upright), opts).exif_hashes is None


def test_dihedral(tmp_path: Path) -> None:
    p = tmp_path / "d.png"
    _write_image(p, "PNG")
    rec = hash_path(str(p), HashOptions(algorithms=("pdq",), dihedral=True))
    assert rec.pdq_dihedral is not None and len(rec.pdq_dihedral) == 8
    assert rec.hashes["pdq"] == rec.pdq_dihedral[0]


def test_low_quality_still_reported(tmp_path: Path) -> None:
    p = tmp_path / "flat.png"
    Image.new("RGB", (64, 64), (120, 120, 120)).save(p)
    rec = hash_path(str(p), EXACT)
    assert rec.status == "hashed" and rec.pdq_quality is not None and rec.pdq_quality < 50
    assert len(rec.hashes["pdq"]) == 64


def test_large_non_media_streamed(tmp_path: Path) -> None:
    p = tmp_path / "blob.bin"
    data = np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    p.write_bytes(data)
    rec = hash_path(str(p), HashOptions(max_media_bytes=4096))
    assert rec.status == "hashed" and rec.hashes == _digests(data) and rec.size == len(data)


def test_large_image_reported_not_loaded(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    data = _write_image(p, "PNG")
    rec = hash_path(str(p), HashOptions(max_media_bytes=1000))
    assert rec.status == "error" and "max_media_bytes" in (rec.error or "")
    assert rec.hashes == _digests(data) and rec.media_type == "image/png"


def _avi(path: Path, seconds: int = 3) -> bytes:
    tmp = path.with_suffix(".avi")  # OpenCV picks its writer by extension
    w = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 64))
    for s in range(seconds):
        frame = cv2.cvtColor(_photo(64, 96, seed=s), cv2.COLOR_RGB2BGR)
        for _ in range(5):
            w.write(frame)
    w.release()
    tmp.rename(path)
    return path.read_bytes()


def test_video_file(tmp_path: Path) -> None:
    p = tmp_path / "clip.dat"  # content decides, not the name
    data = _avi(p)
    rec = hash_path(str(p), EXACT)
    assert rec.status == "hashed" and rec.media_type == "video/x-msvideo"
    assert rec.pdq_frames is not None and len(rec.pdq_frames) == 3
    assert rec.duration == pytest.approx(3.0) and (rec.width, rec.height) == (96, 64)
    assert rec.hashes == _digests(data)
    streamed = hash_path(str(p), HashOptions(algorithms=ALL, decode_mode="exact",
                                             max_media_bytes=1024))
    assert streamed == rec
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    half = hash_path(str(cut), EXACT)
    assert half.status == "error" and (half.error or "").startswith("truncated video")
    assert half.pdq_frames and half.hashes == _digests(cut.read_bytes())


def test_symlink_and_fifo_are_skipped_not_read(tmp_path: Path) -> None:
    target = tmp_path / "t.png"
    _write_image(target, "PNG")
    link = tmp_path / "l.png"
    link.symlink_to(target)
    rec = hash_path(str(link), EXACT)
    assert (rec.status, rec.kind, rec.link_target) == ("skipped", "symlink", str(target))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    rec = hash_path(str(fifo), EXACT)  # would block forever if it were opened for reading
    assert (rec.status, rec.kind) == ("skipped", "special")
    missing = hash_path(str(tmp_path / "gone"), EXACT)
    assert missing.status == "error" and "cannot stat" in (missing.error or "")


def test_non_utf8_name(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.png")
    p = os.path.join(str(tmp_path), name)
    _write_image(Path(p), "PNG")
    rec = hash_path(p, EXACT)
    assert rec.status == "hashed" and os.fsencode(rec.path).endswith(b"caf\xe9.png")


def test_options_validated() -> None:
    with pytest.raises(UnknownAlgorithmError):
        HashOptions(algorithms=("pdq", "sha512"))
    with pytest.raises(ValueError):
        HashOptions(decode_mode="slow")  # type: ignore[arg-type]
    opts = HashOptions(algorithms=("md5", "pdq", "phash"))
    assert opts.digests == ("md5",) and opts.perceptual == ("pdq", "phash")


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "case"
    (root / "b").mkdir(parents=True)
    (root / "a").mkdir()
    for i, sub in enumerate(["a", "b", "a", "b", "."]):
        _write_image(root / sub / f"img{i}.png", "PNG", seed=i)
    (root / "a" / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    (root / "z.txt").write_text("x")
    (root / "loop").symlink_to(root, target_is_directory=True)
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_hash_tree_order_and_equality(tmp_path: Path, workers: int) -> None:
    """`triage hash`'s runner: walk order, the same records in-process and in a pool."""
    root = _tree(tmp_path)
    opts = HashOptions(algorithms=("phash", "md5"), decode_mode="exact")
    got = list(hash_tree([str(root)], opts, workers=workers, batch_size=2))
    rel = [os.path.relpath(r.path, root) for r in got]
    assert rel == ["a/cut.jpg", "a/img0.png", "a/img2.png", "b/img1.png", "b/img3.png",
                   "img4.png", "loop", "z.txt"]
    files = [r for r in got if r.kind == "file"]
    assert [replace(r, size=None, mtime=None) for r in files] == [
        replace(hash_path(r.path, opts), size=None, mtime=None) for r in files]
    statuses = {os.path.basename(r.path): r.status for r in got}
    assert statuses["cut.jpg"] == "error" and statuses["loop"] == "skipped"


def test_unexpected_decoder_exception_is_an_error_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashing.hasher as hasher

    def explode(*args: object, **kw: object) -> None:
        raise KeyError("bug in a decoder plugin")

    monkeypatch.setattr(hasher, "decode_image", explode)
    p = tmp_path / "a.png"
    data = _write_image(p, "PNG")
    rec = hash_path(str(p), EXACT)
    assert rec.status == "error" and (rec.error or "").startswith("decoder failed: KeyError")
    assert rec.hashes == _digests(data)


def test_signature_less_image_is_not_decoded(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_photo()).save(buf, format="TGA")
    (tmp_path / "blob.bin").write_bytes(buf.getvalue())
    (tmp_path / "pic.jpg").write_bytes(buf.getvalue())
    rec = hash_path(str(tmp_path / "blob.bin"), EXACT)
    assert rec.status == "hashed" and rec.media_type is None and "pdq" not in rec.hashes
    named = hash_path(str(tmp_path / "pic.jpg"), EXACT)
    assert named.status == "error" and "not a recognised" in (named.error or "")


def test_unlistable_directory_is_a_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path)
    real_scandir = os.scandir
    locked = str(root / "b")

    def scandir(path=".", *a, **kw):  # type: ignore[no-untyped-def]
        if os.fspath(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_scandir(path, *a, **kw)

    monkeypatch.setattr(os, "scandir", scandir)
    rec = hash_path(locked, EXACT)
    assert rec.status == "error" and rec.error == "cannot list directory: Permission denied"
    assert hash_path(str(root / "a"), EXACT).status == "skipped"


_SEEDS: dict[str, bytes] = {}


def _seed_file(fmt: str) -> bytes:
    if fmt not in _SEEDS:
        buf = io.BytesIO()
        Image.fromarray(_photo(40, 48, seed=4)).save(buf, format=fmt)
        _SEEDS[fmt] = buf.getvalue()
    return _SEEDS[fmt]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"]),
       cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 4000),
                                                            st.integers(0, 255)), max_size=6))
def test_mutated_media_never_raises(fmt: str, cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(_seed_file(fmt))
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    blob = bytes(data[: max(cut, 1)] if cut < len(data) else data)
    rec = hash_bytes(blob, "m.bin", EXACT)
    assert rec.status in ("hashed", "error")
    assert rec.hashes["sha256"] == hashlib.sha256(blob).hexdigest()
    assert (rec.status == "error") == (rec.error is not None)
    if rec.status == "hashed" and rec.media_type is not None:
        assert len(rec.hashes["pdq"]) == 64 and len(rec.hashes["phash"]) == 16
