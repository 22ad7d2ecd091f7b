"""Video hashing on videos written here with OpenCV: per-second sampling, per-frame PDQ equal
to the oracle on the same decoded frame, vPDQ-style collapsing, truncation and junk."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from _pdq_oracle import pdq_oracle

from hashing.algorithms.video import collapse, hash_video
from hashing.errors import CorruptMediaError, MediaError, PixelLimitError
from hashing.types import FrameHash

W, H, FPS = 128, 96, 10


def _scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([x / W * 255, y / H * 255, np.full_like(x, 100)], 2)
    for _ in range(5):
        y0, x0 = rng.integers(0, H - 20), rng.integers(0, W - 20)
        img[y0 : y0 + 30, x0 : x0 + 30] = rng.integers(0, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write(path: Path, fourcc: str, scenes: list[int]) -> bytes:
    """One scene per second of video (BGR frames, as OpenCV writes them)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
    assert w.isOpened()
    for s in scenes:
        frame = _scene(s)
        for _ in range(FPS):
            w.write(frame)
    w.release()
    return path.read_bytes()


@pytest.fixture(scope="module")
def avi(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    # scenes 0,1,2 then the same scene for two more seconds: 5 s, 50 frames
    return _write(tmp_path_factory.mktemp("v") / "a.avi", "MJPG", [10, 11, 12, 13, 13])


def _decoded_frames(data: bytes) -> list[np.ndarray]:
    cap = cv2.VideoCapture(io.BytesIO(data), cv2.CAP_FFMPEG, [])
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))


def test_one_frame_per_second_collapsed(avi: bytes) -> None:
    res = hash_video(avi, path="a.avi")
    assert res.error is None and (res.width, res.height) == (W, H)
    assert res.duration == pytest.approx(5.0)
    assert [f.t for f in res.frames] == pytest.approx([0.0, 1.0, 2.0, 3.0])  # t=4 collapsed
    decoded = _decoded_frames(avi)
    for f in res.frames:
        assert (f.pdq, f.quality) == pdq_oracle(decoded[round(f.t * FPS)])


def test_no_collapse_keeps_every_sample(avi: bytes) -> None:
    res = hash_video(avi, path="a.avi", collapse_distance=-1)
    assert [f.t for f in res.frames] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert res.frames[3].pdq == res.frames[4].pdq


def test_configurable_rate(avi: bytes) -> None:
    res = hash_video(avi, path="a.avi", fps=2.0, collapse_distance=-1)
    assert [f.t for f in res.frames] == pytest.approx([i * 0.5 for i in range(10)])


def test_stream_and_bytes_agree(avi: bytes) -> None:
    from_stream = hash_video(io.BufferedReader(io.BytesIO(avi)), path="a.avi")  # type: ignore[arg-type]
    assert from_stream == hash_video(avi, path="a.avi")


def test_mp4(tmp_path: Path) -> None:
    data = _write(tmp_path / "m.mp4", "mp4v", [1, 2, 3])
    res = hash_video(data, path="m.mp4")
    assert res.error is None and len(res.frames) == 3
    assert res.duration == pytest.approx(3.0)
    assert all(len(f.pdq) == 64 and 0 <= f.quality <= 100 for f in res.frames)


def test_truncated_video_keeps_decoded_frames(avi: bytes) -> None:
    res = hash_video(avi[: len(avi) // 2], path="t.avi")
    assert res.error is not None and res.error.startswith("truncated video")
    assert 1 <= len(res.frames) < 4
    full = hash_video(avi, path="a.avi")
    assert res.frames == full.frames[: len(res.frames)]


def test_truncated_mp4_without_index_is_an_error(tmp_path: Path) -> None:
    data = _write(tmp_path / "m.mp4", "mp4v", [1, 2])
    with pytest.raises(CorruptMediaError, match="cannot open video"):
        hash_video(data[: len(data) // 2], path="m.mp4")


@pytest.mark.parametrize(
    "data", [b"", b"not a video at all" * 50,
             np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes()])
def test_junk(data: bytes) -> None:
    with pytest.raises(MediaError):
        hash_video(data, path="j.mp4")


def test_pixel_limit(avi: bytes) -> None:
    with pytest.raises(PixelLimitError):
        hash_video(avi, path="a.avi", pixel_limit=W * H - 1)


def test_collapse_rule() -> None:
    a, b, c = "00" * 32, "00" * 31 + "0f", "ff" * 32  # b is 4 bits from a
    frames = [FrameHash(0, a, 90), FrameHash(1, b, 90), FrameHash(2, c, 90), FrameHash(3, a, 90)]
    assert [f.t for f in collapse(frames, 4)] == [0, 2, 3]
    assert [f.t for f in collapse(frames, 3)] == [0, 1, 2, 3]
    assert collapse([], 4) == ()


@pytest.mark.parametrize(
    ("fourcc", "suffix", "media_type"),
    [("VP80", ".webm", "video/webm"), ("XVID", ".mkv", "video/x-matroska"),
     ("mp4v", ".mov", "video/quicktime"), ("FLV1", ".flv", "video/x-flv")],
)
def test_other_containers_from_memory(tmp_path: Path, fourcc: str, suffix: str,
                                      media_type: str) -> None:
    from hashing.sniff import sniff

    data = _write(tmp_path / f"c{suffix}", fourcc, [4, 5])
    assert sniff(data[:512]).media_type == media_type
    res = hash_video(data, path=f"c{suffix}")
    assert len(res.frames) == 2 and res.duration == pytest.approx(2.0)


def test_build_without_stream_support_gives_reason(monkeypatch: pytest.MonkeyPatch,
                                                   avi: bytes) -> None:
    import hashing.algorithms.video as video

    monkeypatch.setattr(video, "_can_read_streams", lambda: False)
    with pytest.raises(MediaError, match="cannot decode video from memory"):
        hash_video(avi, path="a.avi")
