"""The security settings and the policy's rules, without processes: which right each method
needs (every method not known to read needs write, so new RPCs are covered), how patterns
match, that write follows read unless it has its own patterns, that a half-given TLS pair or a
policy without client certificates fails at start naming the setting, and that the server's
ping policy leaves room for the clients' keepalive contract."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from electd.cli import build_parser
from electd.client import KEEPALIVE_TIME, ElectdError, ElectionClient
from electd.config import ConfigError, NodeConfig, QueryConfig, load_args
from electd.devcluster.certs import CertificateAuthority
from electd.rpc.auth import Pattern, Peer, Policy, Right, host_of, right_of
from electd.rpc.server import Limits


def serve(*argv: str) -> NodeConfig:
    return load_args(NodeConfig, build_parser().parse_args(["serve", *argv]), {})


def test_every_method_not_known_to_read_needs_write() -> None:
    for method in (
        "/electd.v1.ElectionService/GetLeader",
        "/electd.v1.ElectionService/ListNodes",
        "/electd.v1.ElectionService/WatchLeader",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ):
        assert right_of(method) is Right.READ, method
    for method in ("/electd.v1.ElectionService/Campaign", "/electd.v1.ElectionService/Resign"):
        assert right_of(method) is Right.WRITE, method


def test_patterns_match_whole_identities_with_star_for_any_characters() -> None:
    assert Pattern("spiffe://a/reader").matches("spiffe://a/reader")
    assert not Pattern("spiffe://a/reader").matches("spiffe://a/reader2")
    assert Pattern("spiffe://a/ns/*").matches("spiffe://a/ns/x/y")
    assert not Pattern("spiffe://a/ns/*").matches("spiffe://b/ns/x")
    assert Pattern("*.clients.example.com").matches("n1.clients.example.com")
    assert not Pattern("*.clients.example.com").matches("clients.example.com")
    assert Pattern("*").matches("anything at all")
    assert not Pattern("a.b").matches("axb")  # a dot is a dot


def test_write_follows_read_unless_it_has_its_own_patterns() -> None:
    reader = Peer(("spiffe://a/reader",), "ipv4:10.0.0.1:5000")
    writer = Peer(("spiffe://a/writer",), "ipv4:10.0.0.2:5000")
    nobody = Peer((), "ipv6:[::1]:5000")
    campaign = "/electd.v1.ElectionService/Campaign"

    open_policy = Policy.of([], [])
    assert open_policy.check(nobody, Right.READ, "m") is None
    assert open_policy.check(nobody, Right.WRITE, campaign) is None

    read_only = Policy.of(["spiffe://a/*"], [])
    assert read_only.check(reader, Right.WRITE, campaign) is None  # write follows read
    denied = read_only.check(nobody, Right.WRITE, campaign)
    assert denied is not None and denied[0] == grpc.StatusCode.UNAUTHENTICATED

    split = Policy.of(["spiffe://a/*"], ["spiffe://a/writer"])
    assert split.check(reader, Right.READ, "m") is None
    assert split.check(writer, Right.WRITE, campaign) is None
    denied = split.check(reader, Right.WRITE, campaign)
    assert denied is not None and denied[0] == grpc.StatusCode.PERMISSION_DENIED
    assert "spiffe://a/reader" in denied[1] and "write right" in denied[1]
    assert "--allow-write" in denied[1]


def test_peers_without_identity_are_counted_by_ip() -> None:
    assert host_of("ipv4:127.0.0.1:5123") == "127.0.0.1"
    assert host_of("ipv6:[::1]:5123") == "::1"
    assert Peer((), "ipv4:10.1.2.3:9").key == "ip:10.1.2.3"
    assert Peer(("spiffe://a/x", "x.example"), "ipv4:10.1.2.3:9").key == "id:spiffe://a/x"


def test_security_settings_that_cannot_work_fail_at_start(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    one, two = ca.server("one"), ca.server("two")
    cfg = serve("--tls-cert", str(one.cert), "--tls-key", str(one.key))
    assert cfg.tls_cert == str(one.cert) and cfg.tls_client_ca is None
    assert cfg.allow_read == () and cfg.reflection_enabled and cfg.max_streams_per_peer == 1000

    with pytest.raises(ConfigError, match=r"^--tls-cert: needs --tls-key"):
        serve("--tls-cert", str(one.cert))
    with pytest.raises(ConfigError, match=r"^--tls-key: the key in .* does not belong"):
        serve("--tls-cert", str(one.cert), "--tls-key", str(two.key))
    with pytest.raises(ConfigError, match=r"^--tls-cert: cannot read"):
        serve("--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(one.key))
    with pytest.raises(ConfigError, match=r"^--tls-client-ca: needs --tls-cert"):
        serve("--tls-client-ca", str(ca.cert))
    with pytest.raises(ConfigError, match=r"^--allow-read: .* needs --tls-client-ca"):
        serve("--tls-cert", str(one.cert), "--tls-key", str(one.key), "--allow-read", "x")
    with pytest.raises(ConfigError, match=r"^--allow-write: 'a b' is not an identity pattern"):
        serve("--allow-write", "a b")
    env = {"ELECTD_ALLOW_READ": "spiffe://a/r,spiffe://a/s", "ELECTD_TLS_CLIENT_CA": str(ca.cert)}
    cfg = load_args(
        NodeConfig,
        build_parser().parse_args(
            ["serve", "--tls-cert", str(one.cert), "--tls-key", str(one.key)]
        ),
        env,
    )
    assert cfg.allow_read == ("spiffe://a/r", "spiffe://a/s")


def test_client_tls_options_need_both_halves_of_a_pair(tmp_path: Path) -> None:
    args = build_parser().parse_args(["leader", "--tls-key", "k.pem"])
    with pytest.raises(ConfigError, match=r"^--tls-key: needs --tls-cert"):
        load_args(QueryConfig, args, {})
    with pytest.raises(ElectdError, match=r"^tls_cert: needs tls_key"):
        ElectionClient(["127.0.0.1:1"], tls_cert="c.pem")
    with pytest.raises(ElectdError, match=r"^tls_ca: cannot read"):
        ElectionClient(["127.0.0.1:1"], tls_ca=str(tmp_path / "missing.pem"))
    with ElectionClient(["127.0.0.1:1"], tls_server_name="node.example") as client:
        assert client.transport.tls  # the name alone turns TLS on (the system's roots)
    # Rule 1: an empty value is not given (example programs pass their flags' "" defaults).
    with ElectionClient(["127.0.0.1:1"], tls_ca="", tls_cert="", tls_key="") as client:
        assert not client.transport.tls


def test_the_ping_policy_leaves_room_for_the_clients_keepalive() -> None:
    """The clients ping every 3 s (clients/README.md); the server strikes pings that come
    sooner than its minimum interval, so that interval must stay below the contract's."""
    limits = Limits()
    options = dict(limits.options())
    assert options["grpc.http2.min_ping_interval_without_data_ms"] < KEEPALIVE_TIME * 1000
    assert options["grpc.http2.max_ping_strikes"] > 0  # a ping flood does get GOAWAY
    assert options["grpc.max_receive_message_length"] == 65_536
    assert options["grpc.max_connection_age_ms"] > options["grpc.max_connection_idle_ms"]
    cfg = serve("--max-connection-age", "0", "--max-connection-idle", "0")
    assert cfg.max_connection_age == 0 and cfg.max_connection_idle == 0
