"""ElectionService on an in-process grpc.aio server bound to port 0, fed synthetic views
through the hub: status codes, stream semantics, lease expiry, stream caps, shutdown."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from electd.engine import LeaderInfo, Member, MemberView, NodeRecord, Role, View
from electd.rpc.hub import ViewHub
from electd.rpc.server import add_services, create_server
from electd.rpc.servicer import ElectionServicer
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc


def member(node_id: str, seq: int) -> Member:
    return Member(
        f"electd-{'a' * 32}-{seq:010d}",
        seq,
        NodeRecord(node_id, f"{node_id}:1"),
        0x100 + seq,
        1000 + seq,
        0,
    )


def view(version: int, leader: Member | None, valid_for: float = 60.0) -> View:
    info = LeaderInfo(leader, leader.czxid, time.time()) if leader else None
    return View(
        version,
        "me",
        Role.FOLLOWER if leader else Role.DISCONNECTED,
        info,
        "" if leader else "disconnected from ZooKeeper",
        "",
        "",
        time.monotonic() + valid_for,
    )


async def start_node(max_streams: int = 100) -> tuple[ViewHub, grpc.aio.Server, int]:
    """ElectionService, health and reflection on a fresh server; returns its bound port."""
    loop = asyncio.get_running_loop()
    hub = ViewHub(loop, View(0, "me", Role.JOINING, None, "starting", "", "", 0))
    members = [MemberView(member("a", 0), True, ""), MemberView(member("b", 1), False, "x")]
    server, port = create_server("127.0.0.1:0")
    servicer = ElectionServicer(hub, lambda: members, "me", max_streams)
    add_services(server, servicer, hub)
    await server.start()
    return hub, server, port


async def serve(max_streams: int = 100):
    hub, server, port = await start_node(max_streams)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return hub, server, channel, pb_grpc.ElectionServiceStub(channel)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_unary_calls_follow_the_view() -> None:
    async def body() -> None:
        hub, server, channel, stub = await serve()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetLeader(pb.GetLeaderRequest())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        hub.publish(view(1, member("a", 0)))
        await asyncio.sleep(0.05)
        resp = await stub.GetLeader(pb.GetLeaderRequest())
        assert (resp.leader.node.id, resp.leader.epoch, resp.responder_id) == ("a", 1000, "me")
        nodes = await stub.ListNodes(pb.ListNodesRequest())
        assert [n.id for n in nodes.nodes] == ["a", "b"] and nodes.epoch == 1000
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListNodes(pb.ListNodesRequest(label_selector={"bad key!": "x"}))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        await channel.close()
        await server.stop(0)

    run(body())


def test_stream_sends_current_then_changes_then_unknown_when_the_lease_runs_out() -> None:
    async def body() -> None:
        hub, server, channel, stub = await serve()
        hub.publish(view(1, member("a", 0)))
        await asyncio.sleep(0.05)
        call = stub.WatchLeader(pb.WatchLeaderRequest())
        first = await call.read()
        assert first.state == pb.LEADER_STATE_ELECTED and first.leader.node.id == "a"
        hub.publish(view(2, member("a", 0)))  # a lease renewal only: no message
        hub.publish(view(3, member("b", 1), valid_for=0.3))  # then nothing more: lease expires
        second = await call.read()
        assert second.leader.node.id == "b" and second.leader.epoch > first.leader.epoch
        third = await call.read()
        assert third.state == pb.LEADER_STATE_UNKNOWN and "lease" in third.reason
        hub.close()
        assert await call.read() == grpc.aio.EOF  # the stream ends cleanly on shutdown
        assert await call.code() == grpc.StatusCode.OK
        await channel.close()
        await server.stop(0)

    run(body())


def test_slow_stream_gets_the_latest_state_not_a_queue() -> None:
    async def body() -> None:
        hub, server, channel, stub = await serve()
        hub.publish(view(1, member("a", 0)))
        await asyncio.sleep(0.05)
        call = stub.WatchLeader(pb.WatchLeaderRequest())
        assert (await call.read()).leader.node.id == "a"
        for v in range(2, 50):  # many changes before the client reads again
            hub.publish(view(v, member(f"n{v}", v)))
        await asyncio.sleep(0.2)
        latest = await call.read()
        assert latest.leader.node.id == "n49"
        call.cancel()
        await channel.close()
        await server.stop(0)

    run(body())


def test_stream_cap_gives_resource_exhausted() -> None:
    async def body() -> None:
        hub, server, channel, stub = await serve(max_streams=1)
        hub.publish(view(1, member("a", 0)))
        first = stub.WatchLeader(pb.WatchLeaderRequest())
        await first.read()
        second = stub.WatchLeader(pb.WatchLeaderRequest())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await second.read()
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        first.cancel()
        await channel.close()
        await server.stop(0)

    run(body())


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_answers_on_v1_and_v1alpha(version: str) -> None:
    """Tools that speak only grpc.reflection.v1 (newer grpcurl, Postman) and those that speak
    only v1alpha both list the services and get the documented ElectionService file."""
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    async def body() -> None:
        _hub, server, channel, _ = await serve()
        call = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="electd.v1.ElectionService"
            ),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol=f"grpc.reflection.{version}.ServerReflection"
            ),
        ]
        replies = [r async for r in call(iter(requests))]
        listed = {s.name for s in replies[0].list_services_response.service}
        assert {
            "electd.v1.ElectionService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        } <= listed
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in replies[1].file_descriptor_response.file_descriptor_proto
        ]
        ours = next(f for f in files if f.name == "electd/v1/election_service.proto")
        assert ours.source_code_info.location  # the comments travel with it
        own = replies[2].file_descriptor_response.file_descriptor_proto
        assert own and not replies[2].HasField("error_response")
        assert descriptor_pb2.FileDescriptorProto.FromString(own[0]).package == (
            f"grpc.reflection.{version}"
        )
        await channel.close()
        await server.stop(0)

    run(body())


def test_a_stream_never_sends_a_leader_whose_lease_ran_out() -> None:
    """The lease is checked when a message is sent, not only by the hub's timer (which runs on
    the loop's monotonic clock and fires late after a suspend or a stalled loop)."""

    async def body() -> None:
        hub, server, channel, stub = await serve()
        hub.publish(view(1, member("a", 0), valid_for=0.2))
        await asyncio.sleep(0.05)
        assert hub.snapshot.leader is not None
        assert hub._lease_timer is not None
        hub._lease_timer.cancel()  # the timer has not fired (a suspended machine, a busy loop)
        await asyncio.sleep(0.3)
        assert hub.snapshot.leader is not None  # stale: only the timer would have cleared it
        call = stub.WatchLeader(pb.WatchLeaderRequest())
        first = await call.read()
        assert first.state == pb.LEADER_STATE_UNKNOWN and "lease" in first.reason
        call.cancel()
        await channel.close()
        await server.stop(0)

    run(body())
