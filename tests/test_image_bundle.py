"""Update bundle format: signed end to end, so every mutation is rejected before anything is written."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from image_data.helpers import write_update

from image_build.update_bundle import (
    DOMAIN,
    MAGIC,
    TRAILER_MAGIC,
    UpdateBundleRejected,
    open_update_bundle,
)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory, key) -> bytes:
    """A complete bundle small enough to flip every one of its bits."""
    out = tmp_path_factory.mktemp("tiny") / "tiny.obx"
    return write_update(out, key, image=bytes(range(48)), version="2.0.0", sbom=b"{}\n").read_bytes()


def _regions(data: bytes) -> dict[str, range]:
    manifest_length = struct.unpack(">I", data[8:12])[0]
    manifest = json.loads(data[12:12 + manifest_length])
    payload_start = 12 + manifest_length
    regions = {"magic": range(0, 8), "manifest length": range(8, 12), "manifest": range(12, payload_start)}
    for entry in manifest["files"]:
        start = payload_start + entry["offset"]
        regions[f"file {entry['name']}"] = range(start, start + entry["size"])
    signature_start = len(data) - 80
    regions.update({"signature": range(signature_start, signature_start + 64),
                    "signed length": range(len(data) - 16, len(data) - 8),
                    "trailer magic": range(len(data) - 8, len(data))})
    assert sum(len(r) for r in regions.values()) == len(data), "regions must tile the whole bundle"
    return regions


def _rejected(path: Path, pubkey) -> bool:
    try:
        with open_update_bundle(path, pubkey):
            return False
    except UpdateBundleRejected:
        return True


def test_intact_bundle_opens_and_streams_its_files(tmp_path, key, tiny_bundle):
    path = tmp_path / "ok.obx"
    path.write_bytes(tiny_bundle)
    with open_update_bundle(path, key.public_key()) as bundle:
        image = b"".join(bundle.read_file(bundle.file_entry("slot-image")))
        assert bundle.manifest["version"] == "2.0.0"
    assert image == bytes(range(48))


def test_every_bit_flip_in_every_region_is_rejected(tmp_path, key, tiny_bundle):
    path, pubkey = tmp_path / "flip.obx", key.public_key()
    path.write_bytes(tiny_bundle)
    accepted = []
    with open(path, "r+b", buffering=0) as handle:
        for region, offsets in _regions(tiny_bundle).items():
            for offset in offsets:
                for bit in range(8):
                    os.pwrite(handle.fileno(), bytes([tiny_bundle[offset] ^ (1 << bit)]), offset)
                    if not _rejected(path, pubkey):
                        accepted.append((region, offset, bit))
                os.pwrite(handle.fileno(), tiny_bundle[offset:offset + 1], offset)
    assert accepted == []
    assert not _rejected(path, pubkey), "the restored bundle must verify again"


def test_every_truncation_and_an_extension_are_rejected(tmp_path, key, tiny_bundle):
    path, pubkey = tmp_path / "cut.obx", key.public_key()
    path.write_bytes(tiny_bundle + b"\0")
    assert _rejected(path, pubkey), "one appended byte"
    accepted = []
    for length in range(len(tiny_bundle) - 1, -1, -1):
        os.truncate(path, length)
        if not _rejected(path, pubkey):
            accepted.append(length)
    assert accepted == []


def test_wrong_key_is_rejected_with_a_clear_message(tmp_path, tiny_bundle):
    path = tmp_path / "b.obx"
    path.write_bytes(tiny_bundle)
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key()
    with pytest.raises(UpdateBundleRejected, match="signature does not verify"), open_update_bundle(path, other):
        pass


def _signed_envelope(manifest: bytes, payload: bytes, key: Ed25519PrivateKey) -> bytes:
    signed = MAGIC + struct.pack(">I", len(manifest)) + manifest + payload
    signature = key.sign(DOMAIN + hashlib.sha512(signed).digest())
    return signed + signature + struct.pack(">Q", len(signed)) + TRAILER_MAGIC


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m["files"][0].pop("sha256"), "expected exactly name, role, offset, size, sha256"),
    (lambda m: m.update(schema="orbox.update/0"), "field 'schema'"),
    (lambda m: m["files"][0].update(name="../etc/passwd"), "plain file name"),
    (lambda m: m.update(version="not a version"), "PEP 440"),
    (lambda m: m["files"][0].update(size=47), "add up to"),
])
def test_signed_but_malformed_manifest_is_rejected_by_the_schema(tmp_path, key, change, message):
    """A validly signed bundle from a buggy or old producer still never reaches the installer."""
    payload = bytes(range(48))
    manifest = {"schema": "orbox.update/1", "profile": "dev", "arch": "x86_64", "version": "2.0.0",
                "min_version": "0", "created": "2024-01-01T00:00:00Z", "artifacts": {},
                "files": [{"name": "rootfs.ext4", "role": "slot-image", "offset": 0, "size": 48,
                           "sha256": hashlib.sha256(payload).hexdigest()}]}
    path = tmp_path / "m.obx"
    path.write_bytes(_signed_envelope(json.dumps(manifest).encode(), payload, key))
    with open_update_bundle(path, key.public_key()):
        pass  # the unmodified manifest is accepted, so the rejections below are the schema's
    change(manifest)
    path.write_bytes(_signed_envelope(json.dumps(manifest).encode(), payload, key))
    with pytest.raises(UpdateBundleRejected, match=message), open_update_bundle(path, key.public_key()):
        pass


def test_payload_swapped_after_the_signature_check_is_caught_while_reading(tmp_path, key):
    path = write_update(tmp_path / "swap.obx", key, image=bytes(300_000), version="2.0.0")
    with open_update_bundle(path, key.public_key()) as bundle:
        entry = bundle.file_entry("slot-image")
        with open(path, "r+b") as handle:  # someone rewrites the file between check and use
            handle.seek(bundle.payload_offset + entry["offset"] + entry["size"] - 1)
            handle.write(b"\xff")
        with pytest.raises(UpdateBundleRejected, match="changed since the signature"):
            b"".join(bundle.read_file(entry))
