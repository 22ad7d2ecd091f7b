"""`triage bank ...` end to end through click: exit codes, stderr listings, JSON shapes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli

MD5 = [hashlib.md5(bytes([i])).hexdigest() for i in range(5)]
PDQ = [hashlib.sha256(bytes([i])).hexdigest() for i in range(5)]


def csv_list(n: int, bad_line: int) -> str:
    rows = ["id,md5,pdq,quality,category,series"]
    rows += [f"m{i},{MD5[i]},{PDQ[i]},{50 + i},cat{i % 2},s{i}" for i in range(n)]
    rows.insert(bad_line - 1, "bad,nothex,,,,")
    return "\n".join(rows) + "\n"


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = str(tmp_path / "store")

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, ["bank", *args, "--store", store])
        return result.exit_code, result.stdout, result.stderr

    return invoke


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_rejected_import_exits_2_lists_lines_and_writes_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "l.csv", csv_list(3, bad_line=2))
    report = tmp_path / "r.json"
    code, out, err = run("import", path, "--bank", "b1", "--report", str(report))
    assert code == 2
    assert f"{path}:2: md5: not hexadecimal" in err and "nothing imported" in err
    assert json.loads(report.read_text())["rejected"][0]["line"] == 2
    code, out, _ = run("list", "--format", "json")
    assert (code, json.loads(out)) == (0, [])


def test_import_list_show_export_retract_disable(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "l.csv", csv_list(3, bad_line=2))
    code, out, err = run(
        "import", path, "--bank", "b1", "--skip-invalid", "--source", "hotline", "--version", "3"
    )
    assert code == 0 and "6 added" in out and ":2: md5: not hexadecimal" in err
    code, out, _ = run("list", "--format", "json")
    assert json.loads(out) == [
        {
            "name": "b1",
            "entries": 6,
            "algorithms": ["md5", "pdq"],
            "enabled": True,
            "known_good": False,
            "source": "hotline",
            "version": "3",
        }
    ]
    code, out, _ = run("show", "b1", "--format", "json")
    assert json.loads(out)["per_algorithm"] == {"md5": 3, "pdq": 3}
    code, out, _ = run("export", "b1", "--format", "pdq")
    assert out.splitlines() == [
        f"{PDQ[i]},{50 + i}" for i in sorted(range(3), key=lambda i: f"m{i}")
    ]
    code, out, err = run("retract", "b1", "--hash", MD5[0], "--hash", "0" * 32, "--reason", "x")
    assert code == 1 and "retracted 1 entries" in out and "0" * 32 in err
    retract_file = write(tmp_path, "r.txt", f"# bad\n{PDQ[0]}\n")
    code, out, _ = run("retract", "b1", "--file", retract_file)
    assert code == 0 and "retracted 1 entries" in out
    code, out, _ = run("disable", "b1")
    assert code == 0 and "disabled" in out
    code, out, _ = run("rebuild")
    assert code == 0 and out.splitlines()[0].startswith("pdq\t0 rows")
    code, out, _ = run("enable", "b1")
    code, out, _ = run("rebuild")
    assert out.splitlines()[0].startswith("pdq\t2 rows")


def test_usage_errors(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("show", "nope")
    assert code == 1 and "no bank named 'nope'" in err
    code, _, err = run("retract", "nope")
    assert code == 2 and "--hash H" in err
    path = write(tmp_path, "h.txt", PDQ[0] + "\n")
    code, _, err = run("import", path, "--bank", "b")
    assert code == 2 and "give --algo" in err
    code, out, _ = run("import", path, "--bank", "b", "--algo", "pdq")
    assert code == 0 and "1 added" in out
