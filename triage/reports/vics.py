"""export.vics.json: the case's categorised media as Project VIC VICS 2.0 JSON (hashes only).

Only queue rows matched to a bank entry with a numeric category (the Project VIC scale the
entry carries, or its category text when that is a number) are exported, never cluster
suggestions; MediaID is the queue rank. No paths, no content: MD5/SHA1/SHA256 in upper-case
hex, and for perceptual matches a comment naming the PDQ distance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from triage.outputs import atomic_text
from triage.queue import QueueRow

VICS2_CONTEXT = "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/US/$metadata#Media"


def _category(row: QueueRow) -> int | None:
    if row.vic_category is not None:
        return int(row.vic_category)
    if row.category is not None and str(row.category).strip().isdigit():
        return int(str(row.category).strip())
    return None


def vics_media(rows: Iterable[QueueRow]) -> Iterator[dict[str, Any]]:
    for row in rows:
        category = _category(row)
        # A cluster suggestion is a lead for review, not a categorisation to hand on.
        if category is None or not row.md5 or row.reasons[0].kind == "cluster":
            continue
        item: dict[str, Any] = {
            "MediaID": row.rank,
            "Category": category,
            "MD5": row.md5.upper(),
            "SHA1": (row.sha1 or "").upper(),
            "MediaSize": row.size,
            # Exact matches carry the bank's categorisation; near and cluster ones are leads.
            "IsPrecategorized": any(r.kind == "exact" for r in row.reasons),
        }
        if row.sha256:
            item["SHA256"] = row.sha256.upper()
        pdq = [r for r in row.reasons if r.algo == "pdq"]
        if pdq:
            item["Comments"] = f"{pdq[0].kind} match, PDQ distance {pdq[0].distance}"
        yield item


def write_vics(path: Path, rows: Iterable[QueueRow]) -> None:
    """One media object per line, written as the rows are read."""
    with atomic_text(path) as fh:
        fh.write('{"@odata.context": ' + json.dumps(VICS2_CONTEXT) + ', "value": [')
        for n, item in enumerate(vics_media(rows)):
            fh.write(("," if n else "") + "\n" + json.dumps(item))
        fh.write("\n]}\n")
