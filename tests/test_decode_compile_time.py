"""Compiling numba kernels never counts against a file's decode time limit.

A worker compiles (or loads from numba's on-disk cache) the PDQ kernels on its first image,
inside that file's time limit. On a loaded machine a cold compile took longer than the 60 s
default (measured: > 60 s niced at load 13), so the SIGALRM fired inside numba's compiler
("Exception ignored ... _Expired") and that file lost its PDQ: in a 10^6-file run, a planted
known image. `hashing.time_limit` now stops the clock while numba holds its compiler lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hashing import time_limit as tl
from hashing.hasher import HashOptions, hash_bytes
from synthetic_fixtures.evidence import image_bytes

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
from hashing.hasher import HashOptions, hash_bytes
import hashing.algorithms.pdq, hashing.algorithms.video, hashing.decode  # imported, not compiled
data = open(sys.argv[1], "rb").read()
rec = hash_bytes(data, "a.jpg", HashOptions(decode_seconds=float(sys.argv[2])))
print(json.dumps({"status": rec.status, "error": rec.error, "pdq": rec.hashes.get("pdq")}))
"""


@pytest.mark.slow
def test_cold_kernels_compile_outside_a_tiny_decode_limit(tmp_path: Path) -> None:
    """A fresh process with an empty numba cache and a 1 s limit still gets the PDQ (the
    compile alone takes several seconds even on an idle machine)."""
    data = image_bytes(np.random.default_rng([21, 1100]), "jpeg", (64, 48))
    (tmp_path / "a.jpg").write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "a.jpg"), "1"], cwd=REPO,
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cold-cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "_Expired" not in proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    warm = hash_bytes(data, "a.jpg", HashOptions())
    assert out == {"status": "hashed", "error": None, "pdq": warm.hashes["pdq"]}
    assert any((tmp_path / "cold-cache").rglob("*.nbi")), "the kernels were not compiled cold"


def _hold_compiler_lock(seconds: float) -> None:
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:  # what numba holds while it compiles or loads a kernel
        time.sleep(seconds)


def test_time_under_the_compiler_lock_is_not_counted() -> None:
    err = RuntimeError("too slow")
    with tl.time_limit(1.0, err):
        _hold_compiler_lock(1.5)
        time.sleep(0.05)
    with pytest.raises(RuntimeError, match="too slow"):  # the clock runs again after it
        with tl.time_limit(0.5, err):
            _hold_compiler_lock(0.2)
            time.sleep(1.0)


def test_the_watch_is_paused_while_compiling_and_rearmed_with_the_time_left() -> None:
    calls: list[float | None] = []
    tl.set_watch(calls.append)
    try:
        with tl.time_limit(10.0, RuntimeError("x")):
            time.sleep(0.2)
            _hold_compiler_lock(0.01)
    finally:
        tl.set_watch(None)
    assert calls[0] == 10.0 and calls[1] is None and calls[-1] is None
    assert len(calls) == 4 and 5.0 < (calls[2] or 0) < 9.85, calls
