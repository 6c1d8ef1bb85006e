"""Throwaway security material for `electd dev --secure` and the tests: one CA, the ZooKeeper
server's TLS files, electd's client certificate for ZooKeeper, the nodes' gRPC certificate, a
client certificate for the CLI and grpcurl, and electd's ZooKeeper credentials file.

Everything is written under one directory (keys and the credentials file mode 0600) and lives
as long as it; never for production. Uses devcluster/certs.py (`cryptography`); blocking file
writes on the caller's thread. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from electd.devcluster.certs import CertificateAuthority, Issued
from electd.devcluster.zookeeper import ServerTls

#: The ZooKeeper user electd authenticates as (digest scheme) in dev and tests.
USER = "electd"


@dataclass(frozen=True)
class SecureMaterial:
    """The files of one secure local cluster (see the module docstring)."""

    directory: Path
    ca: Path
    zk_server: ServerTls
    zk_client: Issued
    node: Issued
    cli: Issued
    auth_file: Path
    user: str
    password: str

    def zk_settings(self) -> dict[str, str]:
        """The node settings (by name) that connect to this ZooKeeper over TLS, with auth."""
        return {
            "zk_tls_ca": str(self.ca),
            "zk_tls_cert": str(self.zk_client.cert),
            "zk_tls_key": str(self.zk_client.key),
            "zk_auth_file": str(self.auth_file),
        }

    def node_settings(self) -> dict[str, str]:
        """The node settings of mutual TLS on gRPC."""
        return {
            "tls_cert": str(self.node.cert),
            "tls_key": str(self.node.key),
            "tls_client_ca": str(self.ca),
        }

    def cli_settings(self) -> dict[str, str]:
        """The query commands' settings (and the Python client's) for these nodes."""
        return {
            "tls_ca": str(self.ca),
            "tls_cert": str(self.cli.cert),
            "tls_key": str(self.cli.key),
        }


def create(directory: Path, user: str = USER) -> SecureMaterial:
    """Make a CA and every file of a secure local cluster under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(directory, "electd dev CA")
    zk = ca.server("zookeeper")
    keystore = directory / "zookeeper-keystore.pem"  # ZooKeeper's PEM key store: key + chain
    _write_private(keystore, zk.key.read_bytes() + zk.cert.read_bytes())
    zk_client = ca.issue("electd-zk-client", "electd", dns=("electd",))
    # The readiness probe's own certificate: electd's ZooKeeper client certificate is for
    # electd's processes only.
    probe = ca.issue("zookeeper-probe", "zookeeper-probe")
    node = ca.server("node")
    cli = ca.issue("cli", "electd-cli", dns=("electd-cli",))
    password = secrets.token_urlsafe(32)
    auth_file = directory / "zk-auth"
    _write_private(
        auth_file,
        f"# electd's ZooKeeper digest credentials (USER:PASSWORD)\n{user}:{password}\n".encode(),
    )
    return SecureMaterial(
        directory=directory,
        ca=ca.cert,
        zk_server=ServerTls(
            keystore=keystore,
            truststore=ca.cert,
            probe_ca=ca.cert,
            probe_cert=probe.cert,
            probe_key=probe.key,
        ),
        zk_client=zk_client,
        node=node,
        cli=cli,
        auth_file=auth_file,
        user=user,
        password=password,
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
