"""`orbox fleet run` (the unit's long-running client) and `orbox fleet status` (for a service engineer)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading

import click


def _load(config_path: str | None):
    from appliance.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("fleet")
def fleet() -> None:
    """The hawkBit DDI client: off unless [fleet] in the site config names a server and a target token."""


@fleet.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Site config (TOML).")
@click.option("--profile", "profile_name", required=True, help="This image's hardware profile (device attribute).")
@click.option("--image-version", required=True, help="This image's version (device attribute).")
@click.option("--once", is_flag=True, help="One poll cycle, then exit (commissioning check).")
def run(config_path: str | None, profile_name: str, image_version: str, once: bool) -> None:
    """Poll the server; install deployments through RAUC; report each after the new slot's mark-good."""
    from appliance.fleet.agent import Box, FleetAgent
    from appliance.fleet.attributes import device_attributes
    from appliance.fleet.ddi import DdiClient, DdiError
    from appliance.fleet.pending import PendingError
    from appliance.fleet.rauc import RaucCli, RaucError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    config = _load(config_path)
    settings = config.fleet
    if not settings.enabled:
        click.echo(f"orbox fleet: off ({config_path or 'no config'} has no [fleet] server_url and target_token); "
                   f"nothing to do", err=True)
        return
    client = DdiClient(settings.server_url, settings.tenant, settings.controller_id,
                       settings.target_token.get_secret_value(), timeout_s=settings.timeout_s, ca_file=settings.ca_file)
    box = Box(RaucCli(), lambda status: device_attributes(profile_name, image_version, status))
    agent = FleetAgent(settings, client, box, settings.work_dir)
    click.echo(f"orbox fleet: controller {settings.controller_id} at {client.base_url}, work dir {settings.work_dir}",
               err=True)
    if once:
        try:
            wait = agent.cycle()
        except (DdiError, RaucError, PendingError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"orbox fleet: one cycle done; the server asks for the next poll in {wait:.0f} s", err=True)
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent.run(stop)


@fleet.command("status")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Site config (TOML).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: str | None, as_json: bool) -> None:
    """Whether the client is on, its last poll, and the install waiting for its boot (never the token)."""
    config = _load(config_path)
    status_path = config.fleet.work_dir / "status.json"
    try:
        last = json.loads(status_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        last = None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{status_path}: unreadable ({exc})") from exc
    report = {"enabled": config.fleet.enabled, "server": config.fleet.server_url,
              "controller_id": config.fleet.controller_id, "last": last}
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    if not config.fleet.enabled:
        click.echo("fleet: off (no [fleet] server_url, controller_id and target_token in the site config)")
        return
    click.echo(f"fleet: on, controller {config.fleet.controller_id} at {config.fleet.server_url}")
    if last is None:
        click.echo(f"last poll: none yet ({status_path} does not exist)")
        return
    click.echo(f"last poll: {last['checked_at']}, next in {last['next_poll_s']:.0f} s"
               + (f", error: {last['last_error']}" if last["last_error"] else ""))
    pending = last["pending"]
    click.echo("pending install: none" if pending is None else
               f"pending install: action {pending['action_id']} version {pending['version']} to slot "
               f"{pending['target_slot']} ({pending['phase']}), reported after its boot and mark-good")
