"""`triage bank ...`: manage known-material banks (import, list, show, export, retract, ...).

Each command parses its options and calls one `index.banks.BankStore` method. Exit status 2
means an import was rejected (nothing written); 1 any other refusal.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from hashing.errors import TriageError
from hashing.i18n import _, localise
from index.bank_export import FORMATS as EXPORT_FORMATS
from index.bank_import import PARSERS, ImportOptions, validate_file
from index.bank_types import BankDetail, BankInfo, ImportRejectedError, ImportResult
from index.banks import BankStore

F = TypeVar("F", bound=Callable[..., Any])


def store_option(f: F) -> F:
    return click.option(
        "--store",
        "store_dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Store directory (default $TRIAGE_STORE, else $XDG_DATA_HOME/osec-triage).",
    )(f)


def _open(store_dir: str | None) -> BankStore:
    logging.basicConfig(level=logging.WARNING, format="triage: %(message)s", stream=sys.stderr)
    return BankStore(store_dir)


def _fail(e: TriageError) -> click.ClickException:
    return click.ClickException(localise(e))


def _counts(result: ImportResult, *, history: bool = True) -> str:
    """One line of what an import did (a partner list's import also retracts and reinstates)."""
    text = _("bank {bank}: {added} added, {updated} updated, {unchanged} unchanged").format(
        bank=result.bank, added=result.added, updated=result.updated,
        unchanged=result.unchanged)
    if history:
        text += _(", {repeated} repeated, {retracted} retracted, {reinstated} reinstated, "
                  "{rejected} rejected").format(
            repeated=result.duplicates, retracted=result.retracted,
            reinstated=result.reinstated, rejected=len(result.rejected))
    else:
        text += _(", {n} not imported").format(n=len(result.rejected))
    if result.report_path:
        text += _(" (report: {path})").format(path=result.report_path)
    return text


@click.group("bank")
def bank() -> None:
    """Known-material hash banks: import lists, inspect, export, retract, enable/disable."""


@bank.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--bank", "bank_name", required=True, help="Bank to import into (created if new).")
@click.option(
    "--format", "fmt", type=click.Choice(("auto", *PARSERS)), default="auto", show_default=True
)
@click.option("--algo", default=None, help="Algorithm of a plain hash list (needed for 64/16 hex).")
@click.option("--category", default=None, help="Category label for records that carry none.")
@click.option("--known-good", is_flag=True, help="The list is known-good (NSRL-style).")
@click.option("--source", default=None, help="Source organisation.")
@click.option("--version", "list_version", default=None, help="List version.")
@click.option("--scheme", default=None, help="Category scheme: vic, caid or a JSON scheme file.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid records, report the rest.")
@click.option(
    "--replace",
    is_flag=True,
    help="The list is the bank's full new version: retract entries it no longer holds"
    " (needs --version; kept in the history with the version that dropped them).",
)
@click.option("--report", "report", default=None, help="JSON report path.")
@store_option
def import_cmd(
    file: str,
    bank_name: str,
    fmt: str,
    algo: str | None,
    category: str | None,
    known_good: bool,
    source: str | None,
    list_version: str | None,
    scheme: str | None,
    skip_invalid: bool,
    replace: bool,
    report: str | None,
    store_dir: str | None,
) -> None:
    """Import hash list FILE into a bank (all-or-nothing unless --skip-invalid)."""
    options = ImportOptions(
        bank=bank_name,
        format=fmt,
        algo=algo.lower() if algo else None,
        category=category,
        known_good=known_good,
        source=source,
        version=list_version,
        scheme=scheme,
        skip_invalid=skip_invalid,
        replace=replace,
    )
    if source is None or list_version is None:
        missing = " and ".join(n for n, v in (("--source", source), ("--version", list_version))
                               if v is None)
        click.echo(_("warning: no {missing}: the bank's provenance will be empty in reports "
                     "and exports").format(missing=missing), err=True)
    try:
        with _open(store_dir) as store:
            result = store.import_file(file, options, report)
    except ImportRejectedError as e:
        _print_rejected(e.result)
        click.echo(_("triage: {error}; nothing imported (report: {path})").format(
            error=localise(e), path=e.result.report_path), err=True)
        sys.exit(2)
    except TriageError as e:
        raise _fail(e) from None
    _print_rejected(result)
    click.echo(_counts(result))


@bank.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(("auto", *PARSERS)), default="auto", show_default=True
)
@click.option("--algo", default=None, help="Algorithm of a plain hash list (needed for 64/16 hex).")
@click.option("--scheme", default=None, help="Category scheme: vic, caid or a JSON scheme file.")
@click.option("--report", "report", default=None, help="Also write the JSON report here.")
def validate_cmd(
    file: str, fmt: str, algo: str | None, scheme: str | None, report: str | None
) -> None:
    """Check hash list FILE as an import would and print its JSON report; writes nothing.

    Exit status 0 when every record is valid, 2 when any is rejected or the file unreadable.
    """
    options = ImportOptions(
        bank="", format=fmt, algo=algo.lower() if algo else None, scheme=scheme
    )
    try:
        result = validate_file(file, options)
    except TriageError as e:
        raise _fail(e) from None
    text = json.dumps(result.to_dict(), indent=2)
    if report:
        with open(report, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    click.echo(text)
    if result.status != "valid":
        sys.exit(2)


@bank.command("attach")
@click.argument("database", type=click.Path(exists=True, dir_okay=False))
@click.option("--bank", "bank_name", required=True, help="Name of the known-good bank.")
@click.option("--source", default=None, help="Source organisation (e.g. NIST NSRL).")
@click.option("--version", "list_version", default=None, help="Publication, e.g. 2024.03.1.")
@store_option
def attach_cmd(database: str, bank_name: str, source: str | None, list_version: str | None,
               store_dir: str | None) -> None:
    """Attach NSRL RDSv3 DATABASE as a known-good bank, read in place and read-only.

    Nothing is copied: digest lookups ask the publication itself (a sidecar in the store holds
    the digest columns it has no index on). Attach again to take a new publication.
    """
    try:
        with _open(store_dir) as store:
            info = store.attach(database, bank_name, source, list_version)
    except TriageError as e:
        raise _fail(e) from None
    click.echo(_("bank {bank}: {database} attached in place (read-only), {algorithms}").format(
        bank=info.name, database=database, algorithms=",".join(info.algorithms)))


@bank.command("import-media")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--bank", "bank_name", required=True, help="Bank to import into (created if new).")
@click.option("--category", default=None, help="Category label of every file.")
@click.option("--categories", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CSV of path,category (paths relative to FOLDER).")
@click.option("--known-good", is_flag=True, help="The media are known-good.")
@click.option("--source", default=None, help="Source (e.g. the case the media were graded in).")
@click.option("--version", "list_version", default=None, help="Version of this holding.")
@click.option("--workers", type=int, default=None, help="Hashing processes (default: cores; 0 = in this process).")
@store_option
def import_media_cmd(folder: str, bank_name: str, category: str | None,
                     categories: str | None, known_good: bool, source: str | None,
                     list_version: str | None, workers: int | None,
                     store_dir: str | None) -> None:
    """Hash the reference media in FOLDER (read-only, archives included) into a media bank:
    digests, PDQ, pHash, sub-window PDQs and local features. Entry ids are paths relative
    to FOLDER. Sub-window PDQs and local features never leave the store."""
    from triage.media_import import MediaImportOptions, import_media

    options = MediaImportOptions(bank=bank_name, category=category, categories=categories,
                                 source=source, version=list_version, known_good=known_good,
                                 workers=workers)
    _import_into_store(store_dir, lambda store: import_media(store, folder, options))


def _import_into_store(store_dir: str | None, run: Callable[[BankStore], ImportResult]) -> None:
    """Run one media or store import and print what it rejected and what it did."""
    try:
        with _open(store_dir) as store:
            result = run(store)
    except TriageError as e:
        raise _fail(e) from None
    _print_rejected(result)
    click.echo(_counts(result, history=False))


def _print_rejected(result: ImportResult) -> None:
    if result.error:
        click.echo(f"{result.file}: {localise(result.error)}", err=True)
    for r in result.rejected:
        item = _(" (media #{n})").format(n=r.item) if r.item is not None else ""
        click.echo(f"{result.file}:{r.line}{item}: {r.reason}", err=True)
    for note, count in sorted(result.notes.items()):
        click.echo(_("note: {note} ({count}x)").format(note=note, count=count), err=True)


@bank.command("list")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text")
@store_option
def list_cmd(fmt: str, store_dir: str | None) -> None:
    """List the banks."""
    try:
        with _open(store_dir) as store:
            banks = store.list_banks()
    except TriageError as e:
        raise _fail(e) from None
    if fmt == "json":
        click.echo(json.dumps([b.to_dict() for b in banks], indent=2))
        return
    for b in banks:
        click.echo(_line(b))


def _line(b: BankInfo) -> str:
    state = _("enabled") if b.enabled else _("disabled")
    kind = _("known-good") if b.known_good else _("known-bad")
    entries = _("{n} entries").format(n=b.entries)
    return (
        f"{b.name}\t{entries}\t{','.join(b.algorithms) or '-'}\t{state}\t{kind}"
        f"\tsource={b.source or '-'}\tversion={b.version or '-'}"
    )


@bank.command("show")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text")
@store_option
def show_cmd(name: str, fmt: str, store_dir: str | None) -> None:
    """Show one bank: provenance, entries per algorithm, import history."""
    try:
        with _open(store_dir) as store:
            detail = store.show(name)
    except TriageError as e:
        raise _fail(e) from None
    if fmt == "json":
        click.echo(json.dumps(detail.to_dict(), indent=2))
        return
    click.echo(_show_text(detail))


def _table(headers: list[str], rows: list[list[object]]) -> str:
    """Plain aligned columns (a terminal table; `--format json` is for programs)."""
    cells = [headers, *[["-" if v is None else str(v) for v in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _show_text(detail: BankDetail) -> str:
    i = detail.info
    facts = [
        (_("bank"), i.name), (_("kind"), _("known-good") if i.known_good else _("known-bad")),
        (_("enabled"), _("yes") if i.enabled else _("no")), (_("source"), i.source or "-"),
        (_("version"), i.version or "-"), (_("list"), i.list_name or "-"),
        (_("scheme"), i.scheme or "-"), (_("imported"), i.imported_at),
        (_("active entries"), i.entries), (_("retracted"), i.retracted),
        (_("false positives"), i.false_positives),
    ]
    width = max(len(k) for k, _v in facts)
    parts = ["\n".join(f"{k.ljust(width)}  {v}" for k, v in facts), ""]
    parts.append(_table([_("algorithm"), _("entries")],
                        [[a, n] for a, n in detail.per_algorithm.items()]))
    if detail.imports:
        parts += ["", _table(
            [_("imported"), _("format"), _("version"), _("added"), _("updated"), _("unchanged"),
             _("rejected"), _("file")],
            [[h.imported_at, h.format, h.version, h.added, h.updated, h.unchanged, h.rejected,
              h.file] for h in detail.imports])]
    if detail.false_positives:
        parts += ["", _("Entries analysts graded false positive (the policy quarantines an "
                        "entry at its threshold):"),
                  _table([_("entry"), _("false positives")],
                         [[e, n] for e, n in detail.false_positives])]
    return "\n".join(parts)


@bank.command("export")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice((*EXPORT_FORMATS, "store")), required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, help="Default stdout.")
@store_option
def export_cmd(name: str, fmt: str, out: str | None, store_dir: str | None) -> None:
    """Export a bank's active hashes and labels (never content) as a list partners can import.

    `--format store` writes the whole bank, media-bank signatures included, for another store
    of this tool only (`bank import-store`); it is as sensitive as the media."""
    try:
        with _open(store_dir) as store:
            if fmt == "store":
                from index.store_transfer import export_bank

                if out is None:
                    raise click.UsageError(_("--format store needs --out FILE"))
                n = export_bank(store, name, out)
            elif out is None:
                n = store.export(name, fmt, sys.stdout)
            else:
                with open(out, "w", encoding="utf-8", newline="") as f:
                    n = store.export(name, fmt, f)
    except TriageError as e:
        raise _fail(e) from None
    click.echo(_("exported {n} records").format(n=n), err=True)


@bank.command("import-store")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--bank", "bank_name", default=None, help="Bank to import into (default: its name).")
@store_option
def import_store_cmd(file: str, bank_name: str | None, store_dir: str | None) -> None:
    """Import a bank exported by another store of this tool (`bank export --format store`)."""
    from index.store_transfer import import_bank

    _import_into_store(store_dir, lambda store: import_bank(store, file, bank_name))


@bank.command("retract")
@click.argument("name")
@click.option("--hash", "hashes", multiple=True, help="Hash to retract (repeatable).")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--reason", default=None, help="Why (kept in the history).")
@click.option("--whole-item", is_flag=True,
              help="Retract every hash of the item (same entry id) a given hash belongs to.")
@store_option
def retract_cmd(
    name: str, hashes: tuple[str, ...], file: str | None, reason: str | None, whole_item: bool,
    store_dir: str | None,
) -> None:
    """Retract entries: kept in the history, never matched again."""
    if bool(hashes) == bool(file):
        raise click.UsageError(_("give --hash H (repeatable) or --file F"))
    try:
        with _open(store_dir) as store:
            if file:
                result = store.retract_file(name, file, reason, whole_item)
            else:
                result = store.retract(name, hashes, reason, whole_item)
    except TriageError as e:
        raise _fail(e) from None
    for h in result.not_found:
        click.echo(_("not in bank {name}: {hash}").format(name=name, hash=h), err=True)
    click.echo(_("retracted {n} entries").format(n=result.retracted))
    if result.not_found:
        sys.exit(1)


@bank.command("enable")
@click.argument("name")
@store_option
def enable_cmd(name: str, store_dir: str | None) -> None:
    """Match against this bank again."""
    _set(name, True, store_dir)


@bank.command("disable")
@click.argument("name")
@store_option
def disable_cmd(name: str, store_dir: str | None) -> None:
    """Stop matching against this bank (entries kept)."""
    _set(name, False, store_dir)


def _set(name: str, enabled: bool, store_dir: str | None) -> None:
    try:
        with _open(store_dir) as store:
            info = store.set_enabled(name, enabled)
    except TriageError as e:
        raise _fail(e) from None
    click.echo(_line(info))


@bank.command("rebuild")
@store_option
def rebuild_cmd(store_dir: str | None) -> None:
    """Rebuild every perceptual index file from the stored entries."""
    try:
        with _open(store_dir) as store:
            infos = store.rebuild()
    except TriageError as e:
        raise _fail(e) from None
    for info in infos:
        click.echo(
            f"{info.algorithm}\t" + _("{rows} rows").format(rows=info.rows) + "\t"
            + _("{n} entries").format(n=info.entries) + f"\t{info.sha256 or '-'}"
        )
