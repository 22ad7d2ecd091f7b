"""Every frame and page: animated GIF/WebP/APNG frames and TIFF pages are hashed, bounded by
the frame limit, and the limit (or a broken later frame) puts the file on the attention list."""

from __future__ import annotations

import io
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from hashing.algorithms.pdq import pdq_from_rgb
from hashing.decode import FrameLimitError, iter_frames
from hashing.hasher import HashOptions, hash_bytes
from hashing.types import FrameHash, HashRecord
from synthetic_fixtures.hostile import gif_of_many_frames
from synthetic_fixtures.photos import make_photo

RNG = np.random.default_rng(5)
PHOTOS = [make_photo(RNG, 96, 72) for _ in range(3)]


def animation(fmt: str, **kw: object) -> bytes:
    frames = [Image.fromarray(p) for p in PHOTOS]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], **kw)
    return buf.getvalue()


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


@pytest.mark.parametrize(("fmt", "kw", "exact"), [
    ("GIF", {"duration": 100, "loop": 0}, False),  # palette quantised
    ("WEBP", {"duration": 100, "lossless": True}, True),
    ("PNG", {"duration": 100}, True),  # APNG
    ("TIFF", {}, True),  # pages
])
def test_every_frame_is_hashed(fmt: str, kw: dict[str, object], exact: bool) -> None:
    rec = hash_bytes(animation(fmt, **kw), f"a.{fmt.lower()}", HashOptions())
    assert rec.status == "hashed" and rec.unexamined is None
    frames = rec.pdq_frames
    assert frames is not None and [f.frame for f in frames] == [0, 1, 2]
    for f, photo in zip(frames, PHOTOS, strict=True):
        expected = pdq_from_rgb(photo).hash
        if exact:
            assert f.pdq == expected
            assert f.md5 is not None and len(f.md5) == 32
        else:
            assert distance(f.pdq, expected) <= 24
    if fmt != "TIFF":
        assert [f.t for f in frames] == [0.0, 0.1, 0.2]
    assert rec.hashes["pdq"] == frames[0].pdq  # the first frame is the image itself


def test_a_still_image_has_no_frame_list() -> None:
    buf = io.BytesIO()
    Image.fromarray(PHOTOS[0]).save(buf, "PNG")
    assert hash_bytes(buf.getvalue(), "s.png", HashOptions()).pdq_frames is None


def test_frame_records_round_trip_through_the_manifest() -> None:
    rec = hash_bytes(animation("TIFF"), "p.tiff", HashOptions(max_frames=2))
    back = HashRecord.from_dict(rec.to_dict(), ("pdq", "md5", "sha1"))
    assert back.pdq_frames == rec.pdq_frames and back.unexamined == rec.unexamined
    assert FrameHash.from_dict(FrameHash(1.5, "00" * 32, 80).to_dict()).frame is None


def test_frame_limit_is_configurable_and_noted() -> None:
    rec = hash_bytes(animation("TIFF"), "p.tiff", HashOptions(max_frames=2))
    assert rec.status == "hashed"
    assert [f.frame for f in rec.pdq_frames or ()] == [0, 1]
    assert rec.unexamined == "frame limit 2 reached: frames after 2 were not hashed"


def test_a_gif_of_100000_frames_costs_only_the_limit() -> None:
    data = gif_of_many_frames(100_000)
    tracemalloc.start()
    t0 = time.perf_counter()
    rec = hash_bytes(data, "many.gif", HashOptions(max_frames=200))
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert rec.status == "hashed" and len(rec.pdq_frames or ()) == 200
    assert rec.unexamined == "frame limit 200 reached: frames after 200 were not hashed"
    assert elapsed < 30 and peak < 64 * 1024 * 1024


def test_iter_frames_raises_the_typed_limit_after_the_frames() -> None:
    got = []
    with pytest.raises(FrameLimitError):
        for f in iter_frames(animation("PNG", duration=50), path="a.png", max_frames=1):
            got.append(f.index)
    assert got == [0]


def test_a_broken_later_page_keeps_the_good_pages_and_says_so() -> None:
    data = animation("TIFF")
    # cut inside the last page's strip: pages 1 and 2 still decode
    rec = hash_bytes(data[: len(data) - len(data) // 6], "cut.tiff", HashOptions())
    assert rec.status == "hashed" and [f.frame for f in rec.pdq_frames or ()] == [0, 1]
    assert (rec.unexamined or "").startswith("frame 3: truncated image data")
