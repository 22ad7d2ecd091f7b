"""Category schemes: what a list's numeric or letter category code means.

Project VIC lists carry `Category` as an integer whose meaning depends on the national scheme
(VIC US/Canada 0-5, UK CAID A/B/C), so parsers never hard-wire labels: they look codes up in a
`CategoryScheme`. Two built-in tables are given; a partner's own table can be loaded from a
JSON file `{"name": ..., "categories": {"<code>": {"label": ..., "vic_category": int|null,
"caid_category": "A"|"B"|"C"|null}}}`. Check the built-in labels against your partner's
documentation before relying on them; they are the commonly published meanings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from hashing.errors import TriageError


class SchemeError(TriageError):
    """A scheme name or scheme file that cannot be used."""


@dataclass(frozen=True, slots=True)
class CategoryLabel:
    label: str
    vic_category: int | None = None
    caid_category: str | None = None


@dataclass(frozen=True, slots=True)
class CategoryScheme:
    """A code -> label table; the first code listed for a label is the one exported."""

    name: str
    codes: Mapping[str, CategoryLabel]

    def lookup(self, code: object) -> CategoryLabel | None:
        """The label for `code` (int, "3", "A", 3.0), or None when the scheme has no such code."""
        return self.codes.get(normalise_code(code))

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


VIC = _scheme(
    "vic",
    {
        "0": CategoryLabel("uncategorized", vic_category=0),
        "1": CategoryLabel("child abuse material", vic_category=1),
        "2": CategoryLabel("child exploitive (non-CAM)", vic_category=2),
        "3": CategoryLabel("CGI/animation", vic_category=3),
        "4": CategoryLabel("comparison", vic_category=4),
        "5": CategoryLabel("non-pertinent", vic_category=5),
    },
)

_A = CategoryLabel("CAID category A", caid_category="A")
_B = CategoryLabel("CAID category B", caid_category="B")
_C = CategoryLabel("CAID category C", caid_category="C")
CAID = _scheme(
    "caid",
    {
        "0": CategoryLabel("uncategorised"),
        "1": _A,
        "2": _B,
        "3": _C,
        "4": CategoryLabel("non-indecent"),
        "A": _A,
        "B": _B,
        "C": _C,
    },
)

BUILTIN: dict[str, CategoryScheme] = {"vic": VIC, "caid": CAID}


def load_scheme(name_or_path: str) -> CategoryScheme:
    """A built-in scheme by name (`vic`, `caid`) or a JSON scheme file."""
    if name_or_path.lower() in BUILTIN:
        return BUILTIN[name_or_path.lower()]
    path = Path(name_or_path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise SchemeError(f"{name_or_path}: not a built-in scheme (vic, caid) nor a file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SchemeError(f"{name_or_path}: cannot read scheme file: {e}") from None
    try:
        table = {}
        for code, spec in doc["categories"].items():
            caid = spec.get("caid_category")
            vic = spec.get("vic_category")
            if caid is not None and str(caid).upper() not in ("A", "B", "C"):
                raise ValueError(f"caid_category {caid!r} not one of A, B, C")
            if vic is not None and (isinstance(vic, bool) or vic not in range(6)):
                raise ValueError(f"vic_category {vic!r} not in 0-5")
            table[normalise_code(code)] = CategoryLabel(
                str(spec["label"]), vic, str(caid).upper() if caid is not None else None
            )
        return _scheme(str(doc.get("name", path.stem)), table)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise SchemeError(f"{name_or_path}: malformed scheme file: {e}") from None
