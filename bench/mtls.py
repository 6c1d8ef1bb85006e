"""Throwaway mutual-TLS material for the benchmarks (`electd.devcluster.certs`): one CA, the
nodes' server certificate (localhost, 127.0.0.1) and one client certificate, with the flags
each tool takes to use them: `electd serve`, the Python probe, the Go stream client and ghz."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from electd.devcluster.certs import CertificateAuthority, Issued

#: The identity of the benchmarks' client certificate (a DNS SAN).
CLIENT = "electd-bench-client"


@dataclass(frozen=True)
class Material:
    ca: Path
    server: Issued
    client: Issued

    def serve_args(self) -> tuple[str, ...]:
        """`electd serve` over mutual TLS: every client must present a certificate of the CA."""
        return (
            "--tls-cert",
            str(self.server.cert),
            "--tls-key",
            str(self.server.key),
            "--tls-client-ca",
            str(self.ca),
        )

    def watchtool_args(self) -> list[str]:
        """bench/watchtool's flags (crypto/tls via grpc-go's credentials.NewTLS)."""
        return [
            f"-tls-ca={self.ca}",
            f"-tls-cert={self.client.cert}",
            f"-tls-key={self.client.key}",
        ]

    def ghz_args(self) -> list[str]:
        """ghz's flags, in place of --insecure (the target's IP is in the server certificate)."""
        return [f"--cacert={self.ca}", f"--cert={self.client.cert}", f"--key={self.client.key}"]


def create(directory: Path) -> Material:
    """A CA and the server and client certificates it signs, written under `directory`."""
    ca = CertificateAuthority(directory, "electd bench CA")
    return Material(
        ca=ca.cert,
        server=ca.server("node"),
        client=ca.issue("client", CLIENT, dns=(CLIENT,)),
    )
