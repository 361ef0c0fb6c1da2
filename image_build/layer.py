"""The orbox layer put on top of the OS base: payload wheels, model bundle, config, units, self-check.

Everything the layer adds is listed with its sha256 in /usr/share/orbox/SHA256SUMS, which the
self-check verifies at every boot (ext4 does not protect file contents, so this is the only
thing that notices a flipped byte in a model).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from image_build.errors import ImageError
from image_build.rauc_config import PRE_INSTALL_HANDLER, SYSTEM_CONF_PATH
from image_build.spec import ImageSpec
from image_build.tree import StagedTree
from image_build.watchdog import BOOT_WATCHDOG, SYSTEMD_DROPIN_PATH, systemd_dropin
from image_build.wheels import PinnedWheel
from primitives.artifacts import file_digest
from primitives.signing import MANIFEST_NAME, SIGNATURE_NAME, canonical_json

WHEEL_DIR = "/opt/orbox/wheels"
MODEL_DIR = "/opt/orbox/models"
SUMS_PATH = "/usr/share/orbox/SHA256SUMS"
KEYRING_PATH = "/etc/rauc/keyring.pem"  # the update CA certificate RAUC checks bundles against
UNIT_DIR = "/usr/lib/systemd/system"
DEFAULT_UNITS = ("orbox-selfcheck.service", "orbox-payload.service", "orbox-mark-good.service")
APPLIANCE_UNITS = ("orbox.service", "orbox-fleet.service")  # the fleet client exits at once unless [fleet] is set


@dataclass(frozen=True)
class ReleaseInfo:
    profile: str
    arch: str
    version: str
    min_version: str

    def as_env(self) -> str:
        return (
            f"ORBOX_PROFILE={self.profile}\nORBOX_ARCH={self.arch}\n"
            f"ORBOX_VERSION={self.version}\nORBOX_MIN_VERSION={self.min_version}\n"
        )


def _default(name: str) -> bytes:
    return resources.files("image_build").joinpath("defaults", name).read_bytes()


def appliance_unit(name: str) -> Path:
    """A unit the appliance owns (it knows how `orbox serve` starts, stops and feeds systemd).

    Located with find_spec, which does not import the appliance: image_build sits below it.
    """
    spec = importlib.util.find_spec("appliance")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "systemd" / name
        if path.is_file():
            return path
    raise ImageError(f"appliance unit {name}: expected appliance/systemd/{name} in the appliance package, "
                     f"found {'no such file in ' + ', '.join(locations) if locations else 'no appliance package'}")


def stage_orbox_layer(
    tree: StagedTree,
    spec: ImageSpec,
    release: ReleaseInfo,
    wheels: list[PinnedWheel],
    bundle_dir: Path,
    bundle_manifest: dict[str, Any],
    *,
    update_keyring: bytes | None = None,
    rauc_system_conf: str | None = None,
    watchdog_timeout_s: int,
) -> list[str]:
    """Add the orbox files to the tree; return the image paths covered by SHA256SUMS."""
    covered: list[str] = []

    def add(
        image_path: str, data: bytes | None = None, source: Path | None = None, mode: int = 0o644
    ) -> None:
        if source is not None:
            tree.add_file(image_path, source, mode)
        else:
            tree.add_bytes(image_path, data or b"", mode)
        covered.append(image_path)

    lock_lines = []
    for wheel in wheels:
        add(f"{WHEEL_DIR}/{wheel.filename}", source=wheel.path)
        lock_lines.append(f"{WHEEL_DIR}/{wheel.filename} --hash=sha256:{wheel.sha256}\n")
    add("/opt/orbox/requirements.lock", "".join(lock_lines).encode())

    add(f"{MODEL_DIR}/{MANIFEST_NAME}", source=bundle_dir / MANIFEST_NAME)
    if (bundle_dir / SIGNATURE_NAME).is_file():
        add(f"{MODEL_DIR}/{SIGNATURE_NAME}", source=bundle_dir / SIGNATURE_NAME)
    for relpath in sorted(bundle_manifest["artifacts"]):
        add(f"{MODEL_DIR}/{relpath}", source=bundle_dir / relpath)

    if spec.config is not None:
        add("/etc/orbox/orbox.toml", source=spec.config)
    else:
        add("/etc/orbox/orbox.toml", _default("orbox.toml"))
    if update_keyring is not None:
        add(KEYRING_PATH, update_keyring)
    if rauc_system_conf is not None:
        add(SYSTEM_CONF_PATH, rauc_system_conf.encode())
    add("/etc/orbox/release.env", release.as_env().encode())
    add(
        "/etc/orbox/release.json",
        canonical_json({**release.__dict__, "wheels": [w.filename for w in wheels]}),
    )
    for unit in APPLIANCE_UNITS:
        add(f"{UNIT_DIR}/{unit}", source=appliance_unit(unit))
    for unit in DEFAULT_UNITS:
        add(f"{UNIT_DIR}/{unit}", _default(unit))
    for unit_path in spec.units:
        add(f"{UNIT_DIR}/{Path(unit_path).name}", source=Path(unit_path))
    add("/usr/libexec/orbox/selfcheck", _default("selfcheck"), mode=0o755)
    add("/usr/libexec/orbox/install-payload", _default("install-payload"), mode=0o755)
    add(PRE_INSTALL_HANDLER, _default("rauc-pre-install"), mode=0o755)
    add("/usr/libexec/orbox/mark-good", _default("mark-good"), mode=0o755)
    add(SYSTEMD_DROPIN_PATH, systemd_dropin(watchdog_timeout_s).encode())
    add(BOOT_WATCHDOG, _default("boot-watchdog"), mode=0o755)
    add("/etc/init.d/S01orbox-watchdog", _default("S01orbox-watchdog"), mode=0o755)
    add("/etc/init.d/S50orbox-selfcheck", _default("S50orbox-selfcheck"), mode=0o755)
    add("/etc/init.d/S60orbox-mark-good", _default("S60orbox-mark-good"), mode=0o755)

    sums = "".join(f"{file_digest(tree.path(path)).sha256}  {path}\n" for path in sorted(covered))
    tree.add_bytes(SUMS_PATH, sums.encode())
    return sorted(covered)
