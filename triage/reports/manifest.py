"""manifest.jsonl: one line per walk item, exactly as the case database stores it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from triage.outputs import atomic_text


def write_manifest(path: Path, lines: Iterable[str]) -> None:
    with atomic_text(path) as fh:
        for line in lines:
            fh.write(line + "\n")
