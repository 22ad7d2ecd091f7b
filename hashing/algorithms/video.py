"""Video to a short list of per-second PDQ frame hashes, in the manner of Meta's vPDQ.

Frames are sampled at `fps` (default 1 per second) by presentation time, each sampled frame
gets a PDQ hash and quality, and a frame within `collapse_distance` bits of the last kept
frame is dropped, so a static scene costs one hash instead of one per second.

Decoding is OpenCV's FFmpeg backend reading from a Python stream (`io.BufferedIOBase`), so
archive members are hashed straight from memory and files on disk from a read-only handle;
no evidence byte is ever written to a temporary file. A stream that stops early yields the
frames that decoded plus an error note.

Memory: MP4/MOV sample tables are checked before FFmpeg opens them (`hashing.mp4_tables`), and
for every container the whole decode runs under `max_decode_bytes` of new memory
(`hashing.memory_limit`): a patched header that makes a demuxer ask for more fails there and
the file is an error row.
"""

from __future__ import annotations

import importlib
import io
from dataclasses import dataclass

import cv2
import numpy as np

from hashing.errors import (
    CorruptMediaError,
    DecodeMemoryError,
    PixelLimitError,
    SampleTableError,
    UnsupportedMediaError,
)
from hashing.memory_limit import memory_limit
from hashing.mp4_tables import BadSampleTable, check_sample_tables, looks_like_mp4
from hashing.types import FrameHash

DEFAULT_FPS = 1.0
# vPDQ keeps every sampled frame and dedupes identical hashes when matching; collapsing
# neighbours a few bits apart (re-encoding noise on a still scene) shrinks the record without
# losing a distinct scene, since the PDQ match radius is 31.
DEFAULT_COLLAPSE_DISTANCE = 4


@dataclass(frozen=True, slots=True)
class VideoResult:
    """Sampled and collapsed frame hashes; `error` notes a stream that ended early."""

    frames: tuple[FrameHash, ...]
    duration: float | None
    width: int
    height: int
    error: str | None = None


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def collapse(frames: list[FrameHash], max_distance: int) -> tuple[FrameHash, ...]:
    """Drop each frame within `max_distance` bits of the last frame kept (keeps the first)."""
    kept: list[FrameHash] = []
    for f in frames:
        if not kept or _distance(kept[-1].pdq, f.pdq) > max_distance:
            kept.append(f)
    return tuple(kept)


def _can_read_streams() -> bool:
    registry = getattr(cv2, "videoio_registry", None)
    finder = getattr(registry, "getStreamBufferedBackends", None)
    return finder is not None and cv2.CAP_FFMPEG in finder()


def _open(stream: io.BufferedIOBase, path: str) -> cv2.VideoCapture:
    if not _can_read_streams():
        # older OpenCV builds read only from file names; evidence is never copied to disk
        raise UnsupportedMediaError(
            path, "this OpenCV build cannot decode video from memory (needs >= 4.10 with FFmpeg)"
        )
    try:
        # the stubs name IStreamReader; at run time this build wants an io.BufferedIOBase
        cap = cv2.VideoCapture(stream, cv2.CAP_FFMPEG, [])  # type: ignore[call-overload]
    except (cv2.error, TypeError) as exc:
        raise UnsupportedMediaError(path, f"cannot read video stream: {exc}") from None
    if not cap.isOpened():
        raise CorruptMediaError(path, "cannot open video: container unreadable or truncated")
    return cap


def _check_tables(stream: io.BufferedIOBase, path: str) -> None:
    """Refuse an MP4/MOV whose sample tables claim more than the file holds, before FFmpeg
    allocates memory from those claims (`hashing.mp4_tables`). The stream is read from its
    start and left there."""
    stream.seek(0)
    head = stream.read(16)
    size = stream.seek(0, io.SEEK_END)
    try:
        if looks_like_mp4(head):
            check_sample_tables(stream, size)
    except BadSampleTable as exc:
        raise SampleTableError(path, f"video sample tables lie: {exc.reason}; not decoded") from None
    finally:
        stream.seek(0)


def hash_video(
    source: bytes | io.BufferedIOBase,
    *,
    path: str,
    fps: float = DEFAULT_FPS,
    collapse_distance: int = DEFAULT_COLLAPSE_DISTANCE,
    pixel_limit: int | None = None,
    max_decode_bytes: int | None = None,
) -> VideoResult:
    """PDQ-hash a video held in memory or readable from a seekable stream, adding at most
    `max_decode_bytes` of memory while it decodes (None: no cap)."""
    importlib.import_module("hashing.algorithms.pdq")  # loaded before the cap, not under it
    if fps <= 0:
        raise ValueError("fps must be positive")
    # OpenCV keeps a bare pointer to the stream, not a reference: it must outlive `cap`
    # (release() still calls into it), so it is held here until the capture is released.
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    _check_tables(stream, path)
    if max_decode_bytes is None:
        return _decode(stream, path, fps, collapse_distance, pixel_limit, None)
    with memory_limit(max_decode_bytes) as capped:
        try:
            return _decode(stream, path, fps, collapse_distance, pixel_limit, max_decode_bytes)
        except (MemoryError, cv2.error) as exc:
            if not capped:
                raise
            raise DecodeMemoryError(path, (
                f"video decode memory limit: decoding needed more than {max_decode_bytes >> 20}"
                f" MiB ({type(exc).__name__}); not decoded")) from None
        except CorruptMediaError as exc:
            if not capped:
                raise
            # a decoder whose allocation failed says only that it failed: name the cap too
            raise CorruptMediaError(path, f"{exc.reason} (decoded under the "
                                    f"{max_decode_bytes >> 20} MiB decode memory limit)") from None


# bytes per pixel of one sampled frame held at once: FFmpeg's YUV frame (<= 3), OpenCV's BGR
# copy (3) and the RGB one PDQ hashes (3); measured 1.85 GiB for one 12000 x 12000 frame
FRAME_BYTES_PER_PIXEL = 9


def frame_decode_bytes(width: int, height: int) -> int:
    """Memory one decoded frame of `width` x `height` costs (`FRAME_BYTES_PER_PIXEL`)."""
    return width * height * FRAME_BYTES_PER_PIXEL


def _decode(stream: io.BufferedIOBase, path: str, fps: float, collapse_distance: int,
            pixel_limit: int | None, max_decode_bytes: int | None) -> VideoResult:
    from hashing.algorithms.pdq import pdq_from_rgb

    cap = _open(stream, path)
    try:
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if pixel_limit is not None and width * height > pixel_limit:
            raise PixelLimitError(
                path, f"exceeds pixel limit: frames of {width}x{height} > {pixel_limit}"
            )
        if max_decode_bytes is not None and frame_decode_bytes(width, height) > max_decode_bytes:
            need = frame_decode_bytes(width, height)
            raise DecodeMemoryError(path, (
                f"video decode memory limit: frames of {width}x{height} need ~{need >> 20} MiB "
                f"to decode, over max_decode_bytes ({max_decode_bytes >> 20} MiB); not decoded"))
        native_fps = cap.get(cv2.CAP_PROP_FPS)
        declared = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        interval = 1.0 / fps
        next_t = 0.0
        sampled: list[FrameHash] = []
        decoded = 0
        last_sampled = 0
        last_t = 0.0
        while cap.grab():
            decoded += 1
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if t <= 0.0 and decoded > 1 and native_fps > 0:
                t = (decoded - 1) / native_fps  # containers without timestamps
            last_t = t
            # a small tolerance so 29.97 fps material samples the frame nearest each second
            if t + 1e-6 < next_t:
                continue
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                break
            rgb = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            res = pdq_from_rgb(rgb)
            sampled.append(FrameHash(t, res.hash, res.quality))
            last_sampled = decoded
            while next_t <= t + 1e-6:
                next_t += interval
    finally:
        cap.release()
        del stream
    if not sampled:
        raise CorruptMediaError(path, "no video frame could be decoded")
    duration: float | None
    if native_fps > 0 and declared > 0:
        duration = declared / native_fps
    else:
        duration = last_t + (1.0 / native_fps if native_fps > 0 else 0.0)
    error = None
    # containers without an index report an estimated count, so one frame short is noise
    if declared > 0 and decoded < declared - 1:
        error = f"truncated video: decoded {decoded} of {int(declared)} frames"
        if last_sampled == decoded and len(sampled) > 1:
            # the final frame of a cut stream is usually decoded from partial data
            sampled.pop()
    return VideoResult(
        frames=collapse(sampled, collapse_distance),
        duration=round(duration, 3),
        width=width,
        height=height,
        error=error,
    )
