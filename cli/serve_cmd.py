"""`triage serve`: run the partner hash service; `triage serve keys ...`: manage its API keys.

Each command parses its options and calls one `service` function.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.bank_cmd import store_option
from hashing.errors import TriageError
from hashing.i18n import _, localise
from index.banks import default_store_dir


@click.group("serve", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--public", is_flag=True, help="Allow a non-loopback --host (TLS is the proxy's job).")
@click.option("--policy", "policy_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Scan policy TOML (match radii, quality floor, dihedral).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Service limits as JSON (see service/config.py for the keys).")
@store_option
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, public: bool, policy_path: str | None,
          config_path: str | None, store_dir: str | None) -> None:
    """Serve hash lookups and list submission over HTTP (hashes only, never media)."""
    ctx.ensure_object(dict)
    ctx.obj["store"] = store_dir or default_store_dir()
    if ctx.invoked_subcommand is not None:
        return
    from service.app import create_app
    from service.config import ServiceConfig
    from service.server import check_bind
    from service.server import serve as run
    from triage.policy import load_policy

    try:
        check_bind(host, public)
        config = ServiceConfig(**json.loads(Path(config_path).read_text())) if config_path \
            else ServiceConfig()
        app = create_app(ctx.obj["store"], config, load_policy(Path(policy_path)) if policy_path
                         else None)
    except (TriageError, TypeError, ValueError) as e:
        raise click.ClickException(localise(e)) from None
    click.echo(_("serving {store} on http://{host}:{port}").format(
        store=ctx.obj["store"], host=host, port=port), err=True)
    run(app, host, port, public)


@serve.group("keys")
def keys() -> None:
    """API keys: add (printed once), list, revoke."""


def _db(ctx: click.Context):  # type: ignore[no-untyped-def]
    from index.banks import BankStore
    from service.keys import ServiceDB

    BankStore(ctx.obj["store"]).close()  # the store directory, created private when new
    return ServiceDB(ctx.obj["store"])


@keys.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(("partner", "lookup", "admin")), required=True)
@click.option("--bank", "banks", multiple=True,
              help="partner: a bank it may submit to; lookup: a bank it may see (repeatable).")
@click.pass_context
def add(ctx: click.Context, name: str, role: str, banks: tuple[str, ...]) -> None:
    """Create key NAME and print it once (only its SHA-256 is stored)."""
    try:
        db = _db(ctx)
        key = db.add_key(name, role, banks)
        db.close()
    except TriageError as e:
        raise click.ClickException(localise(e)) from None
    click.echo(key)
    click.echo(_("key {name} ({role}) created; it is shown only now").format(
        name=name, role=role), err=True)


@keys.command("list")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text")
@click.pass_context
def list_keys(ctx: click.Context, fmt: str) -> None:
    """List keys (names, roles, banks; never the keys)."""
    db = _db(ctx)
    found = db.keys()
    db.close()
    if fmt == "json":
        click.echo(json.dumps([k.to_dict() for k in found], indent=2))
        return
    for k in found:
        state = _("revoked {when}").format(when=k.revoked_at) if k.revoked_at else _("active")
        click.echo(f"{k.name}\t{k.role}\t{','.join(k.banks) or '*'}\t{state}")


@keys.command("revoke")
@click.argument("name")
@click.pass_context
def revoke(ctx: click.Context, name: str) -> None:
    """Revoke key NAME (effective at the service's next request)."""
    try:
        db = _db(ctx)
        db.revoke(name)
        db.close()
    except TriageError as e:
        click.echo(f"triage: {localise(e)}", err=True)
        sys.exit(1)
    click.echo(_("key {name} revoked").format(name=name))
