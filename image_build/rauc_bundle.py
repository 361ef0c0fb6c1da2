"""Update bundles are RAUC `verity` bundles: the box's installer is RAUC, so the vendor makes its format.

Layout (RAUC's): squashfs payload | dm-verity hash tree | CMS signature over the manifest | u64 size.
The manifest, signed, carries the verity root hash, so every payload byte is covered; `rauc info`
checks the signature and the manifest only, `rauc extract` also checks the payload against the
hash tree (the box's dm-verity does that on every read while installing).

Inside the payload, next to the slot image: the SBOM, the build record and `meta.orbox.conf`
with the profile, the minimum installed version and the sha256 of both. RAUC 1.8 (Debian 12)
drops `[meta.*]` sections from the manifest it signs (they arrive in 1.9), so the section lives
in its own signed file, which the box's pre-install handler reads from the mounted bundle.

A bundle is never byte-identical to a rebuild (random verity salt, CMS signing time); the
reproducible parts are the rootfs and the manifest's contents.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_build.errors import ImageError
from image_build.tools import run_tool
from primitives.update_keys import update_pki_paths

BUNDLE_NAME = "update.raucb"
META_NAME = "meta.orbox.conf"
META_SECTION = "meta.orbox"
SLOT_CLASS = "rootfs"


class UpdateBundleRejected(ImageError):
    """RAUC refused the update bundle (signature, keyring, payload or manifest)."""


@dataclass(frozen=True)
class Signer:
    """What signing needs: the signer's certificate and key, and the CA keyring it must chain to."""

    cert: Path
    key: Path
    keyring: Path


def signer_from_prefix(prefix: str | os.PathLike) -> Signer:
    """The files `orbox keygen --update-ca PREFIX` wrote (the CA's key is not needed to sign)."""
    paths = update_pki_paths(prefix)
    signer = Signer(paths.signer_cert, paths.signer_key, paths.ca_cert)
    for path in (signer.cert, signer.key, signer.keyring):
        if not path.is_file():
            raise ImageError(f"--update-pki {prefix}: {path} is missing; expected the files of "
                             f"`orbox keygen --update-ca {prefix}`")
    return signer


def compatible_for(profile: str) -> str:
    """RAUC's compatible string: a bundle for another profile is refused by RAUC itself."""
    return f"orbox-{profile}"


def manifest_text(*, compatible: str, version: str, image_name: str) -> str:
    return (f"[update]\ncompatible={compatible}\nversion={version}\n\n[bundle]\nformat=verity\n\n"
            f"[image.{SLOT_CLASS}]\nfilename={image_name}\n")


def meta_text(meta: dict[str, str]) -> str:
    return f"[{META_SECTION}]\n" + "".join(f"{key}={value}\n" for key, value in sorted(meta.items()))


def write_bundle(out: Path, *, signer: Signer, compatible: str, version: str, image: Path,
                 extras: list[Path], meta: dict[str, str], workdir: Path) -> Path:
    """Sign a verity bundle holding `image` (the slot image) and `extras`; `out` appears complete or not at all."""
    content = workdir / "bundle-content"
    content.mkdir()
    (content / "manifest.raucm").write_text(manifest_text(compatible=compatible, version=version,
                                                          image_name=image.name))
    (content / META_NAME).write_text(meta_text(meta))
    for path in (image, *extras):
        shutil.copyfile(path, content / path.name)
    staged = workdir / BUNDLE_NAME
    run_tool(["rauc", "bundle", "--cert", signer.cert, "--key", signer.key, "--keyring", signer.keyring,
              content, staged])
    os.chmod(staged, 0o644)
    os.replace(staged, out)
    return out


@dataclass(frozen=True)
class BundleInfo:
    """What a bundle that passed every check says about itself."""

    compatible: str
    version: str
    images: dict[str, dict[str, Any]]  # slot class -> filename, checksum (sha256), size
    meta: dict[str, str]
    files: dict[str, int]  # every file in the payload -> size


def check_bundle(path: Path, keyring: Path) -> BundleInfo:
    """`rauc info` (signature, manifest), then `rauc extract` (payload against the signed hash tree)."""
    info = _rauc_json(["info", "--output-format=json", "--keyring", str(keyring), str(path)], path)
    with tempfile.TemporaryDirectory(prefix=".orbox-verify-") as scratch:
        extracted = Path(scratch) / "payload"
        _rauc(["extract", "--keyring", str(keyring), str(path), str(extracted)], path)
        files = {p.name: p.stat().st_size for p in sorted(extracted.iterdir())}
        meta = read_meta(extracted / META_NAME) if META_NAME in files else {}
    images = {name: entry for image in info.get("images", []) for name, entry in image.items()}
    return BundleInfo(info["compatible"], info["version"], images, meta, files)


def read_meta(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text())
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ImageError(f"{path}: not an INI file with a [{META_SECTION}] section ({exc})") from exc
    if not parser.has_section(META_SECTION):
        raise ImageError(f"{path}: expected a [{META_SECTION}] section, found {parser.sections()}")
    return dict(parser[META_SECTION])


def _rauc(args: list[str], bundle: Path) -> str:
    try:
        return run_tool(["rauc", *args])
    except ImageError as exc:
        raise UpdateBundleRejected(f"{bundle}: refused by `rauc {args[0]}`: {_last_lines(str(exc))}") from exc


def _rauc_json(args: list[str], bundle: Path) -> dict[str, Any]:
    output = _rauc(args, bundle)
    try:
        return json.loads(output)
    except json.JSONDecodeError as exc:
        raise UpdateBundleRejected(f"{bundle}: `rauc info` printed no JSON: {output[-400:]!r}") from exc


def _last_lines(message: str) -> str:
    """RAUC logs progress on stderr; the reason is in its last lines."""
    lines = [line for line in message.splitlines() if line.strip()]
    return " / ".join(lines[-2:])
