"""`orbox profile detect|list|show|validate|plan`: inspect SKUs, check a vendor's new one, size a model."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any, NoReturn

import click

from hw_profiles.detect import MachineInfo, detect_machine
from hw_profiles.errors import PlanError, ProfileError
from hw_profiles.loader import list_profiles, load_profile, resolve_profile_path
from hw_profiles.planner import LlmPlan, ModelConfigError, load_model_config, mib, plan_llm
from hw_profiles.ranking import ProfileFit, rank_profiles


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _echo_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True))


@click.group("profile")
def profile() -> None:
    """Box SKUs: what this machine is, what each profile holds, and what model fits it."""


@profile.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(as_json: bool) -> None:
    """The shipped profiles, one line each."""
    try:
        profiles = [load_profile(name) for name in list_profiles()]
    except ProfileError as exc:
        _fail(str(exc))
    if as_json:
        _echo_json([{"name": p.name, "vendor": p.vendor, "arch": p.cpu.arch,
                     "physical_cores": p.cpu.physical_cores, "memory_total_mb": p.memory.total_mb,
                     "accelerators": p.accelerators.kinds, "description": p.description} for p in profiles])
        return
    for p in profiles:
        click.echo(f"{p.name:<20} {p.cpu.arch:<8} {p.cpu.physical_cores:>3} cores "
                   f"{p.memory.total_mb // 1024:>4} GiB {p.accelerators.kind:<12} {p.description}")


@profile.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(name: str, as_json: bool) -> None:
    """Every setting of profile NAME (a shipped name or a .toml path)."""
    try:
        loaded = load_profile(name)
    except ProfileError as exc:
        _fail(str(exc))
    document = loaded.model_dump(mode="json")
    if as_json:
        _echo_json({"source": str(resolve_profile_path(name)), "fingerprint": loaded.fingerprint,
                    "profile": document})
        return
    click.echo(f"# {loaded.name}: {loaded.description}")
    click.echo(f"# source {resolve_profile_path(name)}  fingerprint sha256:{loaded.fingerprint}")
    for line in _flatten(document):
        click.echo(line)


def _flatten(document: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for key, value in document.items():
        if isinstance(value, dict):
            lines.extend(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for index, item in enumerate(value):
                lines.extend(_flatten(item, f"{prefix}{key}.{index}."))
        else:
            lines.append(f"{prefix}{key} = {json.dumps(value)}")
    return lines


@profile.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check profile FILES (e.g. a vendor's new SKU): every problem with its file, key and reason."""
    failed = False
    for file in files:
        try:
            loaded = load_profile(file)
        except ProfileError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(f"FAIL {problem}", err=True)
            continue
        click.echo(f"OK {file}: profile {loaded.name!r} ({loaded.vendor}) is valid")
    if failed:
        sys.exit(1)


@profile.command("detect")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def detect(as_json: bool) -> None:
    """Read this machine, rank the shipped profiles by fit, and say why each rejected one does not fit."""
    try:
        machine = detect_machine()
        ranking = rank_profiles(machine)
    except ProfileError as exc:
        _fail(str(exc))
    best = next((fit.name for fit in ranking if fit.fits), None)
    if as_json:
        _echo_json({"machine": machine.to_dict(), "best": best, "ranking": [asdict(fit) for fit in ranking]})
    else:
        _print_machine(machine)
        _print_ranking(ranking, best)
    if best is None:
        sys.exit(1)


def _unknown(value: list[str] | bool | None, present: str = "yes") -> str:
    if value is None:
        return "unknown (module not installed)"
    if isinstance(value, bool):
        return present if value else "no"
    return ", ".join(value) or "none"


def _print_machine(machine: MachineInfo) -> None:
    zones = ", ".join(f"{z.name} ({z.type or '?'}, {'?' if z.temp_c is None else f'{z.temp_c:.1f} °C'})"
                      for z in machine.thermal_zones) or "none"
    click.echo(f"This machine: {machine.arch}, {machine.cpu_model}, {machine.physical_cores} physical cores "
               f"({machine.logical_cores} logical), {machine.memory_total_mb} MiB RAM")
    click.echo(f"  ISA flags:             {len(machine.isa_flags)} ({_notable_flags(machine.isa_flags)})")
    click.echo(f"  accelerators:          {_unknown(machine.accelerator_kinds)}")
    click.echo(f"  onnxruntime providers: {_unknown(machine.onnx_providers)}")
    click.echo(f"  OpenVINO devices:      {_unknown(machine.openvino_devices)}")
    click.echo(f"  llama.cpp GPU offload: {_unknown(machine.llm_gpu_offload)}")
    click.echo(f"  thermal zones:         {zones}")
    click.echo(f"  watchdog devices:      {_unknown(machine.watchdog_devices)}")
    click.echo(f"  serial ports:          {_unknown(machine.serial_ports)}")
    for note in machine.notes:
        click.echo(f"  note: {note}")


def _notable_flags(flags: list[str]) -> str:
    """The flags profiles care about, so the line stays readable."""
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8",
              "asimd", "asimddp")
    return " ".join(flag for flag in wanted if flag in flags) or "none of the usual SIMD flags"


def _print_ranking(ranking: list[ProfileFit], best: str | None) -> None:
    click.echo("")
    click.echo(f"Best profile: {best}" if best else "No shipped profile fits this machine.")
    for fit in ranking:
        click.echo(f"  {fit.name:<20} {'fits' if fit.fits else 'rejected'}")
        for reason in fit.reasons:
            click.echo(f"      - {reason}")
        for note in fit.notes:
            click.echo(f"      note: {note}")


@profile.command("plan")
@click.option("--model-config", "model_config", required=True, type=click.Path(dir_okay=False),
              help="Hugging Face config.json of the model.")
@click.option("--profile", "profile_name", required=True, help="Profile name or .toml path.")
@click.option("--context", type=click.IntRange(min=1), default=None,
              help="Tokens per sequence (default: the profile's llm.context_length).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan(model_config: str, profile_name: str, context: int | None, as_json: bool) -> None:
    """Which GGUF type of the model fits the profile's LLM budget, with the memory table and the reason."""
    try:
        loaded = load_profile(profile_name)
        config = load_model_config(model_config)
        result = plan_llm(config, loaded, context)
    except ProfileError as exc:
        _fail(str(exc))
    except ModelConfigError as exc:
        _fail(str(exc) if str(exc).startswith(model_config) else f"{model_config}: {exc}")
    except PlanError as exc:
        if isinstance(exc.plan, LlmPlan) and not as_json:
            _print_plan(exc.plan)
        if isinstance(exc.plan, LlmPlan) and as_json:
            _echo_json(asdict(exc.plan))
        _fail(str(exc))
    if as_json:
        _echo_json(asdict(result))
    else:
        _print_plan(result)


def _print_plan(result: LlmPlan) -> None:
    click.echo(f"{result.family} model, {result.params:,} parameters ({result.params / 1e9:.2f} B); profile "
               f"{result.profile}: context {result.context} x {result.parallel} sequences, "
               f"KV {result.kv_cache_type}, LLM budget {mib(result.budget_bytes)}")
    click.echo(f"{'type':<8} {'bpw':>5} {'weights':>10} {'KV':>10} {'overhead':>10} {'total':>10}  fits")
    for row in result.rows:
        mark = "yes" if row.fits else "no"
        if row.gguf_type == result.chosen_type:
            mark += "  <- chosen"
        sizes = " ".join(f"{mib(size):>10}" for size in (row.weight_bytes, row.kv_bytes, row.overhead_bytes,
                                                         row.total_bytes))
        click.echo(f"{row.gguf_type:<8} {row.bits_per_weight:>5.2f} {sizes}  {mark}")
    click.echo(f"reason: {result.reason}")
