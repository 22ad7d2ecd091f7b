"""Tests of `triage fixtures make`: same seed, same tree; never writes into someone's folder."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from click.testing import CliRunner

from cli.fixtures_cmd import fixtures


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            out[rel] = os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


ARGS = ["--quick", "--images", "4", "--videos", "1", "--seed", "3",
        "--kind", "photos", "--kind", "lists", "--kind", "videos"]


def test_make_is_deterministic_and_describes_what_it_wrote(tmp_path: Path) -> None:
    runner = CliRunner()
    for sub in ("a", "b"):
        result = runner.invoke(fixtures, ["make", str(tmp_path / sub), *ARGS])
        assert result.exit_code == 0, result.output
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b
    summary = json.loads((tmp_path / "a" / "fixtures.json").read_text())
    assert summary["counts"]["photos"] == 4
    assert summary["counts"]["videos"] == 4  # one video and its three variants
    photos = json.loads((tmp_path / "a" / "photos.json").read_text())
    assert all((tmp_path / "a" / p["path"]).is_file() for p in photos)
    lists = json.loads((tmp_path / "a" / "lists.json").read_text())
    assert {row["format"] for row in lists} == {"csv", "hashlist", "pdq", "vics", "nsrl"}
    assert not (tmp_path / "a" / "edits").exists()  # only the kinds asked for


def test_make_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "mine.txt").write_text("keep")
    result = CliRunner().invoke(fixtures, ["make", str(tmp_path), "--quick", "--kind", "photos"])
    assert result.exit_code != 0
    assert "not empty" in result.output
    assert (tmp_path / "photos" / "mine.txt").read_text() == "keep"
