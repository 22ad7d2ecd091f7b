"""Value types of the bank store: entries handed to matching, bank summaries, import outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hashing.i18n import tr
from index.errors import BankError
from index.ingest.records import RejectedRecord


@dataclass(frozen=True, slots=True)
class BankEntry:
    """One known hash of one bank, as matching sees it (never retracted, bank enabled)."""

    bank: str
    entry_id: str
    algorithm: str
    hash: str
    quality: int | None
    category: str | None
    vic_category: int | None
    caid_category: str | None
    series: str | None
    known_good: bool
    false_positives: int = 0  # confirmed by analysts (the policy may quarantine the entry)


@dataclass(frozen=True, slots=True)
class BankInfo:
    """One bank's provenance and size; `to_dict()` is the `bank list --format json` item."""

    name: str
    entries: int  # active (non-retracted) entries
    algorithms: tuple[str, ...]
    enabled: bool
    known_good: bool
    source: str | None
    version: str | None
    list_name: str | None
    imported_at: str
    scheme: str | None
    retracted: int
    false_positives: int = 0  # analysts' confirmed false matches on its entries

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entries": self.entries,
            "algorithms": list(self.algorithms),
            "enabled": self.enabled,
            "known_good": self.known_good,
            "source": self.source,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class ImportHistory:
    file: str
    file_sha256: str
    format: str
    version: str | None
    imported_at: str
    added: int
    updated: int
    unchanged: int
    rejected: int


@dataclass(frozen=True, slots=True)
class BankDetail:
    """`bank show`: the summary, active entries per algorithm and the import history."""

    info: BankInfo
    per_algorithm: dict[str, int]
    imports: tuple[ImportHistory, ...]
    # entry id -> confirmed false positives, most first
    false_positives: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = self.info.to_dict()
        out.update(
            list_name=self.info.list_name,
            imported_at=self.info.imported_at,
            scheme=self.info.scheme,
            retracted=self.info.retracted,
            false_positives_total=self.info.false_positives,
            per_algorithm=self.per_algorithm,
            imports=[vars_of(h) for h in self.imports],
            false_positives=[{"entry": e, "count": n} for e, n in self.false_positives],
        )
        return out


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one `bank import` did; `to_dict()` is the JSON report."""

    bank: str
    file: str
    format: str
    status: str  # "imported" | "rejected" | "valid" | "invalid" (bank validate)
    version: str | None = None
    replace: bool = False
    records: int = 0  # valid records in the list
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    retracted: int = 0  # active entries the list (with replace) no longer holds
    reinstated: int = 0  # entries an earlier replace dropped, listed again
    ids: dict[str, list[str]] = field(default_factory=dict)  # kind -> entry ids (capped)
    ids_truncated: bool = False
    rejected: tuple[RejectedRecord, ...] = ()
    notes: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # a whole-file problem (not JSON, no header, ...)
    skip_invalid: bool = False
    report_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bank": self.bank,
            "file": self.file,
            "format": self.format,
            "status": self.status,
            "version": self.version,
            "replace": self.replace,
            "skip_invalid": self.skip_invalid,
            "records": self.records,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "retracted": self.retracted,
            "reinstated": self.reinstated,
            "ids": self.ids,
            "ids_truncated": self.ids_truncated,
            "rejected_count": len(self.rejected),
            "rejected": [
                {"line": r.line, "item": r.item, "reason": r.reason} for r in self.rejected
            ],
            "notes": self.notes,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class FalsePositive:
    """An analyst's confirmed false match of one case item against one bank entry."""

    bank: str
    entry_id: str
    case_name: str
    item: str  # the item's path in that case
    who: str
    at: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RetractResult:
    retracted: int
    not_found: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """One perceptual index file as recorded in the store."""

    algorithm: str
    file: str | None  # None when no active entry has this algorithm
    sha256: str | None
    rows: int
    entries: int
    generation: int


class ImportRejectedError(BankError):
    """An all-or-nothing import met invalid records (or an unreadable file): nothing written."""

    def __init__(self, result: ImportResult) -> None:
        n = len(result.rejected)
        if result.error:
            text = tr("{file}: import into bank {bank!r} rejected: {error}", file=result.file,
                      bank=result.bank, error=result.error)
        else:
            text = tr("{file}: import into bank {bank!r} rejected: {n} invalid record(s)",
                      file=result.file, bank=result.bank, n=n)
        super().__init__(text)
        self.result = result


def vars_of(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}
