"""queue.jsonl and queue.csv: the ranked queue, one row per line, written as it is read."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from hashing.output import neutralise_cell
from triage.outputs import atomic_text
from triage.queue import QueueRow

COLUMNS = ("rank", "tier", "severity", "score", "score_basis", "path", "md5", "sha1", "sha256",
           "media_type", "category", "category_source", "suggested_category", "decision",
           "cluster", "reasons")


def write_queue_jsonl(path: Path, rows: Iterable[QueueRow]) -> None:
    with atomic_text(path) as fh:
        for row in rows:
            fh.write(json.dumps(row.to_dict()) + "\n")


def write_queue_csv(path: Path, rows: Iterable[QueueRow]) -> None:
    with atomic_text(path) as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for row in rows:
            d = row.to_dict()
            d["reasons"] = json.dumps(d["reasons"])  # CSV keeps the printable path only
            writer.writerow(neutralise_cell("" if d[c] is None else str(d[c])) for c in COLUMNS)
