"""Real electd processes on a real ZooKeeper: failover by SIGTERM and SIGKILL, a middle node
leaving, health and streams following the session, a paused leader, the gRPC API, a burst of
watchers."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import pytest

from electd.devcluster.cluster import wait_until
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc
from tests.conftest import NodeFactory
from tests.e2e.helpers import Watcher, health, leader_id, leader_of, stub, wait_joined
from tests.support.tcpproxy import TcpProxy


def three(nodes: NodeFactory, session_timeout: float = 2.0):
    procs = []
    for name in ("n1", "n2", "n3"):
        proc = nodes.start(name, session_timeout=session_timeout)
        wait_joined(proc)
        procs.append(proc)
    return procs


def test_three_nodes_first_leads_and_list_shows_the_watch_chain(nodes: NodeFactory) -> None:
    n1, n2, n3 = three(nodes)
    for proc in (n1, n2, n3):
        assert leader_id(proc) == "n1"
    resp = stub(n3).ListNodes(pb.ListNodesRequest(), timeout=2)
    assert [n.id for n in resp.nodes] == ["n1", "n2", "n3"]
    assert [n.is_leader for n in resp.nodes] == [True, False, False]
    assert resp.nodes[1].watches == resp.nodes[0].znode
    assert resp.nodes[2].watches == resp.nodes[1].znode
    assert resp.epoch == leader_of(n2).epoch
    assert [n.address for n in resp.nodes] == [n1.address, n2.address, n3.address]
    logs = "\n".join(r["msg"] for r in n1.log_records())
    assert "I am a new leader" in logs


def test_sigterm_of_the_leader_hands_over_and_every_stream_sees_it(nodes: NodeFactory) -> None:
    n1, n2, n3 = three(nodes)
    first = leader_of(n3)
    watchers = [Watcher(p) for p in (n1, n2, n3)]
    for w in watchers:
        w.wait_for(lambda m: m.state == pb.LEADER_STATE_ELECTED and m.leader.node.id == "n1")
    t0 = time.monotonic()
    n1.signal(signal.SIGTERM)
    got = [w.wait_for(lambda m: m.leader.node.id == "n2", what="n2 elected") for w in watchers[1:]]
    assert n1.wait(15) == 0  # graceful exit
    assert watchers[0].ended.wait(5) and watchers[0].error is None  # its stream ended cleanly
    for (_, msg), w in zip(got, watchers[1:], strict=True):
        assert msg.leader.epoch > first.epoch
        epochs = [m.leader.epoch for _, m in w.drain() if m.state == pb.LEADER_STATE_ELECTED]
        assert epochs == sorted(set(epochs)), "epochs strictly increase on every stream"
    print(
        f"\nSIGTERM failover seen by streams: "
        f"{', '.join(f'{(t - t0) * 1000:.1f} ms' for t, _ in got)}"
    )
    for w in watchers:
        w.close()


def test_sigkill_of_the_leader_fails_over_within_the_session_timeout(nodes: NodeFactory) -> None:
    timeout = 2.0
    n1, n2, n3 = three(nodes, session_timeout=timeout)
    watch = Watcher(n3)
    watch.wait_for(lambda m: m.leader.node.id == "n1")
    t0 = time.monotonic()
    n1.kill()
    t, _msg = watch.wait_for(lambda m: m.leader.node.id == "n2", timeout=timeout + 5)
    took = t - t0
    print(f"\nSIGKILL failover: {took * 1000:.0f} ms (session timeout {timeout:g} s)")
    assert took < timeout * 1.5 + 0.5
    assert leader_id(n2) == "n2"
    watch.close()


def test_a_middle_node_leaving_changes_no_leader_and_repairs_the_chain(nodes: NodeFactory) -> None:
    _n1, n2, n3 = three(nodes)
    watch = Watcher(n3)
    _, first = watch.wait_for(lambda m: m.leader.node.id == "n1")
    n2.signal(signal.SIGTERM)
    assert n2.wait(15) == 0

    def repaired():
        resp = stub(n3).ListNodes(pb.ListNodesRequest(), timeout=2)
        return [n.id for n in resp.nodes] == ["n1", "n3"] and resp.nodes[1].watches == resp.nodes[
            0
        ].znode

    wait_until(repaired, 15, "chain repaired")
    assert [m.leader.epoch for _, m in watch.drain()] == [first.leader.epoch]  # no change
    watch.close()


def test_health_and_streams_follow_the_session(nodes: NodeFactory, zk) -> None:
    server = zk.servers[0]
    proxy = TcpProxy(server.host, server.client_port)
    try:
        n1 = nodes.start("n1")
        wait_joined(n1)
        n2 = nodes.start("n2", zk=proxy.address, session_timeout=2.0)
        wait_joined(n2)
        watch = Watcher(n2)
        watch.wait_for(lambda m: m.state == pb.LEADER_STATE_ELECTED)
        proxy.block()
        watch.wait_for(lambda m: m.state == pb.LEADER_STATE_UNKNOWN, timeout=5, what="UNKNOWN")
        wait_until(lambda: health(n2) == "NOT_SERVING", 5, "n2 NOT_SERVING")
        with pytest.raises(grpc.RpcError) as err:
            stub(n2).GetLeader(pb.GetLeaderRequest(), timeout=2)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as err:
            stub(n2).ListNodes(pb.ListNodesRequest(), timeout=2)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert health(n1) == "SERVING"
        proxy.unblock()
        wait_until(lambda: health(n2) == "SERVING", 20, "n2 SERVING again")
        watch.wait_for(
            lambda m: m.state == pb.LEADER_STATE_ELECTED and m.leader.node.id == "n1",
            what="n1 again",
        )
        watch.close()
    finally:
        proxy.close()


def test_a_paused_leader_stops_vouching_and_never_claims_after_its_successor(
    nodes: NodeFactory,
) -> None:
    n1, n2, _ = three(nodes, session_timeout=1.0)
    epoch = leader_of(n2).epoch
    n1.signal(signal.SIGSTOP)
    wait_until(lambda: leader_id(n2) == "n2", 10, "n2 leads while n1 is paused")
    n1.signal(signal.SIGCONT)
    # From the moment it runs again, n1 either refuses to answer or names n2: its lease ran out
    # while it was paused, so it must not name itself.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        leader = leader_of(n1)
        assert leader is None or (leader.node.id == "n2" and leader.epoch > epoch)
    wait_until(lambda: leader_id(n1) == "n2", 15, "n1 rejoined as follower")


def test_invalid_requests_get_invalid_argument_naming_the_field(nodes: NodeFactory) -> None:
    n1 = nodes.start("n1")
    wait_joined(n1)
    with pytest.raises(grpc.RpcError) as err:
        next(iter(stub(n1).WatchLeader(pb.WatchLeaderRequest(min_epoch=-1), timeout=2)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "min_epoch" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub(n1).ListNodes(pb.ListNodesRequest(label_selector={"": "x"}), timeout=2)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "label_selector" in err.value.details()


def test_labels_and_min_epoch(nodes: NodeFactory) -> None:
    n1 = nodes.start("n1", extra=("--label", "zone=a", "--label", "tier=gold"))
    wait_joined(n1)
    n2 = nodes.start("n2", extra=("--label", "zone=b"))
    wait_joined(n2)
    resp = stub(n2).ListNodes(pb.ListNodesRequest(label_selector={"zone": "b"}), timeout=2)
    assert [n.id for n in resp.nodes] == ["n2"]
    assert dict(stub(n2).ListNodes(pb.ListNodesRequest(), timeout=2).nodes[0].labels) == {
        "zone": "a",
        "tier": "gold",
    }
    epoch = leader_of(n2).epoch
    ahead = Watcher(n2, min_epoch=epoch + 1)  # holds back the current leader
    behind = Watcher(n2, min_epoch=epoch)
    behind.wait_for(lambda m: m.leader.epoch == epoch)
    n1.signal(signal.SIGTERM)
    _, msg = ahead.wait_for(lambda m: m.state == pb.LEADER_STATE_ELECTED)
    assert msg.leader.node.id == "n2" and msg.leader.epoch > epoch
    for w in (ahead, behind):
        w.close()


def test_a_burst_of_watchers_opening_at_once_all_get_the_leader(nodes: NodeFactory) -> None:
    """Thousands of watchers reconnecting in the same instant (after a failover) must all be
    served: with gRPC's default pending-call limits 3,000 calls at once lost ~20 % (CANCELLED)."""
    total, per_channel = 3000, 100
    # Every watcher here comes from 127.0.0.1: one peer for --max-streams-per-peer; and the
    # channels, made with the same arguments, share one connection (grpc's global subchannel
    # pool), so all 3,000 streams are on it: above --max-streams-per-connection they would wait.
    limits = ("--max-streams-per-peer", str(total), "--max-streams-per-connection", str(total))
    node = nodes.start("n1", extra=limits)
    wait_joined(node)

    async def burst() -> tuple[int, dict[str, int]]:
        channels = [grpc.aio.insecure_channel(node.address) for _ in range(total // per_channel)]
        for channel in channels:
            await channel.channel_ready()
        errors: dict[str, int] = {}
        calls = []

        async def one(i: int) -> bool:
            call = pb_grpc.ElectionServiceStub(channels[i % len(channels)]).WatchLeader(
                pb.WatchLeaderRequest()
            )
            calls.append(call)
            try:
                msg = await asyncio.wait_for(call.read(), 60)
            except grpc.RpcError as exc:
                errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                return False
            return msg.leader.node.id == "n1"

        try:
            got = await asyncio.gather(*(one(i) for i in range(total)))
        finally:
            for call in calls:
                call.cancel()
            for channel in channels:
                await channel.close()
        return sum(got), errors

    ok, errors = asyncio.run(burst())
    assert (ok, errors) == (total, {})
