"""The scan policy: registry defaults, TOML overrides, and typed errors for bad files; the
`[limits]` table reaching the walk and the hasher in a real scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hashing.decode import DEFAULT_PIXEL_LIMIT
from hashing.hasher import DEFAULT_MAX_MEDIA_BYTES
from hashing.registry import PDQ
from index.banks import BankStore
from triage.limits import WalkLimits
from triage.pipeline import ScanConfig, run_scan
from triage.policy import Policy, PolicyError, load_policy


def test_defaults_come_from_the_registry() -> None:
    p = load_policy(None)
    assert p.radius["pdq"] == PDQ.default_radius == 31
    assert p.min_quality == PDQ.quality_floor == 50
    assert (p.video_query_pct, p.video_bank_pct) == (80.0, 0.0)
    assert dict(p.tiers) == {"possible_new": 1, "near": 2, "exact": 3, "unmatched": 4}
    assert p.dihedral and p.cluster_enabled and p.cluster_radius == 31


def test_toml_overrides(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        "[match]\nradius = { pdq = 20 }\nmin_quality = 70\ndihedral = false\n"
        "[video]\nquery_frames_pct = 50\n[cluster]\nradius = 10\n[tiers]\nexact = 1\n"
        "possible_new = 3\n"
    )
    p = load_policy(f)
    assert p.radius["pdq"] == 20 and p.radius["phash"] == Policy().radius["phash"]
    assert p.min_quality == 70 and not p.dihedral and p.video_query_pct == 50.0
    assert p.cluster_radius == 10 and p.tiers["exact"] == 1 and p.tiers["possible_new"] == 3
    assert p.to_dict()["match"]["radius"]["pdq"] == 20


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[match]\nradius = { md5 = 3 }\n", "match.radius"),
        ("[match]\nmin_quality = 101\n", "match.min_quality"),
        ("[match]\ndihedral = 1\n", "match.dihedral"),
        ("[video]\nquery_frames_pct = -1\n", "video.query_frames_pct"),
        ("[tiers]\nbogus = 1\n", "tiers"),
        ("[colour]\nx = 1\n", ""),
        ("[limits]\npixel_limit = 0\n", "limits.pixel_limit"),
        ("[limits]\nmax_media_bytes = -5\n", "limits.max_media_bytes"),
        ("[limits]\nmax_archive_depth = -1\n", "limits.max_archive_depth"),
        ("[limits]\nmax_members = 1.5\n", "limits.max_members"),
        ("[limits]\nmax_dir_depth = true\n", "limits.max_dir_depth"),
        ("[limits]\nmax_expansion_ratio = 0\n", "limits.max_expansion_ratio"),
        ("[limits]\nmax_expansion_ratio = nan\n", "limits.max_expansion_ratio"),
        ("[limits]\nmax_expansion_ratio = \"big\"\n", "limits.max_expansion_ratio"),
        ("[limits]\nmax_member_bytes = 9223372036854775807\npixel_limt = 5\n", "limits"),
        ("limits = 3\n", "limits"),
        ("[match\n", ""),
    ],
)
def test_bad_policies_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(PolicyError) as err:
        load_policy(f)
    assert err.value.key == key and err.value.path == str(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.toml")


def test_limits_default_to_the_library_defaults() -> None:
    p = load_policy(None)
    assert (p.pixel_limit, p.max_media_bytes) == (DEFAULT_PIXEL_LIMIT, DEFAULT_MAX_MEDIA_BYTES)
    assert p.walk_limits == WalkLimits()
    assert p.to_dict()["limits"] == {"pixel_limit": DEFAULT_PIXEL_LIMIT,
                                     "max_media_bytes": DEFAULT_MAX_MEDIA_BYTES,
                                     "max_frames": 1000, "max_decode_bytes": 640 << 20,
                                     "decode_seconds": 60.0, "max_archive_depth": 3, "max_member_bytes": 256 << 20,
                                     "max_archive_total_bytes": 4 << 30,
                                     "max_expansion_ratio": 200.0, "max_members": 100_000,
                                     "max_dir_depth": 256, "max_image_entries": 10_000_000}


def test_limits_override(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text("[limits]\npixel_limit = 1000\nmax_media_bytes = 4096\nmax_archive_depth = 0\n"
                 "max_member_bytes = 10\nmax_archive_total_bytes = 20\n"
                 "max_expansion_ratio = 3\nmax_members = 7\nmax_dir_depth = 2\n")
    p = load_policy(f)
    assert (p.pixel_limit, p.max_media_bytes) == (1000, 4096)
    assert p.walk_limits == WalkLimits(max_archive_depth=0, max_member_bytes=10,
                                       max_archive_total_bytes=20, max_expansion_ratio=3.0,
                                       max_members=7, max_dir_depth=2)
    assert isinstance(p.walk_limits.max_expansion_ratio, float)
    partial = tmp_path / "q.toml"
    partial.write_text("[limits]\nmax_members = 9\n")
    assert load_policy(partial).walk_limits == WalkLimits(max_members=9)


def _rows(case: Path) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in (case / "manifest.jsonl").read_text().splitlines()]
    return {Path(r["path"]).name: r for r in rows}


def test_scan_obeys_the_policy_limits(tmp_path: Path) -> None:
    """A lowered pixel limit turns a 64x48 image into an error row naming the limit, and the
    image is hashed again (the media limits are part of the resume key); a lowered directory
    depth stops the walk."""
    evidence = tmp_path / "evidence"
    (evidence / "a" / "b").mkdir(parents=True)
    pixels = np.random.default_rng(4).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(evidence / "noise.png")
    (evidence / "a" / "b" / "deep.txt").write_text("synthetic")
    BankStore(tmp_path / "store").close()
    case = tmp_path / "case"

    def scan(policy: Path | None) -> int:
        return run_scan(ScanConfig(evidence=(evidence,), case_dir=case,
                                   store_dir=tmp_path / "store", workers=0,
                                   policy_path=policy, inventory=True)).hash_calls

    assert scan(None) == 2
    before = _rows(case)
    assert before["noise.png"]["status"] == "hashed" and "deep.txt" in before
    low = tmp_path / "low.toml"
    low.write_text("[limits]\npixel_limit = 1000\nmax_dir_depth = 1\n")
    assert scan(low) == 1  # the image again; deep.txt is no longer reached
    after = _rows(case)
    assert after["noise.png"]["status"] == "error"
    assert "pixel limit" in str(after["noise.png"]["error"])
    assert "3072" in str(after["noise.png"]["error"])  # 64 x 48 pixels
    assert "deep.txt" not in after
    assert after["b"]["status"] == "error" and "depth limit 1" in str(after["b"]["reason"])
