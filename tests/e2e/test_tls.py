"""TLS, mutual TLS, the authorization policy and the transport limits, against real `electd
serve` processes and real clients (the Python library, raw grpcio stubs, grpcurl,
grpc-health-probe, Python's ssl module), with a throwaway CA made by each test
(electd.devcluster.certs).

The invariants: a TLS node speaks to no plaintext client and to no client without a
certificate of its client CA; identities come only from verified certificates; an identity
without the right gets PERMISSION_DENIED naming it and the right; certificates are re-read
without a restart and open streams carry on; one identity's stream flood cannot lock another
out; oversized requests are refused; the connection age limit ends streams with a status the
clients fail over on, never silently."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from electd.client import ElectdError, ElectionClient, probe
from electd.devcluster.certs import CertificateAuthority, Issued, serial_of
from electd.devcluster.cluster import NodeProcess, wait_until
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc
from tests.conftest import NodeFactory
from tests.e2e.test_tools import GRPCURL, PROBE, SERVICE

READER = "spiffe://electd.test/reader"
FLOOD = "spiffe://electd.test/flood"
STRANGER = "spiffe://electd.test/stranger"


class Pki:
    """A CA, a server certificate per node, and client certificates by identity."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = CertificateAuthority(root / "ca")
        self.clients: dict[str, Issued] = {}

    def node_dir(self, node: str) -> Path:
        """The node's --tls-cert and --tls-key live here (server.pem, server.key)."""
        where = self.root / node
        if not (where / "server.pem").exists():
            self.ca.server("server", where)
        return where

    def serve_flags(self, node: str, *policy: str) -> tuple[str, ...]:
        where = self.node_dir(node)
        return (
            "--tls-cert",
            str(where / "server.pem"),
            "--tls-key",
            str(where / "server.key"),
            "--tls-client-ca",
            str(self.ca.cert),
            *policy,
        )

    def client(self, uri: str) -> Issued:
        if uri not in self.clients:
            stem = uri.rsplit("/", 1)[-1]
            self.clients[uri] = self.ca.issue(stem, f"{stem}-cn", uris=(uri,))
        return self.clients[uri]

    def tls(self, uri: str, ca: Path | None = None) -> dict[str, str]:
        """The client library's TLS options for this identity."""
        issued = self.client(uri)
        return {
            "tls_ca": str(ca or self.ca.cert),
            "tls_cert": str(issued.cert),
            "tls_key": str(issued.key),
        }

    def credentials(self, uri: str | None, ca: Path | None = None) -> grpc.ChannelCredentials:
        """Raw grpc credentials: this identity's certificate (None: no certificate)."""
        root = (ca or self.ca.cert).read_bytes()
        if uri is None:
            return grpc.ssl_channel_credentials(root)
        issued = self.client(uri)
        return grpc.ssl_channel_credentials(root, issued.key.read_bytes(), issued.cert.read_bytes())


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


def wait_serving(proc: NodeProcess, tls: dict[str, str]) -> None:
    wait_until(
        lambda: probe(proc.address, timeout=1, **tls) == "SERVING" or not proc.alive(),
        20,
        f"{proc.node_id} serving over TLS",
    )
    assert proc.alive(), proc.log_text()


def secure_stub(
    proc: NodeProcess, creds: grpc.ChannelCredentials
) -> tuple[grpc.Channel, pb_grpc.ElectionServiceStub]:
    channel = grpc.secure_channel(proc.address, creds)
    return channel, pb_grpc.ElectionServiceStub(channel)


def rpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


class Stream:
    """A raw WatchLeader stream read by a thread."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.messages: list[pb.WatchLeaderResponse] = []
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self.call = pb_grpc.ElectionServiceStub(channel).WatchLeader(pb.WatchLeaderRequest())
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for msg in self.call:
                self.messages.append(msg)
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def close(self) -> None:
        self.call.cancel()
        self.channel.close()


def test_a_tls_node_refuses_plaintext_unknown_cas_and_clients_without_certificates(
    nodes: NodeFactory, pki: Pki, tmp_path: Path
) -> None:
    """Only a client that trusts the node's CA and presents a certificate of the client CA
    gets an answer; everyone else fails at the handshake (UNAVAILABLE), before any RPC."""
    n1 = nodes.start("n1", extra=pki.serve_flags("n1"))
    wait_serving(n1, pki.tls(READER))
    other = CertificateAuthority(tmp_path / "other-ca", name="other CA")
    foreign = other.issue("foreign", "foreign", uris=(READER,))  # the same name, wrong CA

    with ElectionClient([n1.address], **pki.tls(READER)) as client:
        assert client.get_leader().leader.node.id == "n1"  # the right client reads

    refused = {
        "plaintext": grpc.insecure_channel(n1.address),
        "no client certificate": grpc.secure_channel(n1.address, pki.credentials(None)),
        "client certificate of another CA": grpc.secure_channel(
            n1.address,
            grpc.ssl_channel_credentials(
                pki.ca.cert.read_bytes(), foreign.key.read_bytes(), foreign.cert.read_bytes()
            ),
        ),
        "server not trusted": grpc.secure_channel(
            n1.address, pki.credentials(READER, ca=other.cert)
        ),
    }
    for what, channel in refused.items():
        with channel:
            stub = pb_grpc.ElectionServiceStub(channel)
            err = rpc_error(lambda stub=stub: stub.GetLeader(pb.GetLeaderRequest(), timeout=5))
            assert err.code() == grpc.StatusCode.UNAVAILABLE, (what, err)
    assert probe(n1.address, timeout=2) == "UNREACHABLE"  # plaintext health: no answer either

    # The library reports a refused handshake as "no node answered", like any dead address.
    with ElectionClient([n1.address], tls_ca=str(pki.ca.cert)) as client:
        with pytest.raises(ElectdError) as info:
            client.get_leader()
        assert info.value.no_node_answered and info.value.code == grpc.StatusCode.UNAVAILABLE


def test_the_policy_grants_read_by_identity_and_names_who_is_denied(
    nodes: NodeFactory, pki: Pki
) -> None:
    """--allow-read admits the identities it matches to every read method (the election
    service, health, reflection); another verified identity gets PERMISSION_DENIED naming it
    and the right; a certificate without any name has no identity: UNAUTHENTICATED."""
    n1 = nodes.start(
        "n1", extra=pki.serve_flags("n1", "--allow-read", READER, "--allow-read", FLOOD)
    )
    wait_serving(n1, pki.tls(READER))

    with ElectionClient([n1.address], **pki.tls(READER)) as client:
        assert client.get_leader().leader.node.id == "n1"
        assert [n.id for n in client.list_nodes().nodes] == ["n1"]
        watch = client.watch_leader()
        assert next(watch).node.id == "n1"
        watch.cancel()

    with (
        ElectionClient([n1.address], **pki.tls(STRANGER)) as client,
        pytest.raises(ElectdError) as info,
    ):
        client.get_leader()
    err = info.value
    assert err.code == grpc.StatusCode.PERMISSION_DENIED and not err.no_node_answered
    assert STRANGER in err.details and "read right" in err.details, err.details

    channel, stub = secure_stub(n1, pki.credentials(STRANGER))
    with channel:
        denied = rpc_error(lambda: next(iter(stub.WatchLeader(pb.WatchLeaderRequest()))))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        assert STRANGER in (denied.details() or "")
    # Health sits behind the same policy.
    assert probe(n1.address, timeout=2, **pki.tls(STRANGER)) == "UNREACHABLE"
    assert probe(n1.address, timeout=2, **pki.tls(READER)) == "SERVING"

    nameless = pki.ca.issue("nameless", "")  # verified, but no SAN and no CN
    creds = grpc.ssl_channel_credentials(
        pki.ca.cert.read_bytes(), nameless.key.read_bytes(), nameless.cert.read_bytes()
    )
    channel, stub = secure_stub(n1, creds)
    with channel:
        anonymous = rpc_error(lambda: stub.GetLeader(pb.GetLeaderRequest(), timeout=5))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED, anonymous


def test_grpcurl_and_grpc_health_probe_against_a_mutual_tls_node(
    nodes: NodeFactory, pki: Pki
) -> None:
    """The README's TLS commands, exactly: grpcurl lists, describes and calls over
    reflection, and grpc-health-probe reports SERVING, both with a client certificate; with
    an identity the policy does not admit, both fail."""
    n1 = nodes.start("n1", extra=pki.serve_flags("n1", "--allow-read", READER))
    wait_serving(n1, pki.tls(READER))
    reader, stranger = pki.client(READER), pki.client(STRANGER)
    ca = str(pki.ca.cert)

    def grpcurl(who: Issued, *args: str) -> subprocess.CompletedProcess[str]:
        tls = ["-cacert", ca, "-cert", str(who.cert), "-key", str(who.key)]
        return subprocess.run([GRPCURL, *tls, *args], capture_output=True, text=True, timeout=30)

    listed = grpcurl(reader, n1.address, "list")
    assert listed.returncode == 0, listed.stderr
    assert {SERVICE, "grpc.health.v1.Health"} <= set(listed.stdout.split())
    described = grpcurl(reader, n1.address, "describe", SERVICE)
    assert "GetLeader returns the current leader" in described.stdout, described.stderr
    leader = grpcurl(reader, n1.address, f"{SERVICE}/GetLeader")
    assert leader.returncode == 0 and '"id": "n1"' in leader.stdout, leader.stderr

    denied = grpcurl(stranger, n1.address, f"{SERVICE}/GetLeader")
    assert denied.returncode != 0 and "PermissionDenied" in denied.stderr, denied.stderr
    assert STRANGER in denied.stderr
    plain = subprocess.run(
        [GRPCURL, "-plaintext", n1.address, "list"], capture_output=True, text=True, timeout=30
    )
    assert plain.returncode != 0

    def health_probe(who: Issued) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                PROBE,
                "-addr",
                n1.address,
                "-tls",
                "-tls-ca-cert",
                ca,
                "-tls-client-cert",
                str(who.cert),
                "-tls-client-key",
                str(who.key),
                "-connect-timeout",
                "5s",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

    ok = health_probe(reader)
    assert ok.returncode == 0 and "SERVING" in ok.stdout + ok.stderr, ok.stderr
    refused = health_probe(stranger)
    assert refused.returncode != 0 and "PermissionDenied" in refused.stdout + refused.stderr


def served_serial(address: str, cafile: Path, client: Issued) -> int:
    """The serial number of the certificate the node serves to a new connection (Python's
    ssl module, as an HTTP/2 client would start)."""
    host, port = address.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.load_cert_chain(str(client.cert), str(client.key))
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_rotated_certificates_serve_new_connections_while_open_streams_carry_on(
    nodes: NodeFactory, pki: Pki, tmp_path: Path
) -> None:
    """Replacing the files of --tls-cert and --tls-key (here: by a certificate of a new CA)
    changes what new connections get, without a restart, while a WatchLeader stream opened
    before the rotation keeps running and reports the next leader change."""
    n1 = nodes.start("n1", extra=pki.serve_flags("n1"))
    wait_serving(n1, pki.tls(READER))
    n2 = nodes.start("n2", extra=pki.serve_flags("n2"))
    wait_serving(n2, pki.tls(READER))
    reader = pki.client(READER)
    old_serial = serial_of((pki.node_dir("n2") / "server.pem").read_bytes())

    stream = Stream(grpc.secure_channel(n2.address, pki.credentials(READER)))
    try:
        wait_until(lambda: stream.messages or stream.ended.is_set(), 10, "first message")
        assert stream.messages[0].leader.node.id == "n1", stream.error

        new_ca = CertificateAuthority(tmp_path / "new-ca", name="new CA")
        fresh = new_ca.server("server", tmp_path / "fresh")
        both = tmp_path / "both-cas.pem"
        both.write_bytes(pki.ca.cert.read_bytes() + new_ca.cert.read_bytes())
        assert served_serial(n2.address, both, reader) == old_serial
        target = pki.node_dir("n2")
        for src, name in ((fresh.key, "server.key"), (fresh.cert, "server.pem")):
            shutil.copyfile(src, target / f".{name}.new")
            os.replace(target / f".{name}.new", target / name)  # atomic, like a cert manager
        new_serial = serial_of(fresh.cert.read_bytes())

        assert served_serial(n2.address, both, reader) == new_serial
        with ElectionClient([n2.address], **pki.tls(READER, ca=new_ca.cert)) as client:
            assert client.get_leader().leader.node.id == "n1"  # trusts only the new CA
        with ElectionClient([n2.address], **pki.tls(READER)) as client, pytest.raises(ElectdError):
            client.get_leader()  # trusts only the old one: no new connection any more

        assert not stream.ended.is_set(), stream.error
        n1.stop()
        wait_until(
            lambda: any(m.leader.node.id == "n2" for m in stream.messages) or stream.ended.is_set(),
            20,
            "the stream opened before the rotation reports n2",
        )
        assert not stream.ended.is_set(), stream.error
        epochs = [m.leader.epoch for m in stream.messages if m.state == pb.LEADER_STATE_ELECTED]
        assert epochs == sorted(set(epochs)) and len(epochs) >= 2
    finally:
        stream.close()
    assert "TLS certificates re-read" in n2.log_text(200)


def test_a_stream_flood_from_one_identity_leaves_room_for_another(
    nodes: NodeFactory, pki: Pki
) -> None:
    """--max-streams-per-peer caps one identity's streams below the node's --max-streams:
    the flooding identity gets RESOURCE_EXHAUSTED naming it, another identity still watches."""
    n1 = nodes.start(
        "n1",
        extra=pki.serve_flags("n1", "--max-streams-per-peer", "3", "--max-streams", "10"),
    )
    wait_serving(n1, pki.tls(READER))
    floods = [Stream(grpc.secure_channel(n1.address, pki.credentials(FLOOD))) for _ in range(3)]
    extra: Stream | None = None
    reader: Stream | None = None
    try:
        for s in floods:
            wait_until(lambda s=s: s.messages or s.ended.is_set(), 10, "flood stream open")
            assert s.messages and not s.ended.is_set(), s.error
        extra = Stream(grpc.secure_channel(n1.address, pki.credentials(FLOOD)))
        assert extra.ended.wait(10), "a fourth stream of one identity was admitted"
        assert extra.error is not None and extra.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert FLOOD in (extra.error.details() or "") and not extra.messages

        reader = Stream(grpc.secure_channel(n1.address, pki.credentials(READER)))
        wait_until(lambda: reader.messages or reader.ended.is_set(), 10, "reader's stream")
        assert reader.messages[0].leader.node.id == "n1", reader.error
        assert all(not s.ended.is_set() for s in floods)

        floods.pop().close()  # a slot of the flooder's own frees up again
        again = Stream(grpc.secure_channel(n1.address, pki.credentials(FLOOD)))
        floods.append(again)
        wait_until(lambda: again.messages or again.ended.is_set(), 10, "flood stream again")
        assert again.messages, again.error
    finally:
        for s in [*floods, extra, reader]:
            if s is not None:
                s.close()


def test_plaintext_peers_are_capped_per_ip_and_reflection_can_be_turned_off(
    nodes: NodeFactory,
) -> None:
    """Without TLS a peer is its IP address: the per-peer cap counts every stream from it
    (RESOURCE_EXHAUSTED names the address). `--reflection off` removes reflection."""
    n1 = nodes.start("n1", extra=("--max-streams-per-peer", "2", "--reflection", "off"))
    wait_until(lambda: probe(n1.address, timeout=1) == "SERVING", 20, "n1 serving")
    streams = [Stream(grpc.insecure_channel(n1.address)) for _ in range(3)]
    try:
        wait_until(lambda: sum(s.ended.is_set() for s in streams) == 1, 10, "one refused")
        refused = next(s for s in streams if s.ended.is_set())
        assert refused.error is not None
        assert refused.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "unauthenticated 127.0.0.1" in (refused.error.details() or "")
    finally:
        for s in streams:
            s.close()
    listed = subprocess.run(
        [GRPCURL, "-plaintext", n1.address, "list"], capture_output=True, text=True, timeout=30
    )
    assert listed.returncode != 0 and "reflection" in listed.stderr.lower(), listed.stderr


def test_a_too_large_request_is_refused_with_resource_exhausted(
    nodes: NodeFactory, pki: Pki
) -> None:
    """Requests are tiny: one above --max-recv-message-bytes (default 64 KiB) is refused by the
    transport before any handler sees it, while the largest valid one passes."""
    n1 = nodes.start("n1", extra=pki.serve_flags("n1"))
    wait_serving(n1, pki.tls(READER))
    channel, stub = secure_stub(n1, pki.credentials(READER))
    with channel:
        big = pb.ListNodesRequest(label_selector={"k": "v" * 100_000})
        err = rpc_error(lambda: stub.ListNodes(big, timeout=5))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
        largest = pb.ListNodesRequest(
            label_selector={f"k{i:02d}" + "x" * 60: "v" * 256 for i in range(64)}
        )
        assert largest.ByteSize() > 20_000
        assert stub.ListNodes(largest, timeout=5).nodes == []  # no member has those labels


def test_the_connection_age_limit_ends_streams_with_a_status_the_clients_resume_from(
    nodes: NodeFactory,
) -> None:
    """--max-connection-age (+ grace) closes every connection, WatchLeader streams included:
    a raw stream ends with UNAVAILABLE (never silently), and the client library's watch fails
    over on it, resumes, and still reports the next leader exactly once."""
    age = ("--max-connection-age", "1", "--max-connection-age-grace", "1")
    n1 = nodes.start("n1", extra=age)
    wait_until(lambda: probe(n1.address, timeout=1) == "SERVING", 20, "n1 serving")
    n2 = nodes.start("n2", extra=age)
    wait_until(lambda: probe(n2.address, timeout=1) == "SERVING", 20, "n2 serving")

    raw = Stream(grpc.insecure_channel(n2.address))
    try:
        assert raw.ended.wait(20), "a stream outlived the connection age limit"
        assert raw.error is not None and raw.error.code() == grpc.StatusCode.UNAVAILABLE
        assert raw.messages and raw.messages[0].leader.node.id == "n1"
    finally:
        raw.close()

    failovers: list[tuple[str, str]] = []
    leaders: list[pb.Leader] = []
    with ElectionClient([n2.address]) as client:
        watch = client.watch_leader(on_failover=lambda a, r: failovers.append((a, r)))
        thread = threading.Thread(target=lambda: leaders.extend(watch), daemon=True)
        thread.start()
        try:
            wait_until(lambda: leaders and failovers, 20, "a leader, then an age cut")
            assert any("UNAVAILABLE" in r for _, r in failovers), failovers
            n1.stop()
            wait_until(lambda: any(x.node.id == "n2" for x in leaders), 30, "n2 reported")
        finally:
            watch.cancel()
            thread.join(10)
    epochs = [x.epoch for x in leaders]
    assert epochs == sorted(set(epochs)), epochs
    assert [x.node.id for x in leaders] == ["n1", "n2"]
