"""primitives.signing: keys that are not what the caller needs are refused with the file named."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from primitives.signing import (
    KeyFileError,
    generate_keypair,
    load_private_key,
    load_public_key,
    sign_bytes,
    verify_bytes,
)


def test_generated_keypair_signs_and_verifies(tmp_path: Path) -> None:
    key_path, pub_path = generate_keypair(tmp_path / "vendor")
    signature = sign_bytes(b"manifest", load_private_key(key_path))
    assert verify_bytes(b"manifest", signature, load_public_key(pub_path))
    assert not verify_bytes(b"manifest!", signature, load_public_key(pub_path))
    assert key_path.stat().st_mode & 0o777 == 0o600


def test_keys_of_the_wrong_role_are_refused(tmp_path: Path) -> None:
    key_path, pub_path = generate_keypair(tmp_path / "vendor")
    with pytest.raises(KeyFileError, match=r"vendor\.pub: not an unencrypted PEM PKCS#8 private key"):
        load_private_key(pub_path)
    with pytest.raises(KeyFileError, match=r"vendor\.key: not a PEM SubjectPublicKeyInfo public key"):
        load_public_key(key_path)


def test_keys_of_another_algorithm_are_refused(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa.key").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "rsa.pub").write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(KeyFileError, match=r"rsa\.key: expected an ed25519 private key, found RSAPrivateKey"):
        load_private_key(tmp_path / "rsa.key")
    with pytest.raises(KeyFileError, match=r"rsa\.pub: expected an ed25519 public key, found RSAPublicKey"):
        load_public_key(tmp_path / "rsa.pub")


def test_missing_key_file_and_existing_keypair(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"absent\.key: cannot read key file"):
        load_private_key(tmp_path / "absent.key")
    generate_keypair(tmp_path / "vendor")
    with pytest.raises(KeyFileError, match=r"vendor\.key: already exists; refusing to overwrite a key"):
        generate_keypair(tmp_path / "vendor")
