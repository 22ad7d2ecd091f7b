"""`triage review import`: feed an analyst's decisions back into a case (and a local bank)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hashing.errors import TriageError
from hashing.i18n import _, localise


@click.group("review")
def review() -> None:
    """Analysts' decisions: import grades into a case, regenerate its outputs."""


@review.command("import")
@click.argument("decisions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--case", "case_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path), help="The scanned case.")
@click.option("--to-bank", "to_bank", default=None,
              help="Local bank that receives the confirmed items (created if new).")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Bank store (default: the one the case was scanned with).")
@click.option("--scheme", default=None,
              help="Category scheme of numeric decisions: vic, caid or a JSON scheme file.")
def import_cmd(decisions: Path, case_dir: Path, to_bank: str | None, store_dir: Path | None,
               scheme: str | None) -> None:
    """Import DECISIONS (CSV or VICS JSON) into a case: all or nothing."""
    from triage.pipeline import regenerate_outputs
    from triage.review.decisions import DecisionsRejectedError
    from triage.review.importer import import_review

    try:
        result = import_review(decisions, case_dir, store_dir, to_bank, scheme,
                               regenerate=regenerate_outputs)
    except DecisionsRejectedError as e:
        for r in e.rejected:
            click.echo(f"{decisions}:{r.line}: {r.reason}", err=True)
        click.echo(f"triage: {localise(e)}", err=True)
        sys.exit(2)
    except TriageError as e:
        raise click.ClickException(localise(e)) from None
    kinds = ", ".join(f"{k}={v}" for k, v in sorted(result.by_kind.items()))
    click.echo(_("{n} decisions stored in {case} ({kinds})").format(
        n=result.decisions, case=case_dir, kinds=kinds or "-"))
    if result.false_positives_recorded:
        click.echo(_("{n} false positives recorded on bank entries").format(
            n=result.false_positives_recorded))
    if result.to_bank is not None:
        click.echo(_("bank {bank}: {added} added, {updated} updated, {unchanged} unchanged").format(
            bank=result.to_bank.bank, added=result.to_bank.added,
            updated=result.to_bank.updated, unchanged=result.to_bank.unchanged))
    click.echo(_("outputs regenerated: {path}").format(path=case_dir / "report.html"))
