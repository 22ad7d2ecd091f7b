"""Reading an analyst's grades: a CSV or a VICS JSON export of a review tool, all-or-nothing.

CSV columns (names case-insensitive, `-`/`_`/spaces ignored): one key among `path`, `md5`,
`sha1`, `sha256`; `decision` = a category label or code, `not-pertinent` or `false-positive`;
optional `note`, and for a false positive optional `bank`/`entry` naming the entry at fault
(default: every bank entry the item matched). VICS JSON: each Media's digests and `Category`
(through the document's scheme); Project VIC's non-pertinent code is a not-pertinent decision
and an uncategorised one is no decision at all.

Every problem is collected with its line number and the whole file is refused when there is
one, like a bank import: a half-applied set of grades would be worse than none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hashing.errors import TriageError
from hashing.i18n import _
from index.categories import (
    Category,
    CategoryScheme,
    SchemeError,
    canonical,
    label_for_text,
)
from index.errors import HashListFormatError
from index.ingest import vics
from index.ingest.csv import column_key, each_row, read_table
from index.ingest.records import ParseOptions, RecordError, RejectedRecord, check_hash

KEYS = ("path", "md5", "sha1", "sha256")
CSV_COLUMNS = (*KEYS, "decision", "note", "bank", "entry")
NOT_PERTINENT = "not-pertinent"
FALSE_POSITIVE = "false-positive"
CATEGORY = "category"
_SPECIAL = {
    "notpertinent": NOT_PERTINENT, "nonpertinent": NOT_PERTINENT,
    "falsepositive": FALSE_POSITIVE,
}
_NOT_A_DECISION = 0  # Project VIC "uncategorized": the analyst has not graded it
_VIC_NOT_PERTINENT = 5


@dataclass(frozen=True, slots=True)
class Decision:
    """One grade of one item, named by its path or one of its digests."""

    line: int
    key: str  # one of KEYS
    value: str  # the path, or lower-case hex
    kind: str  # CATEGORY | NOT_PERTINENT | FALSE_POSITIVE
    category: Category | None = None  # for CATEGORY
    note: str | None = None
    bank: str | None = None  # FALSE_POSITIVE: the entry at fault, when named
    entry: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "key": self.key, "value": self.value,
                               "decision": self.kind}
        if self.category is not None:
            out.update(category=self.category.label, severity=self.category.severity,
                       vic_category=self.category.vic_category,
                       caid_category=self.category.caid_category)
        for name in ("note", "bank", "entry"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decision:
        category = None
        if d.get("category") is not None:
            category = Category(d["category"], int(d["severity"]), d.get("vic_category"),
                                d.get("caid_category"))
        return cls(d["line"], d["key"], d["value"], d["decision"], category, d.get("note"),
                   d.get("bank"), d.get("entry"))


class DecisionsRejectedError(TriageError):
    """A decisions file with problems: nothing was stored. `rejected` lists every one."""

    def __init__(self, path: str, rejected: list[RejectedRecord], error: str | None = None) -> None:
        what = error or _("{n} invalid decision(s)").format(n=len(rejected))
        super().__init__(_("{path}: decisions refused, nothing stored: {what}").format(
            path=path, what=what))
        self.path = path
        self.rejected = rejected
        self.error = error


def parse_decision(text: str, scheme: CategoryScheme | None) -> tuple[str, Category | None]:
    """(kind, category) of one `decision` cell."""
    key = column_key(text)
    if not key:
        raise RecordError(_("empty decision"))
    if key in _SPECIAL:
        return _SPECIAL[key], None
    try:
        found = label_for_text(text, scheme)
    except SchemeError as e:
        raise RecordError(str(e)) from None
    if found.vic_category == _VIC_NOT_PERTINENT:
        return NOT_PERTINENT, None
    if scheme is not None and found.vic_category is None and found.caid_category is None:
        return CATEGORY, Category(found.label, found.severity)  # a scheme file's own label
    normal = canonical(found.label, found.vic_category, found.caid_category)
    assert normal is not None
    return CATEGORY, normal


def _csv(path: str, scheme: CategoryScheme | None) -> Iterator[Decision | RejectedRecord]:
    with open(path, "rb") as f:
        header_line, header, rows = read_table(path, f)
        columns: dict[str, int] = {}
        for i, name in enumerate(header):
            key = column_key(name)
            if key not in CSV_COLUMNS:
                raise HashListFormatError(path, header_line, _(
                    "unknown column {name!r}: the accepted columns are {cols}").format(
                        name=name, cols=", ".join(CSV_COLUMNS)))
            columns[key] = i
        keys = [k for k in KEYS if k in columns]
        if not keys or "decision" not in columns:
            raise HashListFormatError(path, header_line, _(
                "a decisions CSV needs a decision column and one of {keys}").format(
                    keys=", ".join(KEYS)))
        yield from each_row(rows, lambda line, row: _csv_row(line, row, columns, keys,
                                                             len(header), scheme))


def _csv_row(line: int, row: list[str], columns: dict[str, int], keys: list[str], width: int,
             scheme: CategoryScheme | None) -> Decision:
    if len(row) != width:
        raise RecordError(_("expected {w} fields, got {n}").format(w=width, n=len(row)))

    def cell(name: str) -> str | None:
        value = row[columns[name]].strip() if name in columns else ""
        return value or None

    given = [(k, v) for k in keys if (v := cell(k)) is not None]
    if not given:
        raise RecordError(_("no path or digest to name the item"))
    key, value = given[0]
    if key != "path":
        value = check_hash(key, value)[1]
    kind, category = parse_decision(cell("decision") or "", scheme)
    bank, entry = cell("bank"), cell("entry")
    if (bank or entry) and kind != FALSE_POSITIVE:
        raise RecordError(_("bank and entry name the entry of a false positive only"))
    return Decision(line, key, value, kind, category, cell("note"), bank, entry)


def _vics(path: str, scheme: CategoryScheme | None) -> Iterator[Decision | RejectedRecord]:
    for rec in vics.parse(path, ParseOptions(scheme=scheme)):
        if isinstance(rec, RejectedRecord):
            yield rec
            continue
        if rec.vic_category == _NOT_A_DECISION or (rec.category is None
                                                    and rec.vic_category is None):
            continue
        digests = dict(rec.hashes)
        key = next((k for k in ("md5", "sha1", "sha256") if k in digests), None)
        if key is None:
            yield RejectedRecord(rec.line, _("Media record has no MD5, SHA1 or SHA256"), rec.item)
            continue
        if rec.vic_category == _VIC_NOT_PERTINENT:
            yield Decision(rec.line, key, digests[key], NOT_PERTINENT)
            continue
        category = canonical(rec.category, rec.vic_category, rec.caid_category)
        yield Decision(rec.line, key, digests[key], CATEGORY, category)


def parse_decisions(path: Path, scheme: CategoryScheme | None = None
                    ) -> tuple[list[Decision], list[RejectedRecord]]:
    """Every decision of the file and every rejected line; DecisionsRejectedError only for a
    file that cannot be read at all."""
    try:
        with open(path, "rb") as fh:
            is_json = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
        parser = _vics if is_json else _csv
        out: list[Decision] = []
        rejected: list[RejectedRecord] = []
        for item in parser(str(path), scheme):
            if isinstance(item, RejectedRecord):
                rejected.append(item)
            else:
                out.append(item)
    except HashListFormatError as e:
        where = _("line {n}: ").format(n=e.line) if e.line is not None else ""
        raise DecisionsRejectedError(str(path), [], where + e.reason) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DecisionsRejectedError(str(path), [], str(e)) from None
    return out, rejected


def read_decisions(path: Path, scheme: CategoryScheme | None = None) -> list[Decision]:
    """Every decision of the file, or DecisionsRejectedError listing every problem."""
    out, rejected = parse_decisions(path, scheme)
    if rejected:
        raise DecisionsRejectedError(str(path), rejected)
    return out
