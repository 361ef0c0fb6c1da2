"""CycloneDX 1.6 SBOM generated from the staged image tree (what is really in the image).

Components: each payload wheel (read back from the image, with its sha256), the OS packages the
base's dpkg database lists, the OS itself (os-release), each model artifact as a
machine-learning-model with its sha256, and each orbox config/unit/script file. Serial number
and timestamp derive from the spec, so two builds give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from image_build.errors import ImageError
from image_build.layer import MODEL_DIR, WHEEL_DIR
from image_build.tree import StagedTree
from image_build.wheels import read_wheel_metadata
from primitives.artifacts import file_digest
from primitives.distribution import VERSION as orbox_version
from primitives.signing import canonical_json

_IMAGE_REF = "orbox-image"


def build_sbom(
    tree: StagedTree, *, profile: str, version: str, timestamp: str, serial_uuid: str, layer_paths: list[str]
) -> bytes:
    components = [
        *_wheel_components(tree),
        *_dpkg_components(tree),
        *_os_component(tree),
        *_model_components(tree),
        *_file_components(tree, layer_paths),
    ]
    components.sort(key=lambda component: component["bom-ref"])
    document = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{serial_uuid}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {
                "components": [{"type": "application", "name": "orbox image build", "version": orbox_version}]
            },
            "component": {
                "type": "firmware",
                "bom-ref": _IMAGE_REF,
                "name": f"orbox-{profile}",
                "version": version,
                "properties": [{"name": "orbox:profile", "value": profile}],
            },
        },
        "components": components,
        "dependencies": [
            {"ref": _IMAGE_REF, "dependsOn": [component["bom-ref"] for component in components]}
        ],
    }
    return canonical_json(document)


def validate_sbom(data: bytes) -> list[str]:
    """Problems found by the CycloneDX 1.6 JSON schema that cyclonedx-python-lib ships (offline)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode("utf-8"))
    return [] if error is None else [str(error)]


def _hashes(path: Path) -> list[dict[str, str]]:
    return [{"alg": "SHA-256", "content": file_digest(path).sha256}]


def _wheel_components(tree: StagedTree) -> list[dict[str, Any]]:
    components = []
    for wheel in sorted(tree.path(WHEEL_DIR).glob("*.whl")):
        metadata = read_wheel_metadata(wheel)
        component = {
            "type": "library",
            "bom-ref": f"pypi:{metadata['Name'].lower()}@{metadata['Version']}",
            "name": metadata["Name"],
            "version": metadata["Version"],
            "purl": PackageURL(
                "pypi", name=metadata["Name"].lower(), version=metadata["Version"]
            ).to_string(),
            "hashes": _hashes(wheel),
            "properties": [{"name": "orbox:path", "value": f"{WHEEL_DIR}/{wheel.name}"}],
        }
        license_text = metadata.get("License-Expression") or metadata.get("License")
        if license_text and "\n" not in license_text and len(license_text) <= 100:
            component["licenses"] = [{"license": {"name": license_text}}]
        components.append(component)
    return components


def _dpkg_components(tree: StagedTree) -> list[dict[str, Any]]:
    status = tree.path("/var/lib/dpkg/status")
    if not status.is_file():
        return []
    components = []
    for stanza in status.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if not fields.get("Package") or "installed" not in fields.get("Status", "").split():
            continue
        name, version, arch = fields["Package"], fields.get("Version", ""), fields.get("Architecture", "")
        purl = PackageURL("deb", "debian", name, version, {"arch": arch} if arch else None).to_string()
        components.append(
            {
                "type": "library",
                "bom-ref": f"deb:{name}@{version}",
                "name": name,
                "version": version,
                "purl": purl,
            }
        )
    return components


def _os_component(tree: StagedTree) -> list[dict[str, Any]]:
    release = tree.path("/etc/os-release")
    if not release.is_file():
        return []
    fields = {}
    for line in release.read_text(encoding="utf-8", errors="replace").splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            fields[key] = value.strip().strip('"')
    component = {
        "type": "operating-system",
        "bom-ref": f"os:{fields.get('ID', 'unknown')}",
        "name": fields.get("NAME", fields.get("ID", "unknown")),
    }
    if fields.get("VERSION_ID"):
        component["version"] = fields["VERSION_ID"]
    return [component]


def _model_components(tree: StagedTree) -> list[dict[str, Any]]:
    manifest_path = tree.path(f"{MODEL_DIR}/manifest.json")
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except (OSError, json.JSONDecodeError) as exc:
        raise ImageError(f"{manifest_path}: cannot read the image's model manifest ({exc})") from exc
    components = []
    for relpath, entry in sorted(manifest["artifacts"].items()):
        properties = [
            {"name": f"orbox:{key}", "value": str(entry[key])}
            for key in ("kind", "role", "quant_type", "section")
            if key in entry
        ]
        properties.append({"name": "orbox:profile", "value": manifest["profile"]})
        properties.append({"name": "orbox:path", "value": f"{MODEL_DIR}/{relpath}"})
        components.append(
            {
                "type": "machine-learning-model",
                "bom-ref": f"model:{relpath}",
                "name": relpath,
                "hashes": _hashes(tree.path(f"{MODEL_DIR}/{relpath}")),
                "properties": properties,
            }
        )
    return components


def _file_components(tree: StagedTree, layer_paths: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": "file", "bom-ref": f"file:{path}", "name": path, "hashes": _hashes(tree.path(path))}
        for path in layer_paths
        if not path.startswith((WHEEL_DIR + "/", MODEL_DIR + "/"))
    ]
