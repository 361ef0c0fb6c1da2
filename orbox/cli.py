"""`orbox <group> <command>`: the single entry point of the distribution."""

from __future__ import annotations

import click

from primitives.distribution import VERSION
from primitives.lazy_group import LazyGroup

COMMANDS = {
    "dehaze": "kernels.cli:dehaze",
    "profile": "hw_profiles.cli:profile",
    "quantize": "quantize.cli:quantize",
    "keygen": "quantize.cli:keygen",
    "serve": "appliance.cli:serve",
    "api-keys": "appliance.cli:api_keys",
    "audit": "appliance.cli:audit",
    "mcu-sim": "appliance.cli:mcu_sim",
    "fleet": "appliance.fleet.cli:fleet",
    "api-bench": "appliance.bench_api:api_bench",
    "image": "image_build.cli:image",
    "kb": "knowledge_base.cli:kb",
    "scenarios": "appliance.scenarios.cli:scenarios",
    "demo": "orbox.demo:demo",
}


@click.group(cls=LazyGroup, lazy_subcommands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name="orbox")
def cli() -> None:
    """orbox: on-premises AI for the operating room.

    Quantize models for a box SKU, dehaze laparoscope video, build images and serve
    the box's local OpenAI-compatible API.
    """


def main() -> None:
    cli()
