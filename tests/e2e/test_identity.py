"""`electd identity` against real node processes and a real ZooKeeper: it shows the cluster
identity the nodes created, carries the cluster on with an epoch floor (running nodes accept
it and hand out higher epochs), and node processes refuse a path of another cluster."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
from kazoo.client import KazooClient

from electd.devcluster.cluster import wait_until
from electd.engine.identity import ClusterIdentity
from electd.v1 import election_service_pb2 as pb
from tests.conftest import NodeFactory
from tests.e2e.helpers import health, leader_of, stub, wait_joined


def identity(zk: str, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "electd", "identity", "--zk", zk, "--election-path", path, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_identity_shows_and_carries_the_cluster_on(nodes: NodeFactory, zk) -> None:
    n1 = nodes.start("n1")
    wait_joined(n1)
    n2 = nodes.start("n2")
    wait_joined(n2)
    shown = identity(zk.connect_string, nodes.path)
    assert shown.returncode == 0, shown.stderr
    first = json.loads(shown.stdout)
    assert first["epoch_base"] == 0 and len(first["cluster"]) == 32
    epoch = leader_of(n2).epoch
    floor = epoch + 1_000_000
    carried = identity(zk.connect_string, nodes.path, "--epoch-floor", str(floor))
    assert carried.returncode == 0, carried.stderr
    second = json.loads(carried.stdout)
    assert second["previous"] == first["cluster"] and second["epoch_base"] == floor
    # The running nodes adopt the identity that carries theirs on at once: the epoch jumps above
    # the floor, and the next term's too.
    wait_until(lambda: (leader_of(n2) or pb.Leader()).epoch > floor, 20, "epochs above the floor")
    n1.stop()
    wait_until(lambda: (leader_of(n2) or pb.Leader()).node.id == "n2", 20, "n2 leads")
    assert leader_of(n2).epoch > floor and health(n2) == "SERVING"


def test_a_node_refuses_a_path_of_another_cluster(nodes: NodeFactory, zk) -> None:
    other = ClusterIdentity.new()
    kz = KazooClient(hosts=zk.connect_string)
    kz.start(10)
    try:
        kz.create(nodes.path, other.encode(), makepath=True)
    finally:
        kz.stop()
        kz.close()
    n1 = nodes.start("n1", extra=("--cluster-id", "ab" * 16))
    wait_until(lambda: "belongs to cluster" in n1.log_text(), 20, "n1 refuses")
    assert health(n1) == "NOT_SERVING"
    try:
        stub(n1).GetLeader(pb.GetLeaderRequest(), timeout=2)
        raise AssertionError("a refusing node answered GetLeader")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE
        assert other.cluster in (exc.details() or "")
    errors = [r for r in n1.log_records() if r.get("level") == "ERROR"]
    assert len(errors) == 1, errors  # once, not once per retry
    assert other.cluster in errors[0]["msg"] and "ab" * 16 in errors[0]["msg"]


def test_identity_reports_bad_input_clearly(zk) -> None:
    bad = identity(zk.connect_string, "/identity-test/x", "--previous", "ab" * 16)
    assert bad.returncode == 2 and "--previous: only with --epoch-floor" in bad.stderr
    bad = identity(zk.connect_string, "/identity-test/x", "--epoch-floor", "-1")
    assert bad.returncode == 2 and "--epoch-floor" in bad.stderr
    missing = identity(zk.connect_string, "/identity-test/none")
    assert missing.returncode == 1 and "has no cluster identity" in missing.stderr
