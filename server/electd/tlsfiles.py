"""Reading and checking the PEM files of the gRPC API's TLS: a certificate chain, its private
key, a bundle of CA certificates. One rule for "these files are usable", applied by the
configuration at start (a bad file is a config error naming the setting) and by rpc/tls.py each
time the files change on disk (a bad rotation keeps the certificates in use). Blocking file
reads on the caller's thread; imports nothing of electd (cryptography only).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization


class PemError(ValueError):
    """A file cannot be read or is not what it should be; the message says which and why."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate chain (PEM) and its private key (PEM), checked to belong together."""

    chain: bytes
    key: bytes


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise PemError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None


def certificates(path: str, what: str) -> bytes:
    """The PEM bytes of `path`, which must hold at least one X.509 certificate."""
    data = _read(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise PemError(f"{what}: {path} holds no PEM certificate ({exc})") from None
    if not certs:
        raise PemError(f"{what}: {path} holds no PEM certificate")
    return data


def key_pair(cert_path: str, key_path: str, cert_what: str, key_what: str) -> KeyPair:
    """The chain of `cert_path` and the key of `key_path`; the key must be the private key of
    the chain's first (leaf) certificate. A half-finished rotation (new chain, old key) fails
    here rather than in every TLS handshake."""
    chain = certificates(cert_path, cert_what)
    key_pem = _read(key_path, key_what)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PemError(
            f"{key_what}: {key_path} holds no unencrypted PEM private key ({exc})"
        ) from None
    leaf = x509.load_pem_x509_certificates(chain)[0]
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != leaf.public_key().public_bytes(*raw):
        raise PemError(
            f"{key_what}: the key in {key_path} does not belong to the certificate in {cert_path}"
        )
    return KeyPair(chain, key_pem)
