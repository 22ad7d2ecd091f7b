"""Privacy: the tool never opens a network connection, keeps its store and case private to the
user even under umask 000, and writes no media to any output, report or stream.

The real CLI runs as subprocesses (`bank import`, `hash`, `scan` with a two-worker process
pool). A `sitecustomize` on PYTHONPATH loads a network guard into every interpreter, the
forkserver and the hashing workers included: each non-Unix-domain `connect`/`sendto`, each
`create_connection` and each name lookup is appended to a log file and refused. Unix-domain
sockets stay allowed (multiprocessing talks to its forkserver over one).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_no_content_leak import SIGNATURES

from hashing.hasher import HashOptions, hash_path
from synthetic_fixtures.evidence import make_evidence
from synthetic_fixtures.hashlists import random_entries, write_hash_lists

REPO = Path(__file__).resolve().parents[1]

GUARD = '''
"""Test-only network guard: record and refuse every network operation (AF_UNIX allowed)."""
import json, os, socket

_LOG = os.environ["NET_GUARD_LOG"]


def _record(what, detail):
    with open(_LOG, "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "what": what, "detail": repr(detail)}) + "\\n")
    raise OSError(101, "network blocked by test guard")


with open(os.environ["NET_GUARD_PIDS"], "a") as fh:
    fh.write(f"{os.getpid()}\\n")

_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto


def connect(self, address):
    if self.family == socket.AF_UNIX:
        return _connect(self, address)
    _record("connect", address)


def connect_ex(self, address):
    if self.family == socket.AF_UNIX:
        return _connect_ex(self, address)
    _record("connect_ex", address)


def sendto(self, *args):
    if self.family == socket.AF_UNIX:
        return _sendto(self, *args)
    _record("sendto", args[-1])


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
socket.create_connection = lambda address, *a, **k: _record("create_connection", address)
for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
    setattr(socket, _name, lambda *a, _n=_name, **k: _record(_n, a))
'''


def tree_modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode)
            for p in [root, *root.rglob("*")]}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("privacy")
    guard_dir = base / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(GUARD)
    log, pids = base / "net.log", base / "pids.log"
    env = {**os.environ, "PYTHONPATH": f"{guard_dir}{os.pathsep}{REPO}",
           "NET_GUARD_LOG": str(log), "NET_GUARD_PIDS": str(pids)}
    env.pop("TRIAGE_STORE", None)
    evidence = base / "evidence"
    make_evidence(evidence, seed=17, n_images=6, n_videos=1)
    # a bank holding the hashes of two evidence images, so matching has work to do
    photos = sorted(p for p in evidence.rglob("*.jpg") if p.is_file() and not p.is_symlink())
    hashes = [hash_path(str(p), HashOptions()).hashes for p in photos[:2]]
    entries = random_entries(np.random.default_rng(4), 4)
    lists = write_hash_lists(base / "lists", entries, seed=4, malformed=False)
    bank_csv = next(i.path for i in lists if i.format == "csv")
    with open(bank_csv, "a") as fh:
        for k, h in enumerate(hashes):
            fh.write(f"{h['md5']},{h['sha1']},{h['sha256']},{h['pdq']},1,S9,EV{k}\n")
    store, case = base / "store", base / "case"
    case.mkdir(mode=0o755)  # an existing, world-readable case directory must be tightened
    os.chmod(case, 0o755)
    commands = {
        "import": ["bank", "import", bank_csv, "--bank", "b1", "--store", str(store),
                   "--scheme", "vic"],
        "hash": ["hash", str(evidence), "--format", "csv"],
        "hash_jsonl": ["hash", str(photos[0]), "--dihedral"],
        "scan": ["scan", str(evidence), "--case", str(case), "--store", str(store),
                 "--workers", "2"],
        "control": None,
    }
    procs = {}
    for name, args in commands.items():
        cmd = ([sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 9))"]
               if args is None else [sys.executable, "-m", "cli.main", *args])
        procs[name] = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=300,
                                     preexec_fn=lambda: os.umask(0))
        if name == "control":
            control_log = log.read_text() if log.exists() else ""
            log.unlink(missing_ok=True)
    return {"procs": procs, "log": log, "pids": pids, "control_log": control_log,
            "store": store, "case": case, "evidence": evidence}


def test_commands_succeed(guarded: dict[str, Any]) -> None:
    for name in ("import", "hash", "hash_jsonl", "scan"):
        proc = guarded["procs"][name]
        assert proc.returncode == 0, (name, proc.stderr.decode()[-2000:])
    manifest = [json.loads(x) for x in (guarded["case"] / "manifest.jsonl").read_text().splitlines()]
    assert sum(1 for d in manifest if d.get("pdq")) >= 6  # the workers really hashed images
    summary = json.loads((guarded["case"] / "summary.json").read_text())
    assert summary["counts"]["queue"] >= 1 and summary["run"]["executor"]["workers"] == 2


def test_no_network_operation_was_attempted(guarded: dict[str, Any]) -> None:
    log: Path = guarded["log"]
    assert not log.exists() or log.read_text() == ""


def test_guard_was_active_everywhere(guarded: dict[str, Any]) -> None:
    """Not vacuous: the guard caught the control's connection, and it was loaded by more
    interpreters than commands were run (the forkserver and its hashing workers)."""
    assert "create_connection" in guarded["control_log"]
    assert guarded["procs"]["control"].returncode != 0
    pids = set(guarded["pids"].read_text().split())
    assert len(pids) >= 5 + 2, pids


def test_store_and_case_private_under_umask_0(guarded: dict[str, Any]) -> None:
    for root in (guarded["store"], guarded["case"]):
        modes = tree_modes(root)
        assert len(modes) >= 5
        for rel, mode in modes.items():
            want = 0o700 if (root / rel).is_dir() else 0o600
            assert mode == want, f"{root.name}/{rel}: {oct(mode)}"


def test_no_media_in_outputs_reports_or_streams(guarded: dict[str, Any]) -> None:
    """Every file in the case and store (reports, database, index), the `hash` output in csv
    and jsonl, and every stdout/stderr carries no image signature or base64 image data."""
    blobs: dict[str, bytes] = {}
    for root in (guarded["store"], guarded["case"]):
        for p in root.rglob("*"):
            if p.is_file():
                blobs[str(p.relative_to(root.parent))] = p.read_bytes()
    for name, proc in guarded["procs"].items():
        blobs[f"{name}.stdout"], blobs[f"{name}.stderr"] = proc.stdout, proc.stderr
    assert any(k.startswith("store/reports/") for k in blobs)
    assert b"pdq" in blobs["hash.stdout"] and b"pdq" in blobs["hash_jsonl.stdout"]
    for name, data in blobs.items():
        for sig in SIGNATURES:
            assert not sig.search(data), f"{name} contains {sig.pattern!r}"
