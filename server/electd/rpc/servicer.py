"""ElectionService: GetLeader, ListNodes and WatchLeader on top of the hub's snapshot.

Knows the engine's view and nothing about znodes. Runs on the asyncio loop; the one blocking
call (reading the member list from ZooKeeper) goes to a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from electd.engine import LeaderInfo, MemberView
from electd.names import label_problem
from electd.rpc import convert
from electd.rpc.errors import (
    InvalidArgument,
    NotVouching,
    TooManyStreams,
    stream_boundary,
    unary_boundary,
)
from electd.rpc.hub import Snapshot, ViewHub
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

MEMBERS_TIMEOUT = 10.0


class ElectionServicer(pb_grpc.ElectionServiceServicer):
    def __init__(
        self,
        hub: ViewHub,
        members: Callable[[], list[MemberView]],
        node_id: str,
        max_streams: int = 20_000,
    ) -> None:
        self._hub = hub
        self._members = members
        self._node_id = node_id
        self._max_streams = max_streams
        self._streams = 0
        # The stream message of the current generation, built once and sent to every stream.
        self._cached: tuple[int, pb.WatchLeaderResponse] | None = None
        # The GetLeader answer for the current leader (LeaderInfo is immutable and replaced on
        # every change), built once instead of on every call.
        self._leader_answer: tuple[LeaderInfo, pb.GetLeaderResponse] | None = None

    @property
    def open_streams(self) -> int:
        return self._streams

    @unary_boundary
    async def GetLeader(self, request: pb.GetLeaderRequest, context: Any) -> pb.GetLeaderResponse:
        view = self._hub.view
        now = self._hub.now()
        info = view.vouched(now)
        if info is None:
            raise NotVouching(
                f"node {self._node_id} cannot vouch for a leader: {view.why_unknown(now)}"
            )
        cached = self._leader_answer
        if cached is not None and cached[0] is info:
            return cached[1]
        answer = pb.GetLeaderResponse(leader=convert.leader(info), responder_id=self._node_id)
        self._leader_answer = (info, answer)
        return answer

    @unary_boundary
    async def ListNodes(self, request: pb.ListNodesRequest, context: Any) -> pb.ListNodesResponse:
        selector = dict(request.label_selector)
        for key, value in selector.items():
            problem = label_problem(key, value)
            if problem:
                raise InvalidArgument(f"label_selector: {problem}")
        view = self._hub.view
        if view.vouched(self._hub.now()) is None:
            raise NotVouching(
                f"node {self._node_id} cannot list members: {view.why_unknown(self._hub.now())}"
            )
        loop = asyncio.get_running_loop()
        members = await asyncio.wait_for(loop.run_in_executor(None, self._members), MEMBERS_TIMEOUT)
        info = self._hub.view.vouched(self._hub.now())
        if info is None:  # lost the session while reading: do not vouch for what we read
            raise NotVouching(f"node {self._node_id} lost ZooKeeper while listing members")
        nodes = [
            convert.member_view(m)
            for m in members
            if all(m.member.record.labels.get(k) == v for k, v in selector.items())
        ]
        return pb.ListNodesResponse(nodes=nodes, epoch=info.epoch, responder_id=self._node_id)

    @stream_boundary
    async def WatchLeader(
        self, request: pb.WatchLeaderRequest, context: Any
    ) -> AsyncIterator[pb.WatchLeaderResponse]:
        if request.min_epoch < 0:
            raise InvalidArgument(f"min_epoch: must not be negative, got {request.min_epoch}")
        if self._streams >= self._max_streams:
            raise TooManyStreams(
                f"node {self._node_id} already serves {self._streams} WatchLeader streams "
                f"(--max-streams); try another node"
            )
        self._streams += 1
        try:
            generation = -1
            while True:
                snap = self._hub.current()  # the lease is checked at send time
                if snap.closed:
                    return
                if snap.generation != generation:
                    generation = snap.generation
                    if snap.leader is None or snap.leader.epoch >= request.min_epoch:
                        yield self._message(snap)
                await self._hub.wait_changed(generation)
        finally:
            self._streams -= 1

    def _message(self, snap: Snapshot) -> pb.WatchLeaderResponse:
        cached = self._cached
        if cached is not None and cached[0] == snap.generation:
            return cached[1]
        if snap.leader is not None:
            msg = pb.WatchLeaderResponse(
                state=pb.LEADER_STATE_ELECTED,
                leader=convert.leader(snap.leader),
                responder_id=self._node_id,
            )
        else:
            msg = pb.WatchLeaderResponse(
                state=pb.LEADER_STATE_UNKNOWN, reason=snap.reason, responder_id=self._node_id
            )
        self._cached = (snap.generation, msg)
        return msg
