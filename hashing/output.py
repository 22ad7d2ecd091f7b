"""Writers for a stream of `HashRecord`s: JSON lines, CSV and human-readable text.

JSON lines is `HashRecord.to_dict()` verbatim. CSV has a fixed header chosen from the options
(so every row has the same columns) and neutralises cells that a spreadsheet would run as a
formula: evidence file names are attacker-controlled, and `=cmd|...` in a name must stay text.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal, TextIO

from hashing.types import HashRecord

Format = Literal["jsonl", "csv", "text"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "text")

_BASE_COLUMNS = ("path", "path_bytes_hex", "status", "error", "reason", "kind", "size", "mtime",
                 "media_type", "width", "height", "exif_orientation", "link_target")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: str) -> str:
    """Prefix a quote to text a spreadsheet would treat as a formula (OWASP CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


# Text a spreadsheet would run, behind any number of quotes: the reversible prefix below
# quotes these and only these, so `restore_text` can tell its own quote from a partner's.
_QUOTED_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def neutralise_text(value: str) -> str:
    """`neutralise_cell` made reversible, for CSV the tool reads back (`bank export`).

    One `'` is put before text that is a formula start behind zero or more quotes
    (`=x` -> `'=x`, `'=x` -> `''=x`), so `restore_text` inverts it exactly and a cell that
    is not of that shape is never touched in either direction.
    """
    return "'" + value if _QUOTED_FORMULA.match(value) else value


def restore_text(value: str) -> str:
    """Inverse of `neutralise_text`: drop the one leading `'` it adds (`''=x` -> `'=x`)."""
    return value[1:] if value.startswith("'") and _QUOTED_FORMULA.match(value, 1) else value


def csv_columns(algorithms: Iterable[str], *, dihedral: bool = False,
                exif_transpose: bool = False) -> list[str]:
    algos = list(algorithms)
    perceptual = [a for a in algos if a not in ("md5", "sha1", "sha256")]
    cols = list(_BASE_COLUMNS) + algos
    if "pdq" in algos:
        cols.append("pdq_quality")
        if dihedral:
            cols.append("pdq_dihedral")
        cols += ["pdq_frames", "duration"]
    if exif_transpose:
        cols += [f"{a}_exif" for a in perceptual]
    return cols


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        # dihedral hashes are a space-separated list; video frames stay JSON
        if value and isinstance(value[0], str):
            return " ".join(value)
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float):
        return repr(value)
    return neutralise_cell(str(value))


def _text_line(d: dict[str, Any], algorithms: Iterable[str]) -> str:
    parts = [d["status"], d["path"]]
    if d.get("error"):
        parts.append(f"error: {d['error']}")
    if d.get("reason"):
        parts.append(f"({d['reason']})")
    if d.get("media_type"):
        size = f" {d['width']}x{d['height']}" if d.get("width") else ""
        parts.append(f"{d['media_type']}{size}")
    for a in algorithms:
        if d.get(a):
            parts.append(f"{a}={d[a]}")
    if d.get("pdq_quality") is not None:
        parts.append(f"pdq_quality={d['pdq_quality']}")
    if d.get("pdq_frames") is not None:
        parts.append(f"frames={len(d['pdq_frames'])} duration={d.get('duration')}")
    # names may hold newlines; one record must stay one line
    return "  ".join(parts).replace("\n", "\\n").replace("\r", "\\r")


def write_records(records: Iterable[HashRecord], fmt: Format, out: TextIO,
                  algorithms: Iterable[str], *, dihedral: bool = False,
                  exif_transpose: bool = False) -> Iterator[HashRecord]:
    """Write each record as it arrives and yield it on (for progress and counting)."""
    algos = list(algorithms)
    writer = None
    columns: list[str] = []
    if fmt == "csv":
        columns = csv_columns(algos, dihedral=dihedral, exif_transpose=exif_transpose)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
    for rec in records:
        d = rec.to_dict()
        if fmt == "jsonl":
            out.write(json.dumps(d) + "\n")
        elif writer is not None:
            writer.writerow([_csv_cell(d.get(c)) for c in columns])
        else:
            out.write(_text_line(d, algos) + "\n")
        yield rec
