"""The Python payload: wheel files pinned by sha256, with the name and version read from each wheel.

The build refuses a wheel whose bytes differ from its pinned hash (pip's --require-hashes rule)
and a payload without the orbox wheel itself, because that box would boot with nothing to run.
"""

from __future__ import annotations

import email.parser
import zipfile
from dataclasses import dataclass
from pathlib import Path

from image_build.errors import ImageError
from image_build.spec import WheelPin
from primitives.artifacts import file_digest


@dataclass(frozen=True)
class PinnedWheel:
    path: Path
    name: str
    version: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return self.path.name


def pin_wheels(pins: list[WheelPin]) -> list[PinnedWheel]:
    """Hash and read every wheel, check pinned hashes, sort by file name, require orbox."""
    wheels = [_pin(pin) for pin in pins]
    names = [wheel.filename for wheel in wheels]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ImageError(f"payload: wheel file names listed twice: {', '.join(duplicates)}")
    if not any(wheel.name.lower() == "orbox" for wheel in wheels):
        found = ", ".join(names) or "no wheels"
        raise ImageError(
            "payload: expected the orbox wheel among the wheels (build it with "
            f"`pip wheel --no-deps -w wheels .`), found {found}"
        )
    return sorted(wheels, key=lambda wheel: wheel.filename)


def _pin(pin: WheelPin) -> PinnedWheel:
    path = Path(pin.path)
    if path.suffix != ".whl" or not path.is_file():
        raise ImageError(f"payload wheel {path}: expected an existing .whl file")
    digest = file_digest(path)
    if pin.sha256 is not None and pin.sha256 != digest.sha256:
        raise ImageError(f"payload wheel {path}: sha256 {digest.sha256}, spec pins {pin.sha256}")
    metadata = read_wheel_metadata(path)
    return PinnedWheel(
        path=path,
        name=metadata["Name"],
        version=metadata["Version"],
        sha256=digest.sha256,
        size=digest.size,
    )


def read_wheel_metadata(path: Path) -> email.message.Message:
    """The wheel's own METADATA (name, version, license): the file name alone can be renamed."""
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [
                n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            if len(candidates) != 1:
                raise ImageError(
                    f"payload wheel {path}: expected one *.dist-info/METADATA, found {len(candidates)}"
                )
            text = archive.read(candidates[0]).decode("utf-8")
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise ImageError(f"payload wheel {path}: not a readable wheel ({exc})") from exc
    metadata = email.parser.Parser().parsestr(text, headersonly=True)
    for field in ("Name", "Version"):
        if not metadata.get(field):
            raise ImageError(f"payload wheel {path}: METADATA has no {field} field")
    return metadata
