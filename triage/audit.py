"""audit.jsonl: the append-only chain-of-custody log, one JSON line per scan.

Each entry carries the sha256 of the previous line, so a removed or edited entry breaks the
chain visibly (`verify_chain`). Lines are appended with O_APPEND and fsynced; nothing ever
rewrites the file.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from triage.outputs import append_line_durable


def tool_version() -> str:
    try:
        return metadata.version("osec-triage")
    except metadata.PackageNotFoundError:
        return "unknown"


def who() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = "unknown"
    return {"user": user, "host": socket.gethostname()}


def _last_line(path: Path) -> bytes | None:
    if not path.exists():
        return None
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        step = 4096
        pos = end
        tail = b""
        while pos > 0:
            pos = max(0, pos - step)
            fh.seek(pos)
            tail = fh.read(end - pos)
            if tail.rstrip(b"\n").count(b"\n") >= 1:
                break
    lines = tail.rstrip(b"\n").split(b"\n")
    return lines[-1] if lines and lines[-1] else None


def append_audit(path: Path, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Append `entry` with the previous line's sha256 and return what was written."""
    prev = _last_line(path)
    full = {**entry, "prev_sha256": hashlib.sha256(prev).hexdigest() if prev else None}
    append_line_durable(path, json.dumps(full, sort_keys=True))
    return full


def verify_chain(path: Path) -> bool:
    prev: bytes | None = None
    for line in path.read_bytes().splitlines():
        entry = json.loads(line)
        if entry.get("prev_sha256") != (hashlib.sha256(prev).hexdigest() if prev else None):
            return False
        prev = line
    return True


def last_scan_entry(case: Path) -> dict[str, Any]:
    """The case's last `scan_finished` entry (its store, policy and run), or {} before any."""
    last: dict[str, Any] = {}
    audit = case / "audit.jsonl"
    if audit.exists():
        with open(audit, encoding="utf-8") as fh:
            for line in fh:
                entry = json.loads(line)
                if entry.get("event") == "scan_finished":
                    last = entry
    return last
