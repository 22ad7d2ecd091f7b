"""Category schemes: what a list's numeric or letter category code means.

Project VIC lists carry `Category` as an integer whose meaning depends on the national scheme
(VIC US/Canada 0-5, UK CAID A/B/C), so parsers never hard-wire labels: they look codes up in a
`CategoryScheme`. Two built-in tables are given; a partner's own table can be loaded from a
JSON file `{"name": ..., "categories": {"<code>": {"label": ..., "vic_category": int|null,
"caid_category": "A"|"B"|"C"|null, "severity": 0-10}}}`. Check the built-in labels against your
partner's documentation before relying on them; they are the commonly published meanings.

Normalisation (`canonical`): whatever a bank stored (a scale code, a built-in label, free text),
an item gets one canonical label and a severity, so the same code from two banks is one
category and the queue can rank by severity. A scale code wins over the text beside it;
free-text labels stay labels with `FREE_TEXT_SEVERITY` (serious until an analyst grades it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from hashing.errors import TriageError
from hashing.i18n import N_, tr


class SchemeError(TriageError):
    """A scheme name or scheme file that cannot be used."""


@dataclass(frozen=True, slots=True)
class CategoryLabel:
    label: str
    vic_category: int | None = None
    caid_category: str | None = None
    severity: int = 5  # 0 (not pertinent) .. 10 (most severe); ranks items within a tier


@dataclass(frozen=True, slots=True)
class CategoryScheme:
    """A code -> label table; the first code listed for a label is the one exported."""

    name: str
    codes: Mapping[str, CategoryLabel]

    def lookup(self, code: object) -> CategoryLabel | None:
        """The label for `code` (int, "3", "A", 3.0), or None when the scheme has no such code."""
        return self.codes.get(normalise_code(code))

    def by_label(self, label: str) -> CategoryLabel | None:
        """The entry whose label this is (case-insensitive): a list may write labels out."""
        folded = label.strip().casefold()
        return next((v for v in self.codes.values() if v.label.casefold() == folded), None)

    def code_for(self, label: str | None) -> str | None:
        """Reverse lookup used by export, so an exported list re-imports to the same labels."""
        for code, value in self.codes.items():
            if value.label == label:
                return code
        return None


def normalise_code(code: object) -> str:
    if isinstance(code, float) and code.is_integer():
        code = int(code)
    return str(code).strip().upper()


def _scheme(name: str, table: dict[str, CategoryLabel]) -> CategoryScheme:
    return CategoryScheme(name, MappingProxyType(table))


FREE_TEXT_SEVERITY = 5
MAX_SEVERITY = 10

VIC = _scheme(
    "vic",
    {
        "0": CategoryLabel(N_("uncategorized"), vic_category=0, severity=5),
        "1": CategoryLabel(N_("child abuse material"), vic_category=1, severity=10),
        "2": CategoryLabel(N_("child exploitive (non-CAM)"), vic_category=2, severity=6),
        "3": CategoryLabel(N_("CGI/animation"), vic_category=3, severity=4),
        "4": CategoryLabel(N_("comparison"), vic_category=4, severity=2),
        "5": CategoryLabel(N_("non-pertinent"), vic_category=5, severity=0),
    },
)

_A = CategoryLabel(N_("CAID category A"), caid_category="A", severity=10)
_B = CategoryLabel(N_("CAID category B"), caid_category="B", severity=8)
_C = CategoryLabel(N_("CAID category C"), caid_category="C", severity=6)
CAID = _scheme(
    "caid",
    {
        "0": CategoryLabel(N_("uncategorised"), severity=5),
        "1": _A,
        "2": _B,
        "3": _C,
        "4": CategoryLabel(N_("non-indecent"), severity=0),
        "A": _A,
        "B": _B,
        "C": _C,
    },
)

BUILTIN: dict[str, CategoryScheme] = {"vic": VIC, "caid": CAID}
# Every built-in label, case-folded: a bank that stored the label text is the same category.
_BY_LABEL: dict[str, CategoryLabel] = {
    v.label.casefold(): v for scheme in BUILTIN.values() for v in scheme.codes.values()
}


def builtin_labels() -> list[str]:
    """Every built-in scheme's label (what the catalogs translate for display)."""
    return sorted({v.label for scheme in BUILTIN.values() for v in scheme.codes.values()})


def is_code(text: str) -> bool:
    """A category written as a number is a scale code, never a label."""
    return text.strip().isdigit()


def label_for_text(text: str, scheme: CategoryScheme | None) -> CategoryLabel:
    """What a list's category text means: a code of `scheme`, else a built-in label or free text.

    A number without a scheme is mapped only when exactly one built-in scheme has that code;
    otherwise it is refused with the `--scheme` values that would give it a meaning.
    """
    if scheme is not None:
        found = scheme.lookup(text) or scheme.by_label(text)
        if found is None:
            raise SchemeError(tr("unknown category {text!r} in scheme {scheme}", text=text,
                                 scheme=scheme.name))
        return found
    if not is_code(text):
        return _BY_LABEL.get(text.strip().casefold(), CategoryLabel(text.strip()))
    holders = [s for s in BUILTIN.values() if s.lookup(text) is not None]
    if len(holders) == 1:
        found = holders[0].lookup(text)
        assert found is not None
        return found
    names = " or ".join(f"--scheme {s.name}" for s in holders) or "--scheme FILE.json"
    raise SchemeError(
        tr("category {text!r} is a number with no scheme to say what it means: give {names}",
           text=text, names=names)
    )


def label_for_option(text: str, scheme: CategoryScheme | None) -> CategoryLabel:
    """`--category TEXT`: a code of the scheme when it is one, else a label (words stay words)."""
    found = scheme.lookup(text) if scheme is not None else None
    return found or label_for_text(text, scheme if is_code(text) else None)


@dataclass(frozen=True, slots=True)
class Category:
    """An item's one normalised category: canonical label, severity and scale codes."""

    label: str
    severity: int
    vic_category: int | None = None
    caid_category: str | None = None


def canonical(label: str | None, vic_category: int | None = None,
              caid_category: str | None = None) -> Category | None:
    """The canonical category of what a bank entry (or a decision) carries; None if nothing."""
    found: CategoryLabel | None = None
    if vic_category is not None:
        found = VIC.lookup(vic_category)
    if found is None and caid_category is not None:
        found = CAID.lookup(caid_category)
    if found is None and label:
        found = _BY_LABEL.get(label.strip().casefold())
        if found is None:
            return Category(label.strip(), FREE_TEXT_SEVERITY)
    if found is None:
        return None
    vic = found.vic_category if found.vic_category is not None else vic_category
    caid = found.caid_category if found.caid_category is not None else caid_category
    return Category(found.label, found.severity, vic, caid)


def load_scheme(name_or_path: str) -> CategoryScheme:
    """A built-in scheme by name (`vic`, `caid`) or a JSON scheme file."""
    if name_or_path.lower() in BUILTIN:
        return BUILTIN[name_or_path.lower()]
    path = Path(name_or_path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise SchemeError(tr("{scheme}: not a built-in scheme (vic, caid) nor a file",
                             scheme=str(name_or_path))) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SchemeError(tr("{scheme}: cannot read scheme file: {reason}",
                             scheme=str(name_or_path), reason=str(e))) from None
    try:
        table = {}
        for code, spec in doc["categories"].items():
            caid = spec.get("caid_category")
            vic = spec.get("vic_category")
            if caid is not None and str(caid).upper() not in ("A", "B", "C"):
                raise ValueError(f"caid_category {caid!r} not one of A, B, C")
            if vic is not None and (isinstance(vic, bool) or vic not in range(6)):
                raise ValueError(f"vic_category {vic!r} not in 0-5")
            severity = spec.get("severity", FREE_TEXT_SEVERITY)
            if isinstance(severity, bool) or severity not in range(MAX_SEVERITY + 1):
                raise ValueError(f"severity {severity!r} not in 0-{MAX_SEVERITY}")
            table[normalise_code(code)] = CategoryLabel(
                str(spec["label"]), vic, str(caid).upper() if caid is not None else None,
                severity,
            )
        return _scheme(str(doc.get("name", path.stem)), table)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise SchemeError(tr("{scheme}: malformed scheme file: {reason}",
                             scheme=str(name_or_path), reason=str(e))) from None
