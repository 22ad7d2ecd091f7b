"""`triage scan` and `triage demo`: parse arguments, call one library function, print a summary."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hashing.errors import TriageError
from hashing.i18n import _, localise


def _print_summary(summary: dict, outputs: dict[str, Path], noop: bool) -> None:
    from triage.reports.summary import banks_line, not_examined_line

    click.echo(not_examined_line(summary))
    click.echo(banks_line(summary))
    counts = summary["counts"]
    names = summary["tier_names"]
    click.echo(_("files: {files}  queue: {queue}  known-good: {good}  attention: {attention}")
               .format(files=summary["files"], queue=counts["queue"], good=counts["known_good"],
                       attention=counts["attention"])
               + (_("  (no change since the last scan)") if noop else ""))
    for tier, n in counts["tier"].items():
        click.echo(_("  tier {tier} {name}: {n}").format(tier=tier, name=names[tier], n=n))
    labels = {"category": _("confirmed categories"),
              "suggested_category": _("suggested categories (clusters)"),
              "decision": _("analysts' decisions"), "status": _("status")}
    for key, label in labels.items():
        if counts.get(key):
            click.echo(f"  {label}: " + ", ".join(
                f"{_(k) if key != 'status' else k}={v}" for k, v in counts[key].items()))
    matching = summary.get("matching") or {}
    if matching.get("algorithms"):
        click.echo(_("  matched with: {algorithms}").format(
            algorithms=", ".join(matching["algorithms"])))
    for algo in matching.get("unused_policy_radius", ()):
        click.echo(_("warning: the policy sets a radius for {algo}, which no enabled bank "
                     "holds").format(algo=algo), err=True)
    for name, path in outputs.items():
        click.echo(f"  {name}: {path}")
    report = outputs.get("report.html")
    if report is not None:
        click.echo(_("Open first: {path} (the queue by tier, filters and legend; every row is "
                     "in queue.csv)").format(path=report))
        click.echo(_("Audit log: {path}").format(path=report.parent / "audit.jsonl"))


class _Refused(click.ClickException):
    """A scan refused before it started (no store, no bank, a case directory that is not
    the tool's, evidence overlapping the case): exit 2, like a usage error."""

    exit_code = 2


@click.command("scan")
@click.argument("evidence", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--case", "case_dir", required=True, type=click.Path(path_type=Path),
              help="Case directory for the database, queue and reports: a new or empty "
                   "directory (created 0700) or an existing case of this tool.")
@click.option("--store", "store_dir", type=click.Path(path_type=Path), default=None,
              help="Bank store (default: $TRIAGE_STORE, else the XDG data dir).")
@click.option("--workers", type=int, default=None,
              help="Cores to use: hashing processes, then as many matching threads "
                   "(default: CPUs available; 0 hashes in-process).")
@click.option("--scheduler", default=None,
              help="Distributed scheduler address (Dask), instead of the local pool.")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="TOML policy file (radii, quality floor, tiers).")
@click.option("--decode", "decode_mode", type=click.Choice(["fast", "exact"]), default="fast",
              show_default=True, help="Image decode path for perceptual hashes.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Files per batch sent to a worker.")
@click.option("--tls-ca", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              default=None, help="CA certificate (PEM) of a tls:// scheduler's cluster.")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              default=None, help="This client's TLS certificate (PEM), signed by that CA.")
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              default=None, help="This client's TLS private key (PEM).")
@click.option("--insecure", is_flag=True, default=False,
              help="Allow a plain tcp:// scheduler that is not on loopback (evidence in clear).")
@click.option("--inventory", is_flag=True, default=False,
              help="Allow a store without enabled banks: a hashing-only inventory, nothing "
                   "is matched (without this flag such a scan is refused).")
@click.option("--local-links/--no-local-links", "local_links", default=None,
              help="Link the case's images by local features (crops, captions, screenshots, "
                   "collages of known-bad files into tier 1); default: the policy's "
                   "[cluster] local_links (on).")
def scan(evidence: tuple[Path, ...], case_dir: Path, store_dir: Path | None,
         workers: int | None, scheduler: str | None, policy_path: Path | None,
         decode_mode: str, batch_size: int, tls_ca: Path | None, tls_cert: Path | None,
         tls_key: Path | None, insecure: bool, inventory: bool,
         local_links: bool | None) -> None:
    """Hash EVIDENCE, match it against the banks and write a prioritised case queue.

    Refused (exit 2) when the store does not exist or has no enabled bank."""
    from tqdm import tqdm

    from triage.casedir import CaseRefused
    from triage.executor import TlsFiles
    from triage.pipeline import NoBanksError, ScanConfig, run_scan

    given = [p for p in (tls_ca, tls_cert, tls_key) if p is not None]
    if given and len(given) != 3:
        raise click.UsageError(_("--tls-ca, --tls-cert and --tls-key go together"))
    tls = TlsFiles(tls_ca, tls_cert, tls_key) if tls_ca and tls_cert and tls_key else None

    # disable=None: the bar shows on a terminal only, never in logs or pipes; the total
    # arrives when the count ahead of the walk is done, and with it an ETA.
    with tqdm(desc="walk+hash", unit="file", file=sys.stderr, disable=None) as bar:

        def total(n: int) -> None:
            bar.total = n
            bar.refresh()

        def stage(name: str, seconds: float) -> None:
            bar.write(f"  {name}: {seconds:.2f} s", file=sys.stderr)

        try:
            result = run_scan(ScanConfig(
                evidence=evidence, case_dir=case_dir, store_dir=store_dir, workers=workers,
                scheduler=scheduler, policy_path=policy_path, decode_mode=decode_mode,
                batch_size=batch_size, argv=tuple(sys.argv), progress=bar.update,
                inventory=inventory, progress_total=total, on_stage=stage, tls=tls,
                insecure=insecure, local_links=local_links,
            ))
        except (NoBanksError, CaseRefused) as exc:
            raise _Refused(localise(exc)) from exc
        except TriageError as exc:
            raise click.ClickException(localise(exc)) from exc
    _print_summary(result.summary, result.outputs, result.noop)


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("demo-output"),
              show_default=True, help="Where fixtures, the bank store and the case go.")
@click.option("--workers", type=int, default=None, help="Hashing processes.")
def demo(out_dir: Path, workers: int | None) -> None:
    """Generate synthetic evidence and banks, then run a whole scan on them."""
    from triage.demo import run_demo

    try:
        result = run_demo(out_dir, workers=workers)
    except TriageError as exc:
        raise click.ClickException(localise(exc)) from exc
    click.echo(_("evidence: {evidence}  store: {store}").format(
        evidence=result.evidence_dir, store=result.store_dir))
    _print_summary(result.scan.summary, result.scan.outputs, result.scan.noop)
