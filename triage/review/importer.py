"""`triage review import`: check an analyst's decisions against the case, store them, feed the
banks (false positives on the entries at fault; confirmed material into a local bank) and
regenerate the case's outputs from its database, without hashing anything again.

Every decision must name an item of the case (by path or digest) and a false positive must
name an item with a bank match; one that does not makes the whole file refused, with its line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hashing.errors import TriageError
from hashing.i18n import _
from hashing.registry import DEFAULT_ALGORITHMS
from hashing.types import HashRecord
from index.bank_import import ImportOptions
from index.bank_types import FalsePositive, ImportResult
from index.banks import BankStore, default_store_dir
from index.categories import load_scheme
from index.ingest.records import RejectedRecord
from triage.audit import last_scan_entry
from triage.outputs import atomic_text
from triage.review.casefile import StoredDecision, record_keys, store_decisions
from triage.review.decisions import (
    CATEGORY,
    FALSE_POSITIVE,
    Decision,
    DecisionsRejectedError,
    parse_decisions,
)


class ReviewError(TriageError):
    """A review import that cannot start (no such case, no scan yet)."""


@dataclass(frozen=True, slots=True)
class ReviewResult:
    case_dir: Path
    decisions: int
    by_kind: dict[str, int]
    false_positives_recorded: int
    to_bank: ImportResult | None
    summary: dict[str, Any]


def _records(case: Path) -> list[HashRecord]:
    manifest = case / "manifest.jsonl"
    if not manifest.exists():
        raise ReviewError(_("{case}: not a scanned case (no manifest.jsonl): scan it first")
                          .format(case=case))
    with open(manifest, encoding="utf-8") as fh:
        return [HashRecord.from_dict(json.loads(line), DEFAULT_ALGORITHMS) for line in fh
                if line.strip()]


def _bank_matches(case: Path) -> dict[str, list[tuple[str, str]]]:
    """Queue path -> (bank, entry) of its bank matches, from the last written queue."""
    out: dict[str, list[tuple[str, str]]] = {}
    path = case / "queue.jsonl"
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                out[row["path"]] = [(r["bank"], r["entry"]) for r in row["reasons"]
                                    if r["kind"] != "cluster" and r.get("bank")]
    return out


class RecordKeys:
    """Record indexes by path and by each digest (a digest names every copy)."""

    def __init__(self, records: Sequence[HashRecord]) -> None:
        self._by: dict[tuple[str, str], list[int]] = {}
        for i, rec in enumerate(records):
            for key in record_keys(rec):
                self._by.setdefault(key, []).append(i)

    def find(self, d: Decision) -> list[int]:
        return self._by.get((d.key, d.value), [])


def check(decisions: Sequence[Decision], records: Sequence[HashRecord], keys: RecordKeys,
          matches: Mapping[str, list[tuple[str, str]]]) -> list[RejectedRecord]:
    """Every decision that names no item of the case, or a false match that is not there."""
    rejected = []
    for d in decisions:
        hits = keys.find(d)
        if not hits:
            rejected.append(RejectedRecord(d.line, _("no item of this case has {key} {value}")
                                           .format(key=d.key, value=d.value)))
            continue
        if d.kind == FALSE_POSITIVE:
            found = [m for i in hits for m in matches.get(records[i].path, [])
                     if (d.bank is None or d.bank == m[0]) and (d.entry is None or d.entry == m[1])]
            if not found:
                rejected.append(RejectedRecord(d.line, _(
                    "false-positive for an item with no such bank match: {value}").format(
                        value=d.value)))
    return rejected


def _false_positives(decisions: Sequence[StoredDecision], records: Sequence[HashRecord],
                     keys: RecordKeys, matches: Mapping[str, list[tuple[str, str]]],
                     case_name: str) -> list[FalsePositive]:
    out = []
    for s in decisions:
        d = s.decision
        if d.kind != FALSE_POSITIVE:
            continue
        for i in keys.find(d):
            for bank, entry in matches.get(records[i].path, []):
                if (d.bank is None or d.bank == bank) and (d.entry is None or d.entry == entry):
                    out.append(FalsePositive(bank, entry, case_name, records[i].path, s.who,
                                             s.at, d.note))
    return out


def _bank_list(case: Path, decisions: Sequence[StoredDecision],
               records: Sequence[HashRecord], keys: RecordKeys) -> Path | None:
    """The confirmed items as a CSV hash list (digests, PDQ, category) for a local bank."""
    rows: dict[str, list[str]] = {}
    for s in decisions:
        d = s.decision
        if d.kind != CATEGORY or d.category is None:
            continue
        for i in keys.find(d):
            h = records[i].hashes
            if not (h.get("md5") or h.get("sha1") or h.get("sha256") or h.get("pdq")):
                continue
            key = h.get("sha256") or h.get("sha1") or h.get("md5") or h["pdq"]
            quality = records[i].pdq_quality
            rows[key] = [key[:32], h.get("md5", ""), h.get("sha1", ""), h.get("sha256", ""),
                         h.get("pdq", ""), "" if quality is None or not h.get("pdq")
                         else str(quality), d.category.label,
                         "" if d.category.vic_category is None else str(d.category.vic_category)]
    if not rows:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = case / f"to-bank-{stamp}.csv"
    with atomic_text(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "md5", "sha1", "sha256", "pdq", "quality", "category", "vic_category"])
        w.writerows(rows[k] for k in sorted(rows))
    return path


def import_review(decisions_path: Path, case_dir: Path, store_dir: Path | None = None,
                  to_bank: str | None = None, scheme: str | None = None,
                  regenerate: Callable[[Path, Path], dict[str, Any]] | None = None,
                  ) -> ReviewResult:
    """Check, store and apply one decisions file (nothing is stored when any line is bad)."""
    case = case_dir
    if not case.is_dir():
        raise ReviewError(_("{case}: no such case directory").format(case=case))
    records = _records(case)
    decisions, rejected = parse_decisions(decisions_path,
                                          load_scheme(scheme) if scheme else None)
    matches = _bank_matches(case)
    keys = RecordKeys(records)
    rejected += check(decisions, records, keys, matches)
    if rejected:
        raise DecisionsRejectedError(str(decisions_path),
                                     sorted(rejected, key=lambda r: r.line))
    last = last_scan_entry(case)
    store = Path(store_dir or last.get("store") or default_store_dir())
    stored = store_decisions(case, decisions, decisions_path,
                             {"to_bank": to_bank, "store": str(store)})
    with BankStore(store) as bank_store:
        fps = bank_store.record_false_positives(
            _false_positives(stored, records, keys, matches, case.name))
        imported = None
        if to_bank is not None:
            listing = _bank_list(case, stored, records, keys)
            if listing is not None:
                imported = bank_store.import_file(str(listing), ImportOptions(
                    bank=to_bank, format="csv", source=f"osec-triage review of case {case.name}",
                    version=stored[0].at if stored else None))
    summary = regenerate(case, store) if regenerate is not None else {}
    by_kind: dict[str, int] = {}
    for d in decisions:
        by_kind[d.kind] = by_kind.get(d.kind, 0) + 1
    return ReviewResult(case, len(decisions), by_kind, fps, imported, summary)
