"""Re-extract every translatable message and merge it into the English and Vietnamese catalogs.

Messages are marked with `_()` / `N_()` / `tr()` / `ngettext()` (hashing.i18n). English is the source
language: its catalog maps each message to itself. New Vietnamese messages are added with an
empty translation and listed, so the catalog test fails until someone translates them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hashing.i18n import DOMAIN, LANGUAGES, po_path  # noqa: E402

PACKAGES = ("hashing", "index", "triage", "cli")
KEYWORDS = {"_": None, "N_": None, "tr": (1,), "ngettext": (1, 2)}


def translated(string: str | tuple[str, ...] | list[str]) -> bool:
    """Whether a catalog entry has its translation (every plural form, for a plural one)."""
    return all(string) if isinstance(string, tuple | list) else bool(string)


def extract() -> Catalog:
    template = Catalog(domain=DOMAIN)
    for pkg in PACKAGES:
        for filename, lineno, message, comments, context in extract_from_dir(
            ROOT / pkg, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            template.add(message, locations=[(f"{pkg}/{filename}", lineno)],
                         auto_comments=comments, context=context)
    return template


def main() -> int:
    missing = []
    for lang in LANGUAGES:
        template = extract()  # fresh per language: update() shares the template's messages
        path = po_path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with open(path, "rb") as fh:
                catalog = read_po(fh, locale=lang, domain=DOMAIN)
        else:
            catalog = Catalog(locale=lang, domain=DOMAIN, project="osec-triage",
                              copyright_holder="osec-triage contributors")
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        catalog.fuzzy = False
        for message in catalog:
            if not message.id:
                continue
            if lang == "en":
                message.string = message.id
            elif not translated(message.string):
                missing.append(message.id)
        with open(path, "wb") as fh:
            write_po(fh, catalog, width=100, sort_output=True, include_lineno=False)
    for m in missing:
        print(f"untranslated (vi): {m!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
