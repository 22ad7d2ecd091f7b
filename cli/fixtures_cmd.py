"""`triage fixtures make`: generate deterministic synthetic test data (never real material)."""

from __future__ import annotations

import click

KIND_CHOICES = ("all", "photos", "edits", "videos", "evidence", "lists", "hostile", "demo")


@click.group()
def fixtures() -> None:
    """Generate synthetic photos, edits, videos, evidence folders, hash lists and a demo case."""


@fixtures.command("make")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same bytes.")
@click.option("--images", type=int, default=24, show_default=True, help="Photos per set.")
@click.option("--videos", type=int, default=2, show_default=True, help="Videos per set.")
@click.option("--kind", "kinds", type=click.Choice(KIND_CHOICES), multiple=True, default=("all",),
              show_default=True, help="Which set to write; repeat for several.")
@click.option("--quick", is_flag=True, help="Thumbnail sizes and short videos (for tests).")
@click.option("--sparse-gb", type=float, default=0.0, show_default=True,
              help="Add a sparse file of this many GiB to the hostile set.")
def make(out: str, seed: int, images: int, videos: int, kinds: tuple[str, ...], quick: bool,
         sparse_gb: float) -> None:
    """Write fixture sets under OUT (each set into its own new folder)."""
    from synthetic_fixtures.make import KINDS, make_fixtures

    chosen = KINDS if "all" in kinds else tuple(k for k in KINDS if k in kinds)
    try:
        summary = make_fixtures(out, seed=seed, images=images, videos=videos, kinds=chosen,
                                quick=quick, sparse_bytes=int(sparse_gb * 1024**3))
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    counts = summary["counts"]
    assert isinstance(counts, dict)
    for name, n in counts.items():
        click.echo(f"{name:9s} {n}")
    click.echo(f"wrote {out}/fixtures.json")
