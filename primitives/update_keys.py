"""The update-signing PKI: an ECDSA P-256 CA that the box trusts and a signer it certifies.

RAUC verifies bundles with X.509/CMS, so update signing cannot reuse the ed25519 model keys, and
should not: the CA's key can stay offline while the signer's certificate is replaced or revoked.
The box's keyring holds only the CA certificate.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from primitives.atomic import atomic_write_bytes
from primitives.signing import KeyFileError

CA_YEARS = 20  # a box in an operating room lives about ten years and must still take updates
SIGNER_YEARS = 10


@dataclass(frozen=True)
class UpdatePki:
    """Where `generate_update_pki` wrote the four files."""

    ca_cert: Path
    ca_key: Path
    signer_cert: Path
    signer_key: Path

    def paths(self) -> tuple[Path, ...]:
        return (self.ca_cert, self.ca_key, self.signer_cert, self.signer_key)


def update_pki_paths(prefix: str | os.PathLike) -> UpdatePki:
    """PREFIX-ca.cert.pem, PREFIX-ca.key.pem, PREFIX-signer.cert.pem, PREFIX-signer.key.pem."""
    prefix = Path(prefix)
    return UpdatePki(*(prefix.with_name(f"{prefix.name}-{role}.{kind}.pem")
                       for role, kind in (("ca", "cert"), ("ca", "key"), ("signer", "cert"), ("signer", "key"))))


def generate_update_pki(prefix: str | os.PathLike, organization: str = "orbox vendor") -> UpdatePki:
    """Write a new CA and a signer certified by it; refuses to overwrite any existing file."""
    paths = update_pki_paths(prefix)
    for path in paths.paths():
        if path.exists():
            raise KeyFileError(f"{path}: already exists; refusing to overwrite a key or certificate")
    now = dt.datetime.now(tz=dt.UTC).replace(microsecond=0)
    ca_key, signer_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(organization, "orbox update CA")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, CA_YEARS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    signer_cert = (
        _builder(_name(organization, "orbox update signer"), ca_name, signer_key.public_key(), now, SIGNER_YEARS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    for path, key in ((paths.ca_key, ca_key), (paths.signer_key, signer_key)):
        atomic_write_bytes(path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        os.chmod(path, 0o600)
    for path, cert in ((paths.ca_cert, ca_cert), (paths.signer_cert, signer_cert)):
        atomic_write_bytes(path, cert.public_bytes(serialization.Encoding.PEM))
    return paths


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: dt.datetime,
             years: int) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365 * years)))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)
