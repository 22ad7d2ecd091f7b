"""The resume key: a pinned, versioned digest of the hashing options and the tool version; a
rescan with nothing changed hashes nothing, and a changed hashing option hashes everything again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hashing.hasher import HashOptions
from index.banks import BankStore
from synthetic_fixtures.photos import make_photo
from triage.pipeline import ScanConfig, run_scan
from triage.resume import KEY_VERSION, resume_key

# sha256 of the canonical JSON of the default options under tool version "0.1.0": a change
# here means every stored row of every case is hashed again, so it must be deliberate.
# (Changed by issue 16: the `variants` option, and dihedral hashes of the transformed pixels.)
PINNED = "v1:9b01347d1f947f441c52ef60e512dc449008a7fecea3bdb4385682b9bd696930"


def test_key_is_pinned_and_versioned() -> None:
    assert KEY_VERSION == 1
    assert resume_key(HashOptions(), "0.1.0") == PINNED
    assert resume_key(HashOptions(algorithms=("pdq", "md5", "sha1", "sha256")), "0.1.0") == PINNED


@pytest.mark.parametrize("change", [
    {"dihedral": True}, {"decode_mode": "exact"}, {"pixel_limit": 1000},
    {"exif_transpose": True}, {"video_fps": 2.0}, {"max_media_bytes": 4096}, {"max_frames": 5},
    {"max_decode_bytes": 1 << 20}, {"decode_seconds": 5.0},
    {"variants": True},
    {"algorithms": ("pdq", "md5")},
])
def test_every_option_changes_the_key(change: dict[str, object]) -> None:
    base = HashOptions()
    assert resume_key(replace(base, **change), "0.1.0") != resume_key(base, "0.1.0")  # type: ignore[arg-type]


def test_tool_version_changes_the_key() -> None:
    assert resume_key(HashOptions(), "0.1.1") != resume_key(HashOptions(), "0.1.0")


def test_scan_rehashes_on_an_option_change_only(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    rng = np.random.default_rng(4)
    for k in range(3):
        Image.fromarray(make_photo(rng, 64, 48)).save(ev / f"p{k}.png")
    (ev / "note.txt").write_bytes(b"not media")
    store = tmp_path / "store"
    BankStore(store).close()
    cfg = ScanConfig(evidence=(ev,), case_dir=tmp_path / "case", store_dir=store, workers=0,
                     inventory=True)
    assert run_scan(cfg).hash_calls == 4
    same = run_scan(cfg)
    assert (same.hash_calls, same.noop) == (0, True)
    exact = run_scan(replace(cfg, decode_mode="exact"))  # another way of hashing: all again
    assert exact.hash_calls == 4
    policy = tmp_path / "limits.toml"
    policy.write_text("[limits]\nmax_media_bytes = 100000000\n")
    assert run_scan(replace(cfg, decode_mode="exact", policy_path=policy)).hash_calls == 4
    assert run_scan(replace(cfg, decode_mode="exact", policy_path=policy)).hash_calls == 0
