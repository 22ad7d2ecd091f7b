"""`triage bench NAME`: run one benchmark (or all) and write JSON + Markdown + PNG results."""

from __future__ import annotations

import importlib

import click

BENCHMARKS = ("hashing", "matching", "accuracy", "media_bank", "descriptor_search", "scan",
              "dask", "ingest", "service", "disks", "containers", "report")


@click.command("bench")
@click.argument("name", type=click.Choice((*BENCHMARKS, "all")))
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              help="Results go to OUT/NAME/.")
@click.option("--quick", is_flag=True, help="Small sizes, for a smoke run.")
def bench(name: str, out_dir: str, quick: bool) -> None:
    """Run benchmarks against peer tools in one process."""
    for bench_name in BENCHMARKS if name == "all" else (name,):
        module = importlib.import_module(f"benchmarks.{bench_name}")
        module.run(f"{out_dir}/{bench_name}", quick=quick)
