"""The `triage` console script: a group whose subcommands are imported only when used,

so `triage hash` does not pay for importing FAISS or Dask.
"""

from __future__ import annotations

import importlib

import click

from hashing.i18n import LANGUAGES, set_language

# name -> "module:attribute"; a new command is one new *_cmd.py plus one line here.
COMMANDS: dict[str, str] = {
    "hash": "cli.hash_cmd:hash_cmd",
    "bank": "cli.bank_cmd:bank",
    "scan": "cli.scan_cmd:scan",
    "demo": "cli.scan_cmd:demo",
    "fixtures": "cli.fixtures_cmd:fixtures",
    "bench": "cli.bench_cmd:bench",
    "serve": "cli.serve_cmd:serve",
    "review": "cli.review_cmd:review",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="osec-triage")
@click.option("--lang", type=click.Choice(LANGUAGES), default=None,
              help="Language of the report and messages (default: the locale's, else en).")
def cli(lang: str | None) -> None:
    """Triage media against known-material hash banks. Never displays content."""
    set_language(lang)


if __name__ == "__main__":
    cli()
