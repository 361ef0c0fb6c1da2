"""`orbox api-keys add|list|revoke`: manage the per-device API keys of the box."""

from __future__ import annotations

import json

import click

from appliance.api.keys import PRIORITIES, KeysError, KeyStore

DEFAULT_KEYS_FILE = "/var/lib/orbox/api-keys.json"
_KEYS_OPTION = click.option("--keys", "keys_file", default=DEFAULT_KEYS_FILE, show_default=True,
                            type=click.Path(dir_okay=False), help="Keys file (the one `orbox serve --keys` reads).")


@click.group("api-keys")
def api_keys() -> None:
    """Manage API keys, one per bedside device (stored as sha256 only)."""


@api_keys.command("add")
@click.argument("name")
@_KEYS_OPTION
@click.option("--priority", type=click.Choice(sorted(PRIORITIES)), default="normal", show_default=True,
              help="Admission priority of this device's requests when the LLM queue is contended.")
def add(name: str, keys_file: str, priority: str) -> None:
    """Create a key for device NAME and print it (only the key, once: it is not stored in clear)."""
    try:
        key = KeyStore(keys_file).add(name, priority)
    except KeysError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(key)


@api_keys.command("list")
@_KEYS_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_keys(keys_file: str, as_json: bool) -> None:
    """List device names, priorities and creation times (never the keys)."""
    try:
        keys = KeyStore(keys_file).load()
    except KeysError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = [{"name": k.name, "priority": k.priority, "created": k.created, "sha256_prefix": k.sha256[:12]}
            for k in keys.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no keys in {keys_file}", err=True)
    for row in rows:
        click.echo(f"{row['name']:<24} {row['priority']:<7} {row['created']}  sha256:{row['sha256_prefix']}…")


@api_keys.command("revoke")
@click.argument("name")
@_KEYS_OPTION
def revoke(name: str, keys_file: str) -> None:
    """Delete device NAME's key; a running server refuses it from its next request."""
    try:
        KeyStore(keys_file).revoke(name)
    except KeysError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked {name}", err=True)
