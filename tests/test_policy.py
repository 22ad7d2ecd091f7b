"""The scan policy: registry defaults, TOML overrides, and typed errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from hashing.registry import PDQ
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
