"""`orbox serve`, `orbox audit verify`, `orbox mcu-sim` (and, from issue 7, `orbox api-keys`)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import click

EXIT_THERMAL_SHUTDOWN = 75  # systemd units list it in RestartPreventExitStatus: do not re-heat the box


@click.command("serve")
@click.option("--profile", "profile_name", required=True, help="Hardware profile name or TOML path.")
@click.option("--bundle", "bundle_dir", required=True, type=click.Path(file_okay=False),
              help="Model bundle directory (manifest.json + models).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Site config (TOML).")
@click.option("--video-source", help="synthetic, a video file, or /dev/videoN (overrides the config).")
@click.option("--host", help="Address of the local API (overrides http.host; default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port of the local API (overrides http.port; 0: any free).")
@click.option("--keys", "keys_file", type=click.Path(dir_okay=False), help="API keys file (overrides http.keys_file).")
@click.option("--allow-missing-sensors", is_flag=True,
              help="Start even if a sensor the profile requires (thermal.required_sensors) is missing: bench work "
                   "only, never in an operating room.")
@click.option("--kb", "kb_dirs", multiple=True, type=click.Path(file_okay=False),
              help="Knowledge base directory to serve as kb:<name> (repeatable; added to kb.paths).")
def serve(profile_name: str, bundle_dir: str, config_path: str | None, video_source: str | None,
          host: str | None, port: int | None, keys_file: str | None, allow_missing_sensors: bool,
          kb_dirs: tuple[str, ...]) -> None:
    """Run the box: video, encoder and LLM workers under supervision, watchdogs and thermal governor.

    Stops cleanly on SIGTERM/SIGINT (bounded by supervisor.shutdown_timeout_s) and on a thermal
    critical (exit status 75). The live status is written to supervisor.status_file.
    """
    from appliance.config import ConfigError, load_config
    from hw_profiles import ProfileError, load_profile

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        profile = load_profile(profile_name)
        config = load_config(config_path)
    except (ProfileError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    if video_source:
        config = config.model_copy(update={"video": config.video.model_copy(update={"source": video_source})})
    http = {k: v for k, v in (("host", host), ("port", port), ("keys_file", keys_file)) if v is not None}
    config = config.model_copy(update={"http": config.http.model_copy(update=http)})
    kb_paths = [*config.kb.paths, *map(Path, kb_dirs)]
    config = config.model_copy(update={"kb": config.kb.model_copy(update={"paths": kb_paths})})
    from appliance.api.server import Listen, ServerError, check_listen

    try:
        check_listen(Listen(config.http.host, config.http.port, config.http.tls_cert, config.http.tls_key))
    except ServerError as exc:
        raise click.ClickException(str(exc)) from exc
    exit_code = _run_supervisor(profile, profile_name, bundle_dir, config, allow_missing_sensors)
    sys.exit(exit_code)


def _run_supervisor(profile, profile_name: str, bundle_dir: str, config, allow_missing_sensors: bool) -> int:
    from appliance.audit import AuditError
    from appliance.supervisor import Supervisor, keep_off_video_cores
    from appliance.thermal_census import MissingSensorError
    from hw_profiles.loader import resolve_profile_path

    try:
        supervisor = Supervisor(profile, bundle_dir, config, allow_missing_sensors=allow_missing_sensors)
    except AuditError as exc:
        raise click.ClickException(str(exc)) from exc
    except MissingSensorError as exc:
        path = resolve_profile_path(profile_name)
        raise click.ClickException("\n".join(f"{path}: {line}" for line in str(exc).splitlines())) from exc
    stop_signal = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        supervisor.request_shutdown(f"signal {signal.Signals(signum).name}")
        stop_signal.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    keep_off_video_cores(profile)
    supervisor.start()
    click.echo(f"orbox serve: profile {profile.name}, bundle {bundle_dir}, status {config.status_path}, "
               f"audit {config.audit_path}", err=True)
    supervisor.kbs.open_all(config.kb.paths, config.kb.pubkey)  # while the workers start, before the API
    for name, (path, reason) in supervisor.kbs.refused.items():
        click.echo(f"orbox serve: knowledge base {path} refused (kb:{name}): {reason}", err=True)
    http = _start_http(supervisor, profile, config)
    while not supervisor.shutdown_requested.wait(0.5):
        pass
    if http is not None:
        http.stop()
    supervisor.kbs.close()
    took = supervisor.stop(supervisor.shutdown_reason or "requested")
    click.echo(f"orbox serve: stopped in {took:.2f}s ({supervisor.shutdown_reason})", err=True)
    thermal = (supervisor.shutdown_reason or "").startswith("thermal")
    return EXIT_THERMAL_SHUTDOWN if thermal else 1 if http is None else 0


def _start_http(supervisor, profile, config):
    """The local API (appliance.api) on top of the running supervisor; None if it cannot listen."""
    from appliance.api.keys import KeyStore
    from appliance.api.server import HttpServer, Listen, ServerError
    from appliance.api.settings import ApiSettings

    http = config.http
    settings = ApiSettings(deadline_s=http.deadline_s, admission_slots=profile.llm.parallel,
                           max_waiting=http.max_waiting, preview_fps=config.video.preview_fps)
    try:
        server = HttpServer(supervisor, Listen(http.host, http.port, http.tls_cert, http.tls_key),
                            KeyStore(config.keys_path), settings)
        listen = server.start()
    except ServerError as exc:
        supervisor.request_shutdown(f"http: {exc}")
        click.echo(f"Error: {exc}", err=True)
        return None
    click.echo(f"orbox serve: API on {listen.url} (keys {config.keys_path}), status page {listen.url}/status",
               err=True)
    return server


@click.group("audit")
def audit() -> None:
    """Inspect the hash-chained audit log."""


@audit.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
def audit_verify(file: str) -> None:
    """Check every record's hash and the chain; exit 1 naming the first bad line."""
    from appliance.audit import verify_log

    count, problems = verify_log(file)
    for problem in problems:
        click.echo(f"FAIL {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"OK {file}: {count} records, chain intact")


@click.command("mcu-sim")
@click.option("--link", type=click.Path(dir_okay=False), help="Create this symlink to the pty (e.g. ./mcu.tty).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="MCU watchdog timeout before it resets the host (seconds).")
@click.option("--temps", default="40", show_default=True,
              help="Comma-separated sensor temperatures in C ('fault' for a broken sensor).")
@click.option("--temps-file", type=click.Path(dir_okay=False),
              help="JSON list of temperatures (null = fault), re-read on every request; overrides --temps.")
@click.option("--events", "events_file", type=click.Path(dir_okay=False),
              help="Append one JSON line per event (feed, bad_frame, set_fan, watchdog_reset, ...).")
def mcu_sim(link: str | None, timeout_s: float, temps: str, temps_file: str | None, events_file: str | None) -> None:
    """Simulate the board MCU (watchdog, temperatures, fan) on a pseudo-terminal."""
    from appliance.mcu_sim import McuSimulator, serve_pty

    try:
        values = [None if item.strip() == "fault" else float(item) for item in temps.split(",")]
    except ValueError as exc:
        raise click.BadParameter(f"expected numbers or 'fault' separated by commas, got {temps!r}",
                                 param_hint="--temps") from exc
    simulator = McuSimulator(timeout_s=timeout_s, temps=values, temps_file=Path(temps_file) if temps_file else None,
                             events_file=Path(events_file) if events_file else None)
    serve_pty(simulator, Path(link) if link else None, on_ready=lambda line: click.echo(line, err=True))


def __getattr__(name: str):
    """`orbox api-keys` lives next to the HTTP layer; import it (and FastAPI) only when it is used."""
    if name == "api_keys":
        from appliance.api.keys_cli import api_keys

        return api_keys
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
