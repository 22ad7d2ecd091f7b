"""`triage hash` through click's test runner: output parsed as JSON/CSV, exit codes, flags."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from hashing.output import neutralise_cell, write_records
from hashing.types import HashRecord


def _png(path: Path, seed: int, exif_orientation: int | None = None) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    arr[10:30, 5:25] = 255
    im = Image.fromarray(arr)
    if exif_orientation is None:
        im.save(path, format="PNG")
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        im.save(path, format="JPEG", exif=exif.tobytes())


@pytest.fixture
def case(tmp_path: Path) -> Path:
    root = tmp_path / "case"
    (root / "sub").mkdir(parents=True)
    _png(root / "b.png", 1)
    _png(root / "sub" / "a.png", 2)
    _png(root / "rot.jpg", 3, exif_orientation=6)
    (root / "cut.jpg").write_bytes((root / "rot.jpg").read_bytes()[:200])
    (root / "notes.txt").write_text("plain text\n")
    (root / "link.png").symlink_to(root / "b.png")
    return root


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["hash", *args], catch_exceptions=False)
    return result.exit_code, result.output


def _jsonl(*args: str) -> list[dict]:
    code, out = _run(*args, "--workers", "1")
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


def test_folder_jsonl(case: Path) -> None:
    rows = _jsonl(str(case))
    names = [os.path.relpath(r["path"], case) for r in rows]
    assert names == ["b.png", "cut.jpg", "link.png", "notes.txt", "rot.jpg", "sub/a.png"]
    assert all(os.path.isabs(r["path"]) for r in rows)
    by = dict(zip(names, rows, strict=True))
    b = by["b.png"]
    assert b["status"] == "hashed" and b["media_type"] == "image/png"
    assert (b["width"], b["height"]) == (56, 40)
    assert len(b["pdq"]) == 64 and 0 <= b["pdq_quality"] <= 100
    assert b["sha256"] == hashlib.sha256((case / "b.png").read_bytes()).hexdigest()
    assert "phash" not in b  # default algorithms: pdq, md5, sha1, sha256
    assert by["cut.jpg"]["status"] == "error" and by["cut.jpg"]["error"]
    assert by["cut.jpg"]["md5"] == hashlib.md5((case / "cut.jpg").read_bytes()).hexdigest()
    assert by["link.png"]["status"] == "skipped" and by["link.png"]["kind"] == "symlink"
    assert by["notes.txt"]["status"] == "hashed" and by["notes.txt"].get("pdq") is None
    assert by["rot.jpg"]["exif_orientation"] == 6 and "pdq_exif" not in by["rot.jpg"]


def test_algo_selection_and_flags(case: Path) -> None:
    rows = _jsonl(str(case / "rot.jpg"), "--algo", "phash,dhash,ahash,whash,pdq,md5",
                  "--dihedral", "--exif-transpose", "--decode", "exact")
    (r,) = rows
    assert [k for k in ("pdq", "phash", "dhash", "ahash", "whash", "md5") if k in r] == [
        "pdq", "phash", "dhash", "ahash", "whash", "md5"]
    assert "sha1" not in r and len(r["pdq_dihedral"]) == 8
    assert len(r["pdq_exif"]) == 64 and len(r["phash_exif"]) == 16


def test_several_paths_keep_argument_order(case: Path) -> None:
    rows = _jsonl(str(case / "sub"), str(case / "b.png"))
    assert [os.path.basename(r["path"]) for r in rows] == ["a.png", "b.png"]


def test_csv(case: Path) -> None:
    code, out = _run(str(case), "--format", "csv", "--workers", "1", "--algo", "pdq,md5")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 6 and {"path", "status", "pdq", "md5", "pdq_quality"} <= set(rows[0])
    jsonl = {r["path"]: r for r in _jsonl(str(case), "--algo", "pdq,md5")}
    for row in rows:
        assert row["md5"] == (jsonl[row["path"]].get("md5") or "")
        assert row["status"] == jsonl[row["path"]]["status"]


def test_text(case: Path) -> None:
    code, out = _run(str(case), "--format", "text", "--workers", "1")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 6 and lines[0].startswith("hashed ") and "pdq=" in lines[0]
    assert any(line.startswith("error ") for line in lines)


@pytest.mark.parametrize(
    "args",
    [["--algo", "pdq,sha512"], ["--algo", ","], ["--decode", "slow"], ["--format", "xml"],
     ["--workers", "0"], ["--pixel-limit", "0"]],
)
def test_bad_arguments_exit_2(case: Path, args: list[str]) -> None:
    code, _ = _run(str(case), *args)
    assert code == 2


def test_missing_path_exit_2(tmp_path: Path) -> None:
    code, out = _run(str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in out


def test_pixel_limit_flag(case: Path) -> None:
    (r,) = _jsonl(str(case / "b.png"), "--pixel-limit", "100")
    assert r["status"] == "error" and "pixel limit" in r["error"]


def test_csv_formula_injection_neutralised() -> None:
    assert neutralise_cell("=1+1") == "'=1+1"
    for bad in ("+x", "-x", "@x", "\tx", "\rx"):
        assert neutralise_cell(bad) == "'" + bad
    assert neutralise_cell("/evidence/a.jpg") == "/evidence/a.jpg"
    rec = HashRecord(path='=HYPERLINK("http://x","y")', status="error", error="-boom",
                     hashes={"md5": "ab" * 16})
    out = io.StringIO()
    list(write_records([rec], "csv", out, ("md5",)))
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["path"].startswith("'=") and row["error"] == "'-boom" and row["md5"] == "ab" * 16


def test_text_keeps_one_line_per_record() -> None:
    rec = HashRecord(path="/e/two\nlines.jpg", status="hashed", hashes={"md5": "00" * 16})
    out = io.StringIO()
    list(write_records([rec], "text", out, ("md5",)))
    assert out.getvalue().count("\n") == 1


def test_max_media_bytes_flag(case: Path) -> None:
    (r,) = _jsonl(str(case / "b.png"), "--max-media-bytes", "10")
    assert r["status"] == "error" and "max_media_bytes" in r["error"]
    assert r["md5"] == hashlib.md5((case / "b.png").read_bytes()).hexdigest()
