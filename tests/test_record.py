"""The hash record: one shape for `triage hash` and the scan manifest, lossless for odd names."""

from __future__ import annotations

import json
import os

from hashing.types import FrameHash, HashRecord


def test_flat_keys_and_round_trip() -> None:
    rec = HashRecord(
        path="/e/a.jpg", status="hashed", media_type="image/jpeg", width=10, height=20,
        hashes={"pdq": "ab" * 32, "md5": "cd" * 16}, pdq_quality=87,
        pdq_dihedral=tuple(["ab" * 32] * 8),
    )
    d = json.loads(json.dumps(rec.to_dict()))
    assert d["pdq"] == "ab" * 32 and d["md5"] == "cd" * 16 and d["pdq_quality"] == 87
    assert d["error"] is None and len(d["pdq_dihedral"]) == 8
    assert HashRecord.from_dict(d, ("pdq", "md5")) == rec


def test_non_utf8_name_is_lossless() -> None:
    raw = b"/e/caf\xe9\n=1.jpg"
    rec = HashRecord(path=os.fsdecode(raw), status="error", error="truncated")
    d = json.loads(json.dumps(rec.to_dict()))
    assert bytes.fromhex(d["path_bytes_hex"]) == raw
    assert os.fsencode(HashRecord.from_dict(d, ()).path) == raw


def test_video_frames() -> None:
    rec = HashRecord(path="v.mp4", status="hashed", pdq_frames=(FrameHash(1.0, "00" * 32, 90),),
                     duration=3.5)
    d = rec.to_dict()
    assert d["pdq_frames"] == [{"t": 1.0, "pdq": "00" * 32, "quality": 90}]
    assert HashRecord.from_dict(d, ()) == rec
