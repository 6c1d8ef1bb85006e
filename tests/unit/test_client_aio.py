"""The asyncio client (electd_client.aio) holds the same contract as the blocking one, rule by
rule, against the same in-process servers and raw sockets (tests/unit/test_client.py): one
ElectdError type, failover on refusal at once, on a black-holed or mute address after the
connect deadline, on a silent watch after the first-message deadline, on a frozen node by
keepalive, on RESOURCE_EXHAUSTED; `after_epoch`; the hook; cancellation at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pytest

import electd_client._common
from electd_client import ElectdError
from electd_client.aio import ElectionClient, LeaderWatch
from tests.unit.test_client import (
    CONNECT,
    FIRST_MESSAGE,
    FROZEN,
    BlackHole,
    FreezeProxy,
    Hook,
    Mute,
    Node,
    Scripted,
    dead_address,
    generous,
    make_fixture,  # noqa: F401  (the fixture `make`)
    node_fixture,  # noqa: F401  (the fixture `node`)
)

T = TypeVar("T")


def run(body: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(body(), timeout)

    return asyncio.run(bounded())


class Consumer:
    """Iterates an asyncio LeaderWatch in a task, recording leaders and how it ended."""

    def __init__(self, watch: LeaderWatch) -> None:
        self.watch = watch
        self.leaders: list[tuple[str, int, float]] = []
        self.error: BaseException | None = None
        self.ended_at = 0.0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for leader in self.watch:
                self.leaders.append((leader.node.id, leader.epoch, time.monotonic()))
        except ElectdError as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()

    def epochs(self) -> list[int]:
        return [e for _, e, _ in self.leaders]

    async def wait_leaders(self, n: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.leaders) < n and not self.task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(self.leaders) >= n, (self.leaders, self.error)

    async def stop(self) -> float:
        t = time.monotonic()
        self.watch.cancel()
        await asyncio.wait_for(self.task, 10)
        return self.ended_at - t


async def serving(node: Node) -> None:
    deadline = time.monotonic() + 5
    while not await asyncio.to_thread(node.serving):
        assert time.monotonic() < deadline, "the node to serve"
        await asyncio.sleep(0.02)


def test_unary_calls_and_their_errors(node: Node, make: Any) -> None:
    node.publish(1, 0)
    denied = make(Scripted, unary="denied")

    async def body() -> None:
        await serving(node)
        async with ElectionClient([dead_address(), node.address]) as client:
            resp = await client.get_leader()
            assert resp.leader.node.id == "n0" and resp.responder_id == "me"
            assert [n.id for n in (await client.list_nodes()).nodes] == ["a", "b"]
            with pytest.raises(ElectdError) as err:
                await client.list_nodes({"bad key!": "x"})
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert err.value.addresses == [node.address] and not err.value.no_node_answered
        async with ElectionClient([denied.address, node.address]) as client:
            with pytest.raises(ElectdError) as err:
                await client.get_leader()
            assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
        dead = [dead_address(), dead_address()]
        async with ElectionClient(dead) as client:
            with pytest.raises(ElectdError) as err:
                await client.get_leader()
            assert err.value.no_node_answered and err.value.addresses == dead
            assert err.value.code == grpc.StatusCode.UNAVAILABLE

    run(body)


@pytest.mark.parametrize("code", ["exhausted", "unavailable"])
def test_unary_fails_over_on_resource_exhausted_and_unavailable(make: Any, code: str) -> None:
    full, good = make(Scripted, unary=code), make(Scripted, node_id="good")

    async def body() -> None:
        async with ElectionClient([full.address, good.address], connect_timeout=30) as client:
            t = time.monotonic()
            assert (await client.get_leader()).leader.node.id == "good"
            assert time.monotonic() - t < 10

    run(body)


@pytest.mark.parametrize("kind", [BlackHole, Mute])
def test_unary_leaves_a_black_holed_or_mute_address_after_the_connect_deadline(
    node: Node, make: Any, kind: type
) -> None:
    node.publish(1, 0)
    bad = make(kind)

    async def body() -> None:
        await serving(node)
        async with ElectionClient([bad.address, node.address], call_timeout=60) as client:
            t = time.monotonic()
            assert (await client.get_leader()).leader.node.id == "n0"
            assert time.monotonic() - t < generous(CONNECT)

    run(body)


def test_watch_after_epoch_and_no_repeat_across_failover(make: Any) -> None:
    a = make(Scripted, watch="end", epoch=1000, node_id="a")
    b = make(Scripted, watch="ok", epoch=1000, node_id="b")
    hook = Hook()

    async def body() -> None:
        async with ElectionClient([a.address, b.address]) as client:
            c = Consumer(client.watch_leader(after_epoch=990, on_failover=hook))
            await c.wait_leaders(1)
            while not b.servicer.min_epochs:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            assert c.epochs() == [1000]
            b.servicer.epoch = 1005
            await c.wait_leaders(2)
            await c.stop()
            assert c.epochs() == [1000, 1005]
            c = Consumer(client.watch_leader(after_epoch=1005))
            await asyncio.sleep(0.5)
            assert c.leaders == [] and not c.task.done()
            b.servicer.epoch = 1006
            await c.wait_leaders(1)
            await c.stop()
            assert c.epochs() == [1006]

    run(body)
    assert a.servicer.min_epochs[0] == 990 and b.servicer.min_epochs[0] == 1000
    assert hook.calls[0][0] == a.address and "stream ended" in hook.calls[0][1]


@pytest.mark.parametrize(
    ("kind", "reason", "bound"),
    [
        (BlackHole, "connect deadline", CONNECT),
        (Mute, "connect deadline", CONNECT),
        ("silent", "first-message deadline", FIRST_MESSAGE),
        ("unknown", "LEADER_STATE_UNKNOWN", 0.0),
        ("exhausted", "RESOURCE_EXHAUSTED", 0.0),
    ],
)
def test_watch_leaves_a_bad_first_address(make: Any, kind: Any, reason: str, bound: float) -> None:
    bad = make(kind) if isinstance(kind, type) else make(Scripted, watch=kind)
    good = make(Scripted, node_id="good")
    hook = Hook()

    async def body() -> float:
        async with ElectionClient([bad.address, good.address]) as client:
            t = time.monotonic()
            c = Consumer(client.watch_leader(on_failover=hook))
            await c.wait_leaders(1, timeout=30)
            await c.stop()
            return c.leaders[0][2] - t

    took = run(body)
    assert took < generous(bound)
    assert hook.addresses() == [bad.address] and reason in hook.calls[0][1]


def test_watch_leaves_a_frozen_node_on_keepalive(make: Any) -> None:
    a, b = make(Node), make(Node)
    a.publish(1, 0)
    b.publish(1, 0)
    proxy = make(FreezeProxy, a.port)
    hook = Hook()

    async def body() -> float:
        async with ElectionClient([proxy.address, b.address]) as client:
            c = Consumer(client.watch_leader(on_failover=hook))
            await c.wait_leaders(1)
            await asyncio.sleep(0.5)
            proxy.freeze()
            frozen_at = time.monotonic()
            a.publish(2, 1)
            b.publish(2, 1)
            await c.wait_leaders(2, timeout=60)
            await c.stop()
            assert [(i, e) for i, e, _ in c.leaders] == [("n0", 1000), ("n1", 1001)]
            return c.leaders[1][2] - frozen_at

    took = run(body, timeout=90)
    assert hook.addresses() == [proxy.address] and hook.calls[0][1].startswith("UNAVAILABLE")
    assert took < generous(FROZEN), took


def test_watch_errors(make: Any) -> None:
    invalid, unavailable = make(Scripted, watch="invalid"), make(Scripted, watch="unavailable")

    async def body() -> None:
        async with ElectionClient([invalid.address, unavailable.address]) as client:
            c = Consumer(client.watch_leader())
            await asyncio.wait_for(c.task, 10)
            assert isinstance(c.error, ElectdError)
            assert c.error.code == grpc.StatusCode.INVALID_ARGUMENT
        addresses = [dead_address(), unavailable.address]
        async with ElectionClient(addresses) as client:
            c = Consumer(client.watch_leader())
            await asyncio.wait_for(c.task, 20)
            assert isinstance(c.error, ElectdError) and c.error.no_node_answered
            assert c.error.addresses == addresses
        with pytest.raises(ElectdError, match="after_epoch"):
            ElectionClient(addresses).watch_leader(after_epoch=-1)

    run(body)


def test_cancel_ends_an_open_watch_a_pending_connection_and_a_backoff_at_once(
    node: Node, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    node.publish(1, 0)
    hole = make(BlackHole)
    slept: list[float] = []

    def long_delay(self: Any) -> float:
        slept.append(60.0)
        return 60.0

    monkeypatch.setattr(electd_client._common.Backoff, "delay", long_delay)

    async def body() -> None:
        async with ElectionClient([node.address]) as client:
            c = Consumer(client.watch_leader())
            await c.wait_leaders(1)
            assert await c.stop() < 1.0  # an open stream
            c = Consumer(client.watch_leader())
            await c.wait_leaders(1)
            node.publish(2, None)  # cannot vouch: a full round failed, back off for 60 s
            while not slept:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            assert await c.stop() < 1.0  # a backoff
        async with ElectionClient([hole.address], connect_timeout=60) as client:
            c = Consumer(client.watch_leader())
            await asyncio.sleep(0.5)
            assert not c.task.done()
            assert await c.stop() < 1.0  # a pending connection
            assert c.error is None and c.leaders == []
            # Cancelling the task that iterates ends it at once too.
            watch = client.watch_leader()
            task = asyncio.ensure_future(watch.__anext__())
            await asyncio.sleep(0.5)
            t = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - t < 1.0
            await watch.aclose()

    run(body)


def test_closing_the_client_ends_its_watches(node: Node) -> None:
    node.publish(1, 0)

    async def body() -> None:
        client = ElectionClient([node.address])
        c = Consumer(client.watch_leader())
        await c.wait_leaders(1)
        await client.close()
        await asyncio.wait_for(c.task, 5)
        assert c.error is None
        with pytest.raises(ElectdError, match="closed"):
            await client.get_leader()

    run(body)
