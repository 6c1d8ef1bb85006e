"""Every language's example program over mutual TLS, against a real `electd serve` process with
--tls-cert/--tls-key/--tls-client-ca and an --allow-read policy, with a throwaway CA made by
each test (electd.devcluster.certs).

Per language (clients/README.md, "TLS"): with the right CA and a client certificate the policy
admits, `leader` prints the leader (also with --tls-server-name) and `watch` reports it and
exits 0 on SIGTERM; trusting another CA, the handshake fails and both exit 1 saying no node
answered (UNAVAILABLE); with a verified identity the policy does not admit, both fail with
PERMISSION_DENIED naming that identity.

The clients are built by `make clients` (scripts/build-clients.sh) before the tests run; each
`clients/<lang>/run` builds its client first if it has not been built."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from electd.client import probe
from electd.devcluster.certs import CertificateAuthority, Issued
from electd.devcluster.cluster import NodeProcess, wait_until
from tests.conftest import NodeFactory
from tests.e2e.programs import ROOT, watch

LANGUAGES = ["python", "go", "node", "java", "rust"]

READER = "spiffe://electd.test/reader"
STRANGER = "spiffe://electd.test/stranger"


@dataclass
class Pki:
    ca: CertificateAuthority
    other_ca: CertificateAuthority
    server: Issued
    reader: Issued
    stranger: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = CertificateAuthority(tmp_path / "ca")
    return Pki(
        ca=ca,
        other_ca=CertificateAuthority(tmp_path / "other-ca", name="other CA"),
        server=ca.server("server", tmp_path / "node"),
        reader=ca.issue("reader", "reader-cn", uris=(READER,)),
        stranger=ca.issue("stranger", "stranger-cn", uris=(STRANGER,)),
    )


def tls_flags(ca: Path, who: Issued, *extra: str) -> list[str]:
    return ["--tls-ca", str(ca), "--tls-cert", str(who.cert), "--tls-key", str(who.key), *extra]


def start_tls_node(nodes: NodeFactory, pki: Pki) -> NodeProcess:
    """A node over mutual TLS whose policy lets READER read, and no one else."""
    proc = nodes.start(
        "n1",
        extra=(
            "--tls-cert",
            str(pki.server.cert),
            "--tls-key",
            str(pki.server.key),
            "--tls-client-ca",
            str(pki.ca.cert),
            "--allow-read",
            READER,
        ),
    )
    tls = {
        "tls_ca": str(pki.ca.cert),
        "tls_cert": str(pki.reader.cert),
        "tls_key": str(pki.reader.key),
    }
    wait_until(
        lambda: probe(proc.address, timeout=1, **tls) == "SERVING" or not proc.alive(),
        30,
        "n1 serving over TLS",
    )
    assert proc.alive(), proc.log_text()
    return proc


def run(lang: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "clients" / lang / "run"), "--json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def squashed(text: str) -> str:
    """Lower case without separators: PERMISSION_DENIED, PermissionDenied and "permission
    denied" all become "permissiondenied"."""
    return re.sub(r"[\s_\-]", "", text.lower())


def assert_no_node_answered(lang: str, what: str, proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 1, f"{lang} {what}: exit {proc.returncode}\n{proc.stderr}"
    assert lines(proc.stdout) == [], f"{lang} {what}: printed {proc.stdout}"
    err = squashed(proc.stderr)
    assert "nodeanswered" in err and "unavailable" in err, f"{lang} {what}: {proc.stderr}"


def assert_permission_denied(lang: str, what: str, proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode != 0, f"{lang} {what}: exit 0\n{proc.stdout}"
    assert lines(proc.stdout) == [], f"{lang} {what}: printed {proc.stdout}"
    assert "permissiondenied" in squashed(proc.stderr), f"{lang} {what}: {proc.stderr}"
    assert STRANGER in proc.stderr, f"{lang} {what}: the identity is not named: {proc.stderr}"
    assert "nodeanswered" not in squashed(proc.stderr), f"{lang} {what}: {proc.stderr}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_example_program_over_mutual_tls(lang: str, nodes: NodeFactory, pki: Pki) -> None:
    n1 = start_tls_node(nodes, pki)
    ca = pki.ca.cert

    # The right CA and an identity with the read right: the leader, by IP and by name.
    ok = run(lang, *tls_flags(ca, pki.reader), "leader", n1.address)
    assert ok.returncode == 0, f"{lang} leader: exit {ok.returncode}\n{ok.stderr}"
    leader = lines(ok.stdout)
    assert len(leader) == 1 and list(leader[0]) == ["id", "address", "epoch"], ok.stdout
    assert leader[0]["id"] == "n1" and leader[0]["address"] == n1.address, ok.stdout
    assert isinstance(leader[0]["epoch"], int) and leader[0]["epoch"] > 0, ok.stdout
    named = run(
        lang, *tls_flags(ca, pki.reader, "--tls-server-name", "localhost"), "leader", n1.address
    )
    assert named.returncode == 0, f"{lang} leader --tls-server-name: {named.stderr}"
    assert lines(named.stdout) == leader, named.stdout

    watcher = watch(lang, *tls_flags(ca, pki.reader), n1.address)
    try:
        wait_until(
            lambda: watcher.lines or watcher.proc.poll() is not None, 120, f"{lang} watch reports"
        )
    finally:
        code, err = watcher.stop()
    assert watcher.lines[:1] == leader, f"{lang} watch: {watcher.lines}\n{err}"
    assert code == 0, f"{lang} watch exited {code}: {err}"

    # Trusting another CA: the handshake fails, no node answered (UNAVAILABLE).
    wrong_ca = tls_flags(pki.other_ca.cert, pki.reader)
    assert_no_node_answered(lang, "leader, wrong CA", run(lang, *wrong_ca, "leader", n1.address))
    assert_no_node_answered(lang, "watch, wrong CA", run(lang, *wrong_ca, "watch", n1.address))

    # A verified identity without the read right: PERMISSION_DENIED, naming it.
    stranger = tls_flags(ca, pki.stranger)
    assert_permission_denied(
        lang, "leader, no read right", run(lang, *stranger, "leader", n1.address)
    )
    assert_permission_denied(
        lang, "watch, no read right", run(lang, *stranger, "watch", n1.address)
    )
