"""FAISS container (atomic write, checked and mapped read) and `FaissBinaryIndex`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import faiss
import numpy as np
import pytest

from index import faiss_store
from index.errors import IndexCorruptError
from index.faiss_store import CodesWriter, FaissBinaryIndex, read_index, write_index_atomic
from index.hamming import HammingIndex
from index.protocol import PAD_DISTANCE, BinaryIndex


def _codes(seed: int, n: int, nbytes: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, nbytes), dtype=np.uint8)


def _near(code: np.ndarray, nbits: int, rng: np.random.Generator) -> np.ndarray:
    bits = np.unpackbits(code)
    bits[rng.choice(bits.size, size=nbits, replace=False)] ^= 1
    return np.packbits(bits)


@pytest.mark.parametrize(("n", "nbytes"), [(1000, 32), (37, 8), (0, 32)])
def test_round_trip_and_checksum(tmp_path: Path, n: int, nbytes: int) -> None:
    codes = _codes(1, n, nbytes)
    path = tmp_path / "pdq.faiss"
    digest = write_index_atomic(path, codes)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    back = read_index(path, digest)
    assert back.dtype == np.uint8 and back.shape == (n, nbytes)
    assert np.array_equal(back, codes)
    assert np.array_equal(read_index(path), codes)  # without a checksum too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pdq.faiss"]  # no temp left behind


@pytest.mark.parametrize(("n", "nbytes", "step"), [(1000, 32, 7), (37, 8, 37), (0, 32, 1),
                                                   (300, 16, 1000)])
def test_streamed_file_is_faiss_s_own(tmp_path: Path, n: int, nbytes: int, step: int) -> None:
    """CodesWriter fed in chunks (arrays and bytes) writes the bytes FAISS's writer writes."""
    codes = _codes(3, n, nbytes)
    faiss_digest = write_index_atomic(tmp_path / "faiss.bin", codes)
    with CodesWriter(tmp_path / "ours.bin", nbytes) as out:
        for k, i in enumerate(range(0, n, step)):
            chunk = codes[i:i + step]
            out.add(chunk if k % 2 else chunk.tobytes())
        assert out.count == n
        digest = out.commit()
    assert (tmp_path / "ours.bin").read_bytes() == (tmp_path / "faiss.bin").read_bytes()
    assert digest == faiss_digest
    assert np.array_equal(read_index(tmp_path / "ours.bin", digest), codes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faiss.bin", "ours.bin"]


def test_streamed_file_not_committed_leaves_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "a.faiss"
    digest = write_index_atomic(path, _codes(4, 10))
    with CodesWriter(path, 32) as out:  # left without commit
        out.add(_codes(5, 20))
    with pytest.raises(RuntimeError, match="boom"), CodesWriter(path, 32) as out:
        out.add(_codes(6, 20))
        raise RuntimeError("boom")
    with CodesWriter(path, 32) as out, pytest.raises(ValueError, match="whole number"):
        out.add(b"x" * 33)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.faiss"]
    assert read_index(path, digest).shape == (10, 32)


def test_read_codes_are_read_only_and_outlive_the_reader(tmp_path: Path) -> None:
    codes = _codes(2, 500)
    path = tmp_path / "a.faiss"
    write_index_atomic(path, codes)
    back = read_index(path)
    with pytest.raises(ValueError):
        back[0, 0] ^= 1
    index = HammingIndex(back)  # usable directly by the search
    del back
    lims, dist, ids = index.range_search(codes[:3], 0)
    assert ids.tolist() == [0, 1, 2] and dist.tolist() == [0, 0, 0]


def test_overwrite_is_atomic_rename(tmp_path: Path) -> None:
    path = tmp_path / "a.faiss"
    first = write_index_atomic(path, _codes(3, 100))
    second = write_index_atomic(path, _codes(4, 200))
    assert first != second
    assert read_index(path, second).shape == (200, 32)
    with pytest.raises(IndexCorruptError, match="checksum mismatch"):
        read_index(path, first)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.faiss"
    digest = write_index_atomic(path, _codes(5, 100))

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(faiss_store.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_index_atomic(path, _codes(6, 300))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.faiss"]
    assert read_index(path, digest).shape == (100, 32)


def test_temp_file_is_never_the_real_name(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_write = faiss.write_index_binary

    def spy(index: object, name: str) -> None:
        seen.append(name)
        real_write(index, name)

    monkeypatch.setattr(faiss_store.faiss, "write_index_binary", spy)
    write_index_atomic(tmp_path / "a.faiss", _codes(7, 10))
    assert len(seen) == 1
    assert Path(seen[0]).parent == tmp_path and Path(seen[0]).name != "a.faiss"
    assert not Path(seen[0]).exists()


def test_flipped_byte_is_a_checksum_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "a.faiss"
    digest = write_index_atomic(path, _codes(8, 100))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError) as info:
        read_index(path, digest)
    assert info.value.path == str(path) and "checksum mismatch" in info.value.reason


@pytest.mark.parametrize("keep", [0, 10, 30, 2000])
def test_truncated_file_is_refused(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "a.faiss"
    write_index_atomic(path, _codes(9, 100))
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(IndexCorruptError) as info:
        read_index(path)
    assert info.value.path == str(path)


def test_missing_garbage_and_wrong_kind(tmp_path: Path) -> None:
    with pytest.raises(IndexCorruptError, match="missing"):
        read_index(tmp_path / "nope.faiss")
    garbage = tmp_path / "g.faiss"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(IndexCorruptError, match="FAISS cannot read"):
        read_index(garbage)
    ivf = tmp_path / "ivf.faiss"
    quantizer = faiss.IndexBinaryFlat(256)
    index = faiss.IndexBinaryIVF(quantizer, 256, 4)
    index.train(_codes(10, 200))
    faiss.write_index_binary(index, str(ivf))
    with pytest.raises(IndexCorruptError, match="flat binary"):
        read_index(ivf)


def test_bad_codes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_index_atomic(tmp_path / "a", np.zeros((3, 12), dtype=np.uint8))
    with pytest.raises(ValueError):
        write_index_atomic(tmp_path / "a", np.zeros((3, 32), dtype=np.int32))


@pytest.mark.parametrize(("nbytes", "radius"), [(32, 31), (32, 0), (8, 8)])
def test_flat_equals_hamming_index(nbytes: int, radius: int) -> None:
    rng = np.random.default_rng(11)
    db = _codes(12, 30_000, nbytes)
    q = _codes(13, 20, nbytes)
    for k in range(20):  # boundary neighbours: radius matches, radius + 1 does not
        db[100 + k] = _near(q[k], radius, rng)
        db[200 + k] = _near(q[k], radius + 1, rng)
    flat = FaissBinaryIndex(db)
    assert isinstance(flat, BinaryIndex) and flat.ntotal == 30_000 and flat.nbytes == nbytes
    want = HammingIndex(db).range_search(q, radius)
    got = flat.range_search(q, radius)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and np.array_equal(g, w)
    assert 100 in got[2] and 200 not in got[2]


def test_flat_knn_distances_equal_hamming_index() -> None:
    db, q = _codes(14, 2000), _codes(15, 10)
    d_faiss, i_faiss = FaissBinaryIndex(db).knn(q, 5)
    d_ours, i_ours = HammingIndex(db).knn(q, 5)
    assert np.array_equal(d_faiss, d_ours)
    for row in range(len(q)):  # below the k-th distance there are no ties to break
        closer = d_ours[row] < d_ours[row, -1]
        assert i_faiss[row][closer].tolist() == i_ours[row][closer].tolist()
    small = FaissBinaryIndex(db[:3]).knn(q, 5)
    assert (small[1][:, 3:] == -1).all() and (small[0][:, 3:] == PAD_DISTANCE).all()


def _planted(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """4,000 random codes and 30 queries, each with 5 codes planted 5-25 bits from it."""
    rng = np.random.default_rng(seed)
    db = _codes(seed + 1, 4_000)
    q = _codes(seed + 2, 30)
    for k in range(30):
        for j in range(5):
            db[k * 5 + j] = _near(q[k], 5 + 5 * j, rng)
    return db, q


def test_ivf_is_approximate_with_measured_recall() -> None:
    db, q = _planted(16)
    ivf = FaissBinaryIndex(db, kind="ivf", nlist=16, nprobe=16)
    exact = HammingIndex(db)
    assert ivf.recall_against(exact, q, 31) == 1.0  # probing every list is exhaustive
    few = FaissBinaryIndex(db, kind="ivf", nlist=16, nprobe=1)
    recall = few.recall_against(exact, q, 31)
    assert 0.0 <= recall <= 1.0
    lims, dist, ids = few.range_search(q, 31)
    assert (dist <= 31).all()
    with pytest.raises(ValueError):
        FaissBinaryIndex(db, kind="hnsw")  # type: ignore[arg-type]


def test_ivf_with_sampled_centroids_needs_no_training() -> None:
    db, q = _planted(21)
    exact = HammingIndex(db)
    every = FaissBinaryIndex(db, kind="ivf", nlist=32, nprobe=32, sampled=True)
    assert every.recall_against(exact, q, 31) == 1.0  # every list probed: exhaustive
    # a code is always filed under its own centroid, so a query equal to a centroid finds it
    few = FaissBinaryIndex(db, kind="ivf", nlist=32, nprobe=1, sampled=True)
    centroids = np.sort(np.random.default_rng(0).choice(len(db), 32, replace=False))
    lims, dist, ids = few.range_search(db[centroids], 0)
    assert all(c in ids[lims[k]:lims[k + 1]] for k, c in enumerate(centroids))
    assert (dist == 0).all()
    with pytest.raises(ValueError, match="sampled centroids"):
        FaissBinaryIndex(db[:10], kind="ivf", nlist=32, sampled=True)


def _same_search(a: BinaryIndex, b: BinaryIndex, q: np.ndarray, radius: int) -> bool:
    return all(np.array_equal(x, y) for x, y in
               zip(a.range_search(q, radius), b.range_search(q, radius), strict=True))


def test_saved_ivf_round_trip_key_and_damage(tmp_path: Path) -> None:
    from index.faiss_store import read_ivf, write_ivf_atomic

    db, q = _planted(22)
    built = FaissBinaryIndex(db, kind="ivf", nlist=32, nprobe=4, sampled=True)
    path = tmp_path / "d.ivf"
    key = hashlib.sha256(b"codes").digest()
    assert read_ivf(path, key, 4) is None  # nothing saved yet
    write_ivf_atomic(path, built, key)
    assert os.stat(path).st_mode & 0o777 == 0o600  # it holds the codes themselves
    assert [p.name for p in tmp_path.iterdir()] == ["d.ivf"]  # no temp file left
    back = read_ivf(path, key, 4)
    assert back is not None and back.nlist == 32 and back.ntotal == len(db)
    assert _same_search(back, built, q, 31)
    wider = read_ivf(path, key, 32)  # the probe count is the reader's
    assert wider is not None and wider.recall_against(HammingIndex(db), q, 31) == 1.0
    assert read_ivf(path, hashlib.sha256(b"other codes").digest(), 4) is None
    with pytest.raises(ValueError):
        write_ivf_atomic(path, built, b"short")
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="checksum"):
        read_ivf(path, key, 4)
    path.write_bytes(bytes(data[:50]))
    with pytest.raises(IndexCorruptError, match="truncated"):
        read_ivf(path, key, 4)
    write_index_atomic(path, db)  # a flat index file is no saved IVF
    with pytest.raises(IndexCorruptError, match="not a saved IVF"):
        read_ivf(path, key, 4)
