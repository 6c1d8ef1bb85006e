"""The Python client library against real gRPC servers in this process (ElectionService on a
grpc.aio server fed synthetic views, on its own loop thread): every failure is one ElectdError
carrying the status, failover skips dead addresses and sticks, the watch resumes without
repeats, and `probe` reports health by name."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from electd.client import ElectdError, ElectionClient, probe, validate_address
from electd.devcluster.cluster import wait_until
from tests.unit.test_servicer import member, start_node, view


class Node:
    """One in-process node on its own event loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.hub, self.server, port = self.call(start_node())
        self.address = f"127.0.0.1:{port}"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def publish(self, version: int, leader_seq: int | None) -> None:
        leader = member(f"n{leader_seq}", leader_seq) if leader_seq is not None else None
        self.loop.call_soon_threadsafe(self.hub.publish, view(version, leader))

    def stop(self) -> None:
        self.call(self.server.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def node() -> Iterator[Node]:
    n = Node()
    yield n
    n.stop()


def dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens there


def test_no_node_answered_is_one_error_naming_every_address() -> None:
    addresses = [dead_address(), dead_address()]
    with ElectionClient(addresses, call_timeout=1.0) as client, pytest.raises(ElectdError) as err:
        client.get_leader()
    e = err.value
    assert e.no_node_answered and e.addresses == addresses
    assert e.code == grpc.StatusCode.UNAVAILABLE
    assert all(a in str(e) for a in addresses)


def test_a_refusal_is_returned_at_once_with_its_status(node: Node) -> None:
    node.publish(1, 0)
    wait_until(lambda: probe(node.address) == "SERVING", 5, "the node to serve")
    with ElectionClient([node.address]) as client, pytest.raises(ElectdError) as err:
        client.list_nodes({"bad key!": "x"})
    e = err.value
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT and not e.no_node_answered
    assert e.addresses == [node.address] and "bad key!" in e.details


def test_failover_skips_a_dead_address_and_returns_the_response(node: Node) -> None:
    node.publish(1, 0)
    wait_until(lambda: probe(node.address) == "SERVING", 5, "the node to serve")
    with ElectionClient([dead_address(), node.address]) as client:
        resp = client.get_leader()
        assert resp.leader.node.id == "n0" and resp.responder_id == "me"
        assert [n.id for n in client.list_nodes().nodes] == ["a", "b"]


def test_watch_yields_each_leader_once_in_epoch_order(node: Node) -> None:
    node.publish(1, 0)
    with ElectionClient([node.address]) as client:
        watch = client.watch_leader()
        seen: list[tuple[str, int]] = []

        def consume() -> None:
            for leader in watch:
                seen.append((leader.node.id, leader.epoch))

        t = threading.Thread(target=consume, daemon=True)
        t.start()
        wait_until(lambda: seen, 5, "the first leader")
        node.publish(2, 0)  # a renewal of the same leader: nothing new
        node.publish(3, 1)
        wait_until(lambda: len(seen) >= 2, 5, "the second leader")
        watch.cancel()
        t.join(5)
        assert not t.is_alive()
    assert seen == [("n0", 1000), ("n1", 1001)]


def test_probe_reports_health_by_name(node: Node) -> None:
    assert probe(node.address) == "NOT_SERVING"  # no leader vouched for yet
    node.publish(1, 0)
    wait_until(lambda: probe(node.address) == "SERVING", 5, "SERVING")
    assert probe(dead_address(), timeout=0.5) == "UNREACHABLE"


@pytest.mark.parametrize("bad", ["", "host", ":7000", "host:", "host:0", "host:70000", "h:x"])
def test_bad_addresses_are_refused_before_any_call(bad: str) -> None:
    with pytest.raises(ElectdError, match="HOST:PORT"):
        validate_address(bad)
    with pytest.raises(ElectdError):
        ElectionClient([bad])
