"""Tests of the synthetic video writer and its variants."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthetic_fixtures.photos import make_photo
from synthetic_fixtures.videos import make_video, read_frames, write_video_variants


@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_video_opens_with_expected_frames_and_variants(tmp_path: Path, ext: str) -> None:
    info = make_video(np.random.default_rng(2), tmp_path / f"v{ext}", seconds=3, fps=5, size=(96, 64))
    cap = cv2.VideoCapture(info.path)
    assert cap.isOpened()
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 96
    cap.release()
    frames = list(read_frames(info.path))
    assert len(frames) == info.frames == 15
    # Consecutive frames within a scene differ a little; scene cuts (every 2 s) differ a lot.
    diffs = [np.abs(frames[i + 1].astype(int) - frames[i].astype(int)).mean() for i in range(14)]
    assert diffs[9] > 2 * np.median(diffs)
    by_edit = {v.edit: v for v in write_video_variants(info, tmp_path / "variants")}
    assert set(by_edit) == {"reencode", "trim", "resize"}
    assert len(list(read_frames(by_edit["trim"].path))) == 10
    assert len(list(read_frames(by_edit["reencode"].path))) == 15
    assert next(read_frames(by_edit["resize"].path)).shape == (32, 48, 3)
    assert Path(by_edit["reencode"].path).suffix != ext


def test_inserted_image_appears_in_its_time_range(tmp_path: Path) -> None:
    still = make_photo(np.random.default_rng(4), 96, 64)
    info = make_video(np.random.default_rng(5), tmp_path / "v.avi", seconds=3, fps=4, size=(96, 64),
                      insert=still, insert_at=(1.0, 2.0))
    frames = list(read_frames(info.path))
    err = [np.abs(f.astype(int) - still.astype(int)).mean() for f in frames]
    assert max(err[4:8]) < 0.5 * min(err[:4] + err[8:])


def test_videos_are_deterministic(tmp_path: Path) -> None:
    digests = []
    for name in ("a.mp4", "b.mp4"):
        make_video(np.random.default_rng(9), tmp_path / name, seconds=1, fps=4, size=(64, 48))
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
