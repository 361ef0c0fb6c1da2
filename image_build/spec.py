"""The image spec: everything a build reads, so that the same spec gives the same bytes.

A spec comes from a TOML file (`--spec`), from CLI options, or both (options win). Paths in a
spec file are relative to that file. Every UUID and salt of the image is derived from `seed`,
and every timestamp is SOURCE_DATE_EPOCH, taken from the spec, the environment or the git
commit, in that order.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from image_build.errors import ImageError

if TYPE_CHECKING:
    from hw_profiles import Profile

_UUID_NAMESPACE = uuid.UUID("6f1c2b57-5d0e-4d43-9a43-0c2b0a0b0b8e")
_CLI_FIELDS = ("profile", "version", "bundle")  # `orbox image build` options that can supply them


class WheelPin(BaseModel):
    """One payload wheel; with `sha256` the build refuses other bytes (like pip --require-hashes)."""

    model_config = ConfigDict(extra="forbid")
    path: Path
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class ImageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str
    version: str
    min_version: str = "0"
    source_date_epoch: int | None = Field(default=None, ge=0)
    seed: str | None = None
    base: Path | None = None
    bundle: Path
    wheels: list[WheelPin] = Field(default_factory=list)
    config: Path | None = None
    units: list[Path] = Field(default_factory=list)
    rootfs_type: Literal["ext4", "squashfs"] = "ext4"
    slot_size_mb: int | None = Field(default=None, ge=8)
    data_size_mb: int = Field(default=16, ge=8)
    esp_size_mb: int = Field(default=16, ge=8)
    disk_device: str = Field(default="/dev/vda", pattern=r"^/dev/[a-z][a-z0-9]*$")  # the box's boot disk
    boot_tries: int = Field(default=3, ge=1, le=9)  # boots an unconfirmed slot gets before GRUB moves on
    kernel_cmdline: str = Field(default="console=ttyS0 panic=10 quiet", pattern=r"^[^\n\"$]*$")

    @field_validator("version", "min_version")
    @classmethod
    def _pep440(cls, value: str) -> str:
        return pep440(value)

    @property
    def effective_seed(self) -> str:
        return self.seed if self.seed is not None else f"orbox:{self.profile}:{self.version}"

    def derived_uuid(self, purpose: str) -> str:
        """A UUID that only depends on the spec's seed and what it is for (disk, partition, fs, salt)."""
        return str(uuid.uuid5(_UUID_NAMESPACE, f"{self.effective_seed}/{purpose}"))


def pep440(value: str) -> str:
    """`value` unchanged if it is a release number such as 1.2.0.

    The box's pre-install handler compares versions with `sort -V`, which orders plain dotted
    numbers as PEP 440 does; pre-release and local suffixes would compare differently, so they are refused.
    """
    try:
        Version(value)
    except InvalidVersion as exc:
        raise ValueError(f"expected a PEP 440 version such as 1.2.0, found {value!r}") from exc
    if not re.fullmatch(r"\d+(\.\d+)*", value):
        raise ValueError(f"expected a PEP 440 release of dotted numbers such as 1.2.0, found {value!r}")
    return value


def image_profile(profile_name: str) -> Profile:
    """The hardware profile an image is built for (CPU arch, watchdog timeout); unknown or invalid: ImageError."""
    from hw_profiles import ProfileError, load_profile

    try:
        return load_profile(profile_name)
    except ProfileError as exc:
        raise ImageError(f"profile {profile_name!r}: {exc}") from exc


def load_spec(spec_path: str | os.PathLike | None, overrides: dict[str, Any]) -> ImageSpec:
    """Read a TOML spec (paths relative to it), apply non-None CLI overrides, validate."""
    document: dict[str, Any] = {}
    if spec_path is not None:
        path = Path(spec_path)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ImageError(f"{path}: cannot read spec ({exc.strerror})") from exc
        except UnicodeDecodeError as exc:
            raise ImageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ImageError(f"{path}: not valid TOML ({exc})") from exc
        document = _resolve_relative_paths(document, path.parent)
    document.update({key: value for key, value in overrides.items() if value not in (None, [], ())})
    try:
        return ImageSpec.model_validate(document)
    except ValidationError as exc:
        where = f"{spec_path}" if spec_path else "image spec"
        raise ImageError(f"{where}: {'; '.join(map(_problem, exc.errors()))}") from exc


def _problem(error: Any) -> str:
    """One validation error: the field, and either how to supply it or what was expected and found."""
    field = ".".join(map(str, error["loc"]))
    if error["type"] == "missing":
        option = f"--{field.replace('_', '-')}"
        hint = f" (give {option} or set it in the spec)" if field in _CLI_FIELDS else ""
        return f"field {field}: required{hint}"
    return f"field {field}: {error['msg'].removeprefix('Value error, ')} (found {error.get('input')!r})"


def _resolve_relative_paths(document: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    resolved = dict(document)
    for key in ("base", "bundle", "config"):
        if isinstance(resolved.get(key), str):
            resolved[key] = str(base_dir / resolved[key])
    if isinstance(resolved.get("units"), list):
        resolved["units"] = [
            str(base_dir / unit) if isinstance(unit, str) else unit for unit in resolved["units"]
        ]
    if isinstance(resolved.get("wheels"), list):
        resolved["wheels"] = [
            {**wheel, "path": str(base_dir / wheel["path"])}
            if isinstance(wheel, dict) and "path" in wheel
            else wheel
            for wheel in resolved["wheels"]
        ]
    return resolved


def resolve_source_date_epoch(spec: ImageSpec, repo_dir: str | os.PathLike = ".") -> int:
    """SOURCE_DATE_EPOCH from the spec, else the environment, else the git commit of `repo_dir`."""
    if spec.source_date_epoch is not None:
        return spec.source_date_epoch
    from_env = os.environ.get("SOURCE_DATE_EPOCH")
    if from_env is not None:
        try:
            return int(from_env)
        except ValueError as exc:
            raise ImageError(f"SOURCE_DATE_EPOCH must be an integer, found {from_env!r}") from exc
    completed = subprocess.run(
        ["git", "-C", str(repo_dir), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0 or not completed.stdout.strip().isdigit():
        raise ImageError(
            "no build time: set source_date_epoch in the spec or SOURCE_DATE_EPOCH, "
            f"or build inside a git checkout (git said: {completed.stderr.strip()})"
        )
    return int(completed.stdout.strip())
