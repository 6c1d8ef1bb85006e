"""The node's TLS server credentials, re-read from disk without a restart.

grpcio's `dynamic_ssl_server_credentials` takes a fetcher that grpc's C core calls before the
TLS handshake of *every* new connection, on one of its own threads (not the asyncio loop's;
checked with grpc.aio in grpcio 1.85: it works there as with the threaded server). The fetcher
returns a new certificate configuration, or None for "keep the current one". `CertificateFiles`
is that fetcher: it stats the files (cheap; no read while nothing changed), and when any of them
changed it reads and checks them (electd.tlsfiles: the key must belong to the certificate) and
hands grpc the new configuration. A rotation caught half-way (new certificate, old key) or a
missing file keeps the configuration in use, with one WARNING per state of the files, and is
tried again on the next connection, so a botched rotation never takes the API down.

Connections already open keep the certificates of their handshake: rotation reaches them when
they reconnect (the server's --max-connection-age bounds how long that takes).

Thread-safety: `__call__` runs on grpc's threads, concurrently; state is under a lock.
"""

from __future__ import annotations

import logging
import os
import threading

import grpc

from electd.tlsfiles import KeyPair, PemError, certificates, key_pair

logger = logging.getLogger(__name__)

_Stamp = tuple[tuple[int, int, int, int] | None, ...]


def _stamp(paths: tuple[str, ...]) -> _Stamp:
    out: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns))
    return tuple(out)


class CertificateFiles:
    """The fetcher of `dynamic_ssl_server_credentials` for a certificate chain, its key and,
    for mutual TLS, the CA bundle that signs client certificates."""

    def __init__(self, cert: str, key: str, client_ca: str | None) -> None:
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._paths = (cert, key) + ((client_ca,) if client_ca else ())
        self._lock = threading.Lock()
        self._stamp = _stamp(self._paths)
        self._warned: _Stamp | None = None
        self.reloads = 0
        self.initial = self._configuration(*self._load())  # raises PemError: a bad start

    def _load(self) -> tuple[KeyPair, bytes | None]:
        pair = key_pair(self._cert, self._key, "--tls-cert", "--tls-key")
        ca = certificates(self._client_ca, "--tls-client-ca") if self._client_ca else None
        return pair, ca

    @staticmethod
    def _configuration(pair: KeyPair, ca: bytes | None) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(pair.key, pair.chain)], ca)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.initial, self, require_client_authentication=self._client_ca is not None
        )

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc's threads, before each handshake: a new configuration if the files changed."""
        stamp = _stamp(self._paths)
        with self._lock:
            if stamp == self._stamp:
                return None
            try:
                pair, ca = self._load()
            except PemError as exc:
                if self._warned != stamp:
                    self._warned = stamp
                    logger.warning(
                        "TLS files changed but cannot be used (%s); keeping the "
                        "certificates in use",
                        exc,
                    )
                return None
            # Read, then stat again: a file replaced while we read is read again next time.
            self._stamp = stamp if _stamp(self._paths) == stamp else self._stamp
            self.reloads += 1
            logger.info("TLS certificates re-read from %s", ", ".join(self._paths))
            return self._configuration(pair, ca)


def server_credentials(
    cert: str, key: str, client_ca: str | None
) -> tuple[grpc.ServerCredentials, CertificateFiles]:
    """Credentials that re-read `cert`, `key` (and `client_ca`: client certificates required)
    whenever they change. Raises PemError when they are not usable now."""
    files = CertificateFiles(cert, key, client_ca)
    return files.credentials(), files
