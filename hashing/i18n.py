"""Message catalogs: every text an analyst reads (report, CLI summaries and errors, built-in
category labels) in English or Vietnamese, through standard gettext catalogs.

The catalogs are `hashing/locale/<lang>/LC_MESSAGES/osec_triage.po`, kept in the repository
and compiled to `.mo` by `make` (pybabel compile). A fresh clone that was never built, or a
`.po` edited since its `.mo`, still works: the `.po` is compiled in memory with Babel, so the
language never silently falls back to English. Only labels and text are translated; data
fields (paths, hashes, tiers, category labels stored in the outputs) stay as they are.

Errors are raised in English with their template kept (`tr`, a `Text`): what a library stores
or writes (manifest reasons, JSON import reports, audit lines) stays English whatever the
language, and the CLI shows the same error in the chosen language (`localise`).

It lives in `hashing` because every layer above (index, triage, cli) has text to translate
and `hashing` is the one package all of them may import.
"""

from __future__ import annotations

import gettext as _gettext
import io
import os
from pathlib import Path
from typing import Any

DOMAIN = "osec_triage"
LANGUAGES = ("en", "vi")
DEFAULT = "en"
LOCALE_DIR = Path(__file__).with_name("locale")

_loaded: dict[str, _gettext.NullTranslations] = {}
_current = DEFAULT


class LanguageError(ValueError):
    """An unsupported `--lang` value."""


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(lang: str) -> Path:
    return po_path(lang).with_suffix(".mo")


def _load(lang: str) -> _gettext.NullTranslations:
    po, mo = po_path(lang), mo_path(lang)
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with open(mo, "rb") as fh:
            return _gettext.GNUTranslations(fh)
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with open(po, "rb") as fh:
        catalog = read_po(fh, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def translations(lang: str) -> _gettext.NullTranslations:
    if lang not in LANGUAGES:
        raise LanguageError(f"language {lang!r}: one of {', '.join(LANGUAGES)}")
    if lang not in _loaded:
        _loaded[lang] = _load(lang)
    return _loaded[lang]


def from_environment() -> str:
    """The first supported language named by LANGUAGE, LC_ALL, LC_MESSAGES or LANG."""
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        for part in os.environ.get(var, "").split(":"):
            code = part.split(".")[0].split("_")[0].lower()
            if code in LANGUAGES:
                return code
            if code:
                return DEFAULT  # a locale is set, just not one we translate to
    return DEFAULT


def set_language(lang: str | None) -> str:
    """Use `lang` (or the locale's language when None) for every message from now on."""
    global _current
    chosen = from_environment() if lang is None else lang.lower().split("_")[0]
    translations(chosen)
    _current = chosen
    return chosen


def language() -> str:
    return _current


def _(message: str) -> str:
    """The current language's text for `message`."""
    return translations(_current).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for the catalogs without translating it (stored data stays English)."""
    return message


class Text(str):
    """English text that keeps its message template and fields, so it can be shown again in
    another language (`localise`) while everything stored stays English."""

    template: str
    fields: dict[str, Any]

    def __new__(cls, template: str, fields: dict[str, Any]) -> Text:
        obj = super().__new__(cls, template.format(**fields))
        obj.template = template
        obj.fields = fields
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # workers send errors back to the parent
        return (Text, (self.template, self.fields))


def tr(template: str, **fields: Any) -> Text:
    """A message for the catalogs (extracted like `_`), formatted in English now and
    translatable later: `raise BankError(tr("no bank named {name!r}", name=n))`."""
    return Text(template, fields)


def localise(value: object) -> str:
    """`value` (a `Text`, an error raised with one, or anything else) in the current language.
    Fields that are themselves `Text` (a reason inside "{path}: {reason}") are translated too."""
    if isinstance(value, BaseException):
        args = value.args
        if len(args) == 1 and isinstance(args[0], Text):
            return localise(args[0])
        return str(value)
    if isinstance(value, Text):
        fields = {k: localise(v) if isinstance(v, Text | BaseException) else v
                  for k, v in value.fields.items()}
        return _(value.template).format(**fields)
    return str(value)
