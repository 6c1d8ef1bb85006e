"""Configuration validation and the node record encoding."""

from __future__ import annotations

import pytest

from electd.config import ConfigError, build_node_config, parse_zk
from electd.engine import NodeRecord, RecordError


def cfg(**kw):
    base = dict(
        zk="127.0.0.1:2181",
        election_path="/election",
        listen="127.0.0.1:0",
        advertise=None,
        node_id=None,
        labels=[],
        session_timeout=10,
        connect_timeout=5,
    )
    return build_node_config(**{**base, **kw})


def test_connect_string_with_chroot_and_ipv6() -> None:
    target = parse_zk("h1:2181,[::1]:2182,h3:2183/apps/electd")
    assert target.hosts == "h1:2181,[::1]:2182,h3:2183"
    assert target.chroot == "/apps/electd"
    assert cfg(zk="h:1/x").zk_path == "/x/election"


def test_defaults_advertise_the_bound_port_and_a_readable_id() -> None:
    c = cfg(listen="127.0.0.1:0")
    assert str(c.advertised(4321)) == "127.0.0.1:4321"
    assert c.resolved_node_id(4321) == "127.0.0.1-4321"
    assert cfg(advertise="db1:7000").resolved_node_id(1) == "db1-7000"


@pytest.mark.parametrize("path", ["/zookeeper/x", "/", "/a/", "/a/../b"])
def test_bad_paths(path: str) -> None:
    with pytest.raises(ConfigError, match="--election-path"):
        cfg(election_path=path)


def test_labels() -> None:
    assert dict(cfg(labels=["zone=a", "k8s.io/x=1"]).labels) == {"zone": "a", "k8s.io/x": "1"}
    with pytest.raises(ConfigError, match="given twice"):
        cfg(labels=["a=1", "a=2"])


def test_record_round_trip_and_rejects() -> None:
    rec = NodeRecord("n1", "h:1", {"zone": "a"}, "0.1.0")
    assert NodeRecord.decode(rec.encode()) == rec
    for bad in (
        b"",
        b"\xff",
        b"[]",
        b'{"v":2,"id":"a","address":"b"}',
        b'{"v":1,"id":"a"}',
        b'{"v":1,"id":"a","address":"b","labels":{"x":1}}',
    ):
        with pytest.raises(RecordError):
            NodeRecord.decode(bad)
    # Unknown keys are ignored (a newer electd may add fields).
    assert NodeRecord.decode(b'{"v":1,"id":"a","address":"b:1","extra":true}').id == "a"
