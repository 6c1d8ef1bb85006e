"""The operator's tools against a live node: exactly the README's grpcurl commands over server
reflection, and grpc-health-probe, which reports SERVING on a joined node and fails on a node
cut off from ZooKeeper. Both are pinned and built by scripts/install-go-tools.sh."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from electd.devcluster.cluster import wait_until
from tests.conftest import NodeFactory
from tests.e2e.helpers import wait_joined
from tests.support.tcpproxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
GRPCURL = str(ROOT / ".tools" / "bin" / "grpcurl")
PROBE = str(ROOT / ".tools" / "bin" / "grpc-health-probe")
SERVICE = "electd.v1.ElectionService"


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30
    )


def test_grpcurl_list_describe_and_calls(nodes: NodeFactory) -> None:
    n1 = nodes.start("n1", extra=("--label", "zone=a"))
    wait_joined(n1)
    n2 = nodes.start("n2", extra=("--label", "zone=b"))
    wait_joined(n2)
    addr = n1.address

    listed = grpcurl(addr, "list")
    assert listed.returncode == 0, listed.stderr
    assert {SERVICE, "grpc.health.v1.Health"} <= set(listed.stdout.split())

    described = grpcurl(addr, "describe", SERVICE)
    assert described.returncode == 0, described.stderr
    for text in (
        "rpc GetLeader",
        "rpc ListNodes",
        "rpc WatchLeader",
        "stream .electd.v1.WatchLeaderResponse",
        "GetLeader returns the current leader",
    ):  # the proto's comments are served
        assert text in described.stdout, described.stdout
    message = grpcurl(addr, "describe", "electd.v1.Leader")
    assert "epoch is the fencing token" in message.stdout

    leader = grpcurl(addr, f"{SERVICE}/GetLeader")
    assert leader.returncode == 0, leader.stderr
    doc = json.loads(leader.stdout)
    assert doc["leader"]["node"]["id"] == "n1" and int(doc["leader"]["epoch"]) > 0

    listed_nodes = json.loads(grpcurl(addr, f"{SERVICE}/ListNodes").stdout)
    assert [n["id"] for n in listed_nodes["nodes"]] == ["n1", "n2"]
    filtered = grpcurl("-d", '{"label_selector": {"zone": "b"}}', addr, f"{SERVICE}/ListNodes")
    assert [n["id"] for n in json.loads(filtered.stdout)["nodes"]] == ["n2"]

    # The stream: the first message is the current leader; -max-time ends it.
    stream = grpcurl("-max-time", "2", addr, f"{SERVICE}/WatchLeader")
    first = json.loads(stream.stdout.split("\n}\n")[0] + "\n}")
    assert first["state"] == "LEADER_STATE_ELECTED" and first["leader"]["node"]["id"] == "n1"

    bad = grpcurl("-d", '{"min_epoch": -1}', addr, f"{SERVICE}/WatchLeader")
    assert bad.returncode != 0 and "InvalidArgument" in bad.stderr and "min_epoch" in bad.stderr


def test_grpc_health_probe_follows_the_session(nodes: NodeFactory, zk) -> None:
    server = zk.servers[0]
    proxy = TcpProxy(server.host, server.client_port)
    try:
        n1 = nodes.start("n1", zk=proxy.address, session_timeout=2.0)
        wait_joined(n1)

        def probe() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [PROBE, "-addr", n1.address, "-connect-timeout", "2s"],
                capture_output=True,
                text=True,
                timeout=30,
            )

        ok = probe()
        assert ok.returncode == 0 and "SERVING" in ok.stdout + ok.stderr, ok.stderr
        proxy.block()
        bad = wait_until(lambda: (r := probe()).returncode != 0 and r, 10, "probe fails")
        assert "NOT_SERVING" in bad.stdout + bad.stderr
        proxy.unblock()
        wait_until(lambda: probe().returncode == 0, 20, "probe passes again")
    finally:
        proxy.close()
