"""Synthetic videos written with OpenCV's VideoWriter, and re-encoded, trimmed and resized variants.

A video is a sequence of scenes; each scene is a slow pan across one synthetic photo, so
consecutive seconds differ a little and scene cuts differ a lot, as in real footage. A known
image can be inserted for a time range (a video that contains frames of a known picture).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from synthetic_fixtures.photos import make_photo

CODEC_FOR_EXT = {".mp4": "mp4v", ".avi": "MJPG"}
SCENE_SECONDS = 2.0


class VideoWriteError(OSError):
    """OpenCV could not open a writer for this path and codec."""

    def __init__(self, path: str, codec: str) -> None:
        super().__init__(f"{path}: cannot open a VideoWriter with codec {codec!r}")
        self.path = path
        self.codec = codec


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """One written video: `frames` is the number of frames written."""

    path: str
    codec: str
    fps: float
    frames: int
    width: int
    height: int
    original: str | None = None  # for variants: the source video
    edit: str | None = None  # for variants: reencode | trim | resize

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def write_video(path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float,
                codec: str | None = None) -> int:
    """Write RGB uint8 frames (all the size of the first) to `path`; returns the frame count."""
    path = str(path)
    codec = codec or CODEC_FOR_EXT.get(Path(path).suffix.lower(), "mp4v")
    writer: cv2.VideoWriter | None = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*codec), fps, (w, h))
                if not writer.isOpened():
                    raise VideoWriteError(path, codec)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            count += 1
    finally:
        if writer is not None:
            writer.release()
    return count


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Letterbox `image` into a black width x height frame, keeping its aspect ratio."""
    h, w = image.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    frame = np.zeros((height, width, 3), np.uint8)
    y, x = (height - nh) // 2, (width - nw) // 2
    frame[y:y + nh, x:x + nw] = small
    return frame


def scene_frames(rng: np.random.Generator, seconds: float, fps: float, size: tuple[int, int],
                 insert: np.ndarray | None = None,
                 insert_at: tuple[float, float] = (0.0, 0.0)) -> Iterator[np.ndarray]:
    """Frames of pans over synthetic photos; `insert` is shown, letterboxed, during `insert_at`."""
    width, height = size
    total = max(1, round(seconds * fps))
    per_scene = max(1, round(SCENE_SECONDS * fps))
    fitted = _fit(insert, width, height) if insert is not None else None
    big: np.ndarray | None = None
    start = end = (0, 0)
    for k in range(total):
        t = k / fps
        if fitted is not None and insert_at[0] <= t < insert_at[1]:
            yield fitted
            continue
        if k % per_scene == 0 or big is None:
            bw, bh = int(width * 1.5), int(height * 1.5)
            big = make_photo(rng, bw, bh)
            start = (int(rng.integers(0, bw - width + 1)), int(rng.integers(0, bh - height + 1)))
            end = (int(rng.integers(0, bw - width + 1)), int(rng.integers(0, bh - height + 1)))
        a = (k % per_scene) / per_scene
        x = round(start[0] + (end[0] - start[0]) * a)
        y = round(start[1] + (end[1] - start[1]) * a)
        yield np.ascontiguousarray(big[y:y + height, x:x + width])


def make_video(rng: np.random.Generator, path: str | os.PathLike[str], seconds: float,
               fps: float, size: tuple[int, int], codec: str | None = None,
               insert: np.ndarray | None = None,
               insert_at: tuple[float, float] = (0.0, 0.0)) -> VideoInfo:
    """Write a synthetic video of `seconds` at `fps` and `size` (width, height)."""
    path = str(path)
    codec = codec or CODEC_FOR_EXT.get(Path(path).suffix.lower(), "mp4v")
    n = write_video(path, scene_frames(rng, seconds, fps, size, insert, insert_at), fps, codec)
    return VideoInfo(path, codec, fps, n, size[0], size[1])


def read_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """Decode every frame of a video as RGB uint8."""
    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def write_video_variants(src: VideoInfo, out_dir: str | os.PathLike[str]) -> list[VideoInfo]:
    """Re-encoded (other codec), trimmed (first second dropped) and half-size copies of `src`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(src.path).stem
    variants: list[VideoInfo] = []
    other_ext = ".avi" if src.codec == "mp4v" else ".mp4"
    p = out / f"{stem}_reencode{other_ext}"
    codec = CODEC_FOR_EXT[other_ext]
    n = write_video(p, read_frames(src.path), src.fps, codec)
    variants.append(VideoInfo(str(p), codec, src.fps, n, src.width, src.height, src.path, "reencode"))
    ext = Path(src.path).suffix
    p = out / f"{stem}_trim{ext}"
    skip = round(src.fps)
    n = write_video(p, (f for i, f in enumerate(read_frames(src.path)) if i >= skip), src.fps, src.codec)
    variants.append(VideoInfo(str(p), src.codec, src.fps, n, src.width, src.height, src.path, "trim"))
    p = out / f"{stem}_resize{ext}"
    w, h = max(2, src.width // 2 // 2 * 2), max(2, src.height // 2 // 2 * 2)
    frames = (cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in read_frames(src.path))
    n = write_video(p, frames, src.fps, src.codec)
    variants.append(VideoInfo(str(p), src.codec, src.fps, n, w, h, src.path, "resize"))
    return variants
