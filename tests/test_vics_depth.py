"""The VICS reader bounds nesting depth before ijson builds anything per event.

A 200 KB document nested 100k levels deep made the import allocate tens of GB (ijson's
per-event prefix strings); 10k levels gave a RecursionError. Both are now a line-numbered
`HashListFormatError`, in a child process whose peak RSS is measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.peak import OWN_PEAK
from index.errors import HashListFormatError
from index.ingest.records import ParseOptions
from index.ingest.vics import MAX_DEPTH, _DepthGuard, parse
from synthetic_fixtures.hostile_round2 import deep_vics

REPO = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


def _parse(path: Path) -> list[object]:
    return list(parse(str(path), ParseOptions()))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 10_000, 100_000])
def test_deep_nesting_is_a_line_numbered_error(tmp_path: Path, depth: int) -> None:
    doc = tmp_path / "deep.json"
    doc.write_bytes(b"\n\n" + deep_vics(depth))
    with pytest.raises(HashListFormatError, match=f"deeper than {MAX_DEPTH} levels") as exc:
        _parse(doc)
    assert exc.value.line == 3


def test_nesting_at_the_limit_still_parses(tmp_path: Path) -> None:
    # root object, value array and the Media object are 3 levels; the rest fill up to 64
    doc = tmp_path / "ok.json"
    doc.write_bytes(deep_vics(MAX_DEPTH - 3))
    (rec,) = _parse(doc)
    assert getattr(rec, "hashes", None) == (("md5", "0" * 32),)


def test_brackets_inside_strings_and_escapes_do_not_count() -> None:
    guard = _DepthGuard("x", limit=2)
    text = b'{"a": "[[[[\\"{{{{\\\\", "b": ["]]]]"]}'
    for k in range(len(text)):  # every split point, so escapes cross piece boundaries
        g = _DepthGuard("x", limit=2)
        g.feed(text[:k], 1)
        g.feed(text[k:], 1)
        assert (g.depth, g.in_string) == (0, False), k
    guard.feed(text, 1)
    with pytest.raises(HashListFormatError):
        guard.feed(b'{"c": [[', 2)


def test_deep_document_peak_memory_in_a_child(tmp_path: Path) -> None:
    doc = tmp_path / "deep.json"
    doc.write_bytes(deep_vics(100_000))
    code = OWN_PEAK + (
        "import json, sys\n"
        "from index.errors import HashListFormatError\n"
        "from index.ingest.records import ParseOptions\n"
        "from index.ingest.vics import parse\n"
        "before = own_peak_kib()\n"
        "try:\n"
        "    list(parse(sys.argv[1], ParseOptions()))\n"
        "    err = None\n"
        "except HashListFormatError as e:\n"
        "    err = str(e)\n"
        "print(json.dumps({'err': err,\n"
        "                  'grew': own_peak_kib() - before}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(doc)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=True)
    out = json.loads(proc.stdout)
    assert out["err"] and "deeper than" in out["err"]
    assert out["grew"] * 1024 < 32 * MiB  # peak RSS growth while parsing, imports excluded
