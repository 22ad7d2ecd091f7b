"""export.vics.json: the case's categorised media as Project VIC VICS 2.0 JSON (hashes only).

One Case (provenance: case name, tool and version, banks used) whose `Media` are every item
matched to a bank entry (false positives excluded) or confirmed by an analyst, never bare
cluster suggestions. Copies (same digests) are one Media with all their paths in `MediaFiles`.
`MediaID` is derived from the digests, so it is the same in every scan of any case. `Category`
is the Project VIC code of the normalised category; `Comments` say per reason what matched
(exact digest, perceptual distance and variant, video frames). No content, ever.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hashing.registry import spec
from hashing.types import path_to_text
from triage.match import Reason
from triage.outputs import atomic_text
from triage.queue import ANALYST, QueueRow

VICS2_CONTEXT = "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/US/$metadata#Cases"
_MEDIA_ID_HEX = 13  # 52 bits: an integer every JSON reader holds exactly


def media_id(md5: str | None, sha1: str | None, sha256: str | None) -> int:
    """A stable integer id from an item's digests (the same file gets it in every case)."""
    key = "|".join(d.lower() if d else "" for d in (md5, sha1, sha256))
    return int(hashlib.sha256(key.encode()).hexdigest()[:_MEDIA_ID_HEX], 16)


def describe(r: Reason) -> str:
    """One reason in words, from whatever fields it carries (new reason kinds included)."""
    where = f"{r.bank}:{r.entry}" if r.bank else "analyst decision"
    if r.kind == "exact":
        return f"exact {r.algo.upper()} digest match to {where}"
    text = f"{r.kind} match to {where}, {r.algo.upper()} distance {r.distance} of {spec(r.algo).bits}"
    extra = {k: v for k, v in r.to_dict().items()
             if k not in ("kind", "algo", "bank", "entry", "distance", "category", "severity",
                          "vic_category", "series", "known_good")}
    if extra:
        text += " (" + ", ".join(f"{k} {v}" for k, v in sorted(extra.items())) + ")"
    return text


def _exported(row: QueueRow) -> bool:
    banked = any(r.kind != "cluster" for r in row.reasons) and row.decision != "false-positive"
    return banked or row.category_source == ANALYST


def vics_media(rows: Iterable[QueueRow]) -> Iterator[dict[str, Any]]:
    """One Media per exported item (copies grouped by digests), in queue order; only the
    exported rows are held (bank-matched or confirmed ones), never the whole queue."""
    groups: dict[tuple[str | None, str | None, str | None], list[QueueRow]] = {}
    for row in rows:
        if _exported(row) and (row.md5 or row.sha1 or row.sha256):
            groups.setdefault((row.md5, row.sha1, row.sha256), []).append(row)
    for (md5, sha1, sha256), copies in groups.items():
        lead = copies[0]  # the best-ranked copy speaks for the item
        item: dict[str, Any] = {"MediaID": media_id(md5, sha1, sha256)}
        if lead.vic_category is not None and lead.category is not None:
            item["Category"] = lead.vic_category
        for name, value in (("MD5", md5), ("SHA1", sha1), ("SHA256", sha256)):
            if value:
                item[name] = value.upper()
        if lead.size is not None:
            item["MediaSize"] = lead.size
        # exact matches carry a bank's categorisation and analysts' grades are categorisations;
        # near matches are leads
        item["IsPrecategorized"] = lead.category_source == ANALYST or any(
            r.kind == "exact" for r in lead.reasons)
        if lead.pdq:
            alt: dict[str, Any] = {"HashName": "PDQ", "HashValue": lead.pdq}
            if lead.pdq_quality is not None:
                alt["Quality"] = lead.pdq_quality
            item["AlternativeHashes"] = [alt]
        files = []
        for row in copies:
            text = path_to_text(row.path)[0]
            files.append({"FileName": os.path.basename(text), "FilePath": text})
        item["MediaFiles"] = files
        notes = [describe(r) for r in lead.reasons if r.kind != "cluster"]
        if lead.category_source == ANALYST:
            notes.insert(0, f"analyst decision: {lead.category}")
        if notes:
            item["Comments"] = "; ".join(notes)
        yield item


def case_fields(case: Mapping[str, Any]) -> dict[str, Any]:
    """The Case object's provenance: which case, which tool, which banks."""
    banks = ", ".join(f"{b['name']} {b.get('version') or '-'}" for b in case.get("banks", []))
    return {"CaseNumber": case["name"], "SourceApplicationName": "osec-triage",
            "SourceApplicationVersion": case.get("tool_version"),
            "Comments": f"banks: {banks or 'none'}"}


def write_vics(path: Path, rows: Iterable[QueueRow], case: Mapping[str, Any]) -> None:
    """One Case holding one Media per line, written as the rows are read."""
    with atomic_text(path) as fh:
        head = json.dumps(case_fields(case))[:-1]
        fh.write('{"@odata.context": ' + json.dumps(VICS2_CONTEXT) + ', "value": [\n'
                 + head + ', "Media": [')
        for n, item in enumerate(vics_media(rows)):
            fh.write(("," if n else "") + "\n" + json.dumps(item))
        fh.write("\n]}]}\n")
