"""`orbox quantize ...` and `orbox keygen`: the vendor-side toolchain commands."""

from __future__ import annotations

import sys

import click

from primitives.lazy_group import LazyGroup

SUBCOMMANDS = {
    "llm": "quantize.llm.cli:llm",
    "bench": "quantize.llm.cli:bench",
    "encoder": "quantize.encoder.cli:encoder",
    "encoder-bench": "quantize.encoder.cli:encoder_bench",
}


@click.group(cls=LazyGroup, lazy_subcommands=SUBCOMMANDS)
def quantize() -> None:
    """Turn Hugging Face checkpoints into gated, signed model bundles for a box profile."""


@quantize.command("verify")
@click.argument("bundle_dir", type=click.Path(file_okay=False))
@click.option("--pubkey", type=click.Path(dir_okay=False), help="ed25519 public key (PEM); checks the signature.")
def verify(bundle_dir: str, pubkey: str | None) -> None:
    """Check a model bundle's signature (with --pubkey) and the sha256 of every artifact."""
    from primitives.artifacts import ModelBundleError
    from primitives.signing import KeyFileError, verify_bundle

    try:
        problems = verify_bundle(bundle_dir, pubkey)
    except (ModelBundleError, KeyFileError) as exc:
        problems = [str(exc)]
    for problem in problems:
        click.echo(f"FAIL {problem}", err=True)
    if problems:
        sys.exit(1)
    signed = " and the signature is valid" if pubkey else ""
    click.echo(f"OK {bundle_dir}: every artifact matches its manifest{signed}")


@click.command("keygen")
@click.argument("prefix", type=click.Path(dir_okay=False))
@click.option("--update-ca", is_flag=True,
              help="Write the ECDSA P-256 update CA and signer for RAUC bundles instead of an ed25519 model key.")
def keygen(prefix: str, update_ca: bool) -> None:
    """Write PREFIX.key (ed25519, PEM PKCS#8) and PREFIX.pub, or with --update-ca the update CA and signer."""
    from primitives.signing import KeyFileError, generate_keypair
    from primitives.update_keys import generate_update_pki

    try:
        if update_ca:
            pki = generate_update_pki(prefix)
            click.echo(f"wrote {pki.ca_key} and {pki.signer_key} (keep secret; the CA key belongs offline), "
                       f"{pki.ca_cert} (the box's keyring) and {pki.signer_cert}")
            return
        key_path, pub_path = generate_keypair(prefix)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {key_path} (keep secret) and {pub_path}")
