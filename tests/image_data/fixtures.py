"""The image tests' shared inputs: the orbox wheel of this checkout, a small dependency, a model bundle, keys.

Built once per run (build_once), like the other *_data fixtures, because the build tests and the
qemu A/B test both need them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from image_build.build import build_image
from image_build.spec import load_spec
from image_data.helpers import make_artifact_bundle
from primitives.signing import generate_keypair
from primitives.update_keys import generate_update_pki

REPO = Path(__file__).resolve().parents[2]
EPOCH = 1_700_000_000


def _pip_wheel(source: Path, wheel_dir: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(wheel_dir), str(source)], check=True, capture_output=True)
    return wheel_dir


def _make_inputs(root: Path) -> None:
    source = root / "orbox-src"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    _pip_wheel(source, root / "wheels")
    shutil.copytree(REPO / "tests" / "image_data" / "tinydep", root / "tinydep")
    _pip_wheel(root / "tinydep", root / "wheels")
    key, _ = generate_keypair(root / "vendor")
    make_artifact_bundle(root / "bundle", key)
    generate_update_pki(root / "update")


@pytest.fixture(scope="session")
def inputs(build_once) -> dict[str, Path]:
    """The orbox wheel built from this checkout's HEAD, one small dependency wheel, a bundle and keys."""
    root = build_once("image-inputs", _make_inputs)
    return {"root": root, "wheels": root / "wheels", "key": root / "vendor.key", "pub": root / "vendor.pub",
            "bundle": root / "bundle", "pki": root / "update", "keyring": root / "update-ca.cert.pem"}


def build_for_test(inputs: dict[str, Path], out: Path, **overrides) -> Path:
    spec = load_spec(None, {"profile": "dev", "version": "1.0.0", "bundle": inputs["bundle"],
                            "source_date_epoch": EPOCH,
                            "wheels": [{"path": p} for p in sorted(inputs["wheels"].glob("*.whl"))],
                            **overrides})
    build_image(spec, out, update_pki=inputs["pki"])
    return out
