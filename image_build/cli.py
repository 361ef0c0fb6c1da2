"""`orbox image ...`: build images and RAUC update bundles, verify bundles, boot-test a disk in qemu.

Installing, booting and confirming slots is RAUC's and GRUB's job on the box (`rauc install`,
`rauc status mark-good`); there is no host-side installer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from image_build.errors import ImageError

_FILE = click.Path(dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)
# Inputs must exist: click then names the option and the path instead of a traceback from open().
_INPUT_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_INPUT_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Expected failures become one line and exit 1, never a traceback.

    OSError is expected too: a full disk or an unwritable --out names its file in str(exc).
    """
    from primitives.artifacts import ModelBundleError
    from primitives.signing import KeyFileError, SourceDateEpochError

    try:
        yield
    except (ImageError, ModelBundleError, KeyFileError, SourceDateEpochError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def image() -> None:
    """Reproducible factory images, signed A/B update bundles and SBOMs."""


@image.command("build")
@click.option("--profile", help="Hardware profile name (see `orbox profile list`).")
@click.option("--bundle", "bundle", type=_DIR, help="Model bundle directory (manifest.json).")
@click.option("--out", "out_dir", type=_DIR, required=True, help="Output directory.")
@click.option("--base", type=_INPUT_FILE, help="OS base rootfs tarball; default: the busybox-static demo base.")
@click.option(
    "--update-pki",
    metavar="PREFIX",
    help="Update signer and CA from `orbox keygen --update-ca PREFIX`; without it no update bundle.",
)
@click.option("--version", "version", help="Image version (PEP 440).")
@click.option("--min-version", help="Oldest installed version this update may be applied to.")
@click.option("--spec", "spec_path", type=_INPUT_FILE, help="TOML spec; options given here override it.")
@click.option("--wheel", "wheels", type=_INPUT_FILE, multiple=True, help="Payload wheel (repeatable).")
@click.option("--wheelhouse", type=_INPUT_DIR, help="Directory whose *.whl files join the payload.")
@click.option(
    "--rootfs", "rootfs_type", type=click.Choice(["ext4", "squashfs"]), help="Root filesystem type."
)
def build(
    profile: str | None,
    bundle: Path | None,
    out_dir: Path,
    base: Path | None,
    update_pki: str | None,
    version: str | None,
    min_version: str | None,
    spec_path: Path | None,
    wheels: tuple[Path, ...],
    wheelhouse: Path | None,
    rootfs_type: str | None,
) -> None:
    """Build the rootfs, factory disk + .bmap, SBOM, build record and signed RAUC update bundle."""
    from image_build.build import build_image
    from image_build.spec import load_spec

    wheel_paths = list(wheels) + (sorted(wheelhouse.glob("*.whl")) if wheelhouse else [])
    overrides = {
        "profile": profile,
        "bundle": bundle,
        "base": base,
        "version": version,
        "min_version": min_version,
        "rootfs_type": rootfs_type,
        "wheels": [{"path": path} for path in wheel_paths],
    }
    started = time.monotonic()
    with _user_errors():
        spec = load_spec(spec_path, overrides)
        with click.progressbar(
            length=8, label="orbox image build", show_eta=False, item_show_func=lambda label: label
        ) as bar:
            result = build_image(spec, out_dir, update_pki=update_pki, step=_advance(bar))
    if update_pki is None:
        click.echo("note: no --update-pki given, so no signed update bundle was written", err=True)
    for name, entry in sorted(result.record["outputs"].items()):
        click.echo(f"  {name:24s} {entry['size'] / 1e6:10.1f} MB  sha256 {entry['sha256']}")
    click.echo(f"built {spec.profile} {spec.version} into {out_dir} in {time.monotonic() - started:.1f} s")


def _advance(bar: Any) -> Callable[[str], None]:
    def step(label: str) -> None:
        bar.update(1, label)

    return step


@image.command("verify")
@click.argument("update_bundle", type=_INPUT_FILE)
@click.option(
    "--keyring", type=_INPUT_FILE, required=True, help="Update CA certificate (PEM) the bundle must chain to."
)
def verify(update_bundle: Path, keyring: Path) -> None:
    """Check a RAUC bundle as the box would: `rauc info`, then `rauc extract` for every payload byte."""
    from image_build.rauc_bundle import check_bundle

    with _user_errors():
        info = check_bundle(update_bundle, keyring)
    click.echo(f"OK {update_bundle}: signed under {keyring}; compatible {info.compatible}, version {info.version}")
    for slot_class, entry in sorted(info.images.items()):
        click.echo(
            f"  image {slot_class:10s} {entry['filename']:24s} {entry['size']:>12d} B  sha256 {entry['checksum']}"
        )
    for key, value in sorted(info.meta.items()):
        click.echo(f"  meta  {key:24s} {value}")
    for name, size in sorted(info.files.items()):
        click.echo(f"  file  {name:24s} {size:>12d} B")


@image.command("demo-base")
@click.option("--out", type=_FILE, required=True, help="Tarball to write.")
@click.option("--epoch", type=int, default=0, show_default=True, help="mtime of every member.")
def demo_base(out: Path, epoch: int) -> None:
    """Write the busybox-static demo OS base tarball (what `build` uses without --base)."""
    from image_build.demo_base import build_demo_base

    with _user_errors():
        build_demo_base(out, epoch)
    click.echo(f"wrote {out}")


@image.command("boot-test")
@click.argument("disk", type=_INPUT_FILE)
@click.option("--timeout", "timeout_s", type=float, default=180.0, show_default=True)
def boot_test(disk: Path, timeout_s: float) -> None:
    """Boot the factory disk under qemu (OVMF, GRUB, slot A's kernel; TCG) and check the self-check line."""
    import tempfile

    from image_build.qemu import boot_test as run_boot_test

    with _user_errors(), tempfile.TemporaryDirectory() as work:
        report = run_boot_test(disk, Path(work), timeout_s=timeout_s)
    click.echo(f"{report.verdict} ({report.seconds:.1f} s under qemu TCG)")
    if not report.ok:
        raise click.ClickException("boot test failed; console tail:\n" + report.console[-1500:])
