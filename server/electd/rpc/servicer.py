"""ElectionService: GetLeader, ListNodes and WatchLeader on top of the hub's snapshot, for the
node election ("" election: the engine's view) and for named elections (the hub's feed of each,
from the registry's observers); Resign and ListElections on the registry; Campaign delegated to
rpc/campaign.py.

Knows the engine's view and nothing about znodes. Runs on the asyncio loop; the blocking calls
(reading members, elections and Resign's delete from ZooKeeper) go to worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

from electd.elections import Candidacy, CandidateEvent, CandidateSpec, ElectionState
from electd.elections import ElectionView as _ElectionView
from electd.elections import Observation as _Observation
from electd.engine import LeaderInfo, MemberView
from electd.names import election_problem, label_problem
from electd.rpc import convert
from electd.rpc.campaign import CampaignCounters, CampaignService
from electd.rpc.errors import (
    InvalidArgument,
    NoSuchLeader,
    NotVouching,
    TooManyStreams,
    stream_boundary,
    unary_boundary,
)
from electd.rpc.hub import NamedFeed, NamedSnapshot, Snapshot, ViewHub
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

MEMBERS_TIMEOUT = 10.0
#: How long a call on a named election waits for a new observer's first reading.
SETTLE_TIMEOUT = 5.0


class ElectionsApi(Protocol):
    """What the servicer needs of the node's registry (`electd.elections.Elections`)."""

    def observe(
        self, election: str, on_change: Callable[[_ElectionView], None]
    ) -> _Observation: ...

    def members(self, election: str) -> list[MemberView]: ...

    def campaign(
        self, election: str, spec: CandidateSpec, on_event: Callable[[CandidateEvent], None]
    ) -> Candidacy: ...

    def resign(self, election: str, epoch: int) -> LeaderInfo: ...

    def list(self) -> list[tuple[str, int]]: ...

    def candidates(self) -> int: ...


def _named(election: str, field: str = "election") -> str:
    problem = election_problem(election)
    if problem:
        raise InvalidArgument(f"{field}: {problem}")
    return election


class ElectionServicer(pb_grpc.ElectionServiceServicer):
    def __init__(
        self,
        hub: ViewHub,
        members: Callable[[], list[MemberView]],
        node_id: str,
        max_streams: int = 20_000,
        elections: ElectionsApi | None = None,
        candidate_timeout: float = 5.0,
        counters: CampaignCounters | None = None,
    ) -> None:
        """`elections`: the registry of named elections (None: only the node election is
        served; named ones answer UNAVAILABLE)."""
        self._hub = hub
        self._members = members
        self._node_id = node_id
        self._max_streams = max_streams
        self._streams = 0
        self._elections = elections
        self._campaign: CampaignService | None = None
        if elections is not None:
            hub.serve_elections(elections.observe)
            self._campaign = CampaignService(hub, elections, node_id, candidate_timeout, counters)
        # The stream message of the current generation, built once and sent to every stream.
        self._cached: tuple[int, pb.WatchLeaderResponse] | None = None
        # The GetLeader answer for the current leader (LeaderInfo is immutable and replaced on
        # every change), built once instead of on every call.
        self._leader_answer: tuple[LeaderInfo, pb.GetLeaderResponse] | None = None

    @property
    def open_streams(self) -> int:
        return self._streams

    @property
    def campaigns(self) -> CampaignService | None:
        return self._campaign

    def _registry(self) -> ElectionsApi:
        if self._elections is None:
            raise NotVouching(f"node {self._node_id} does not serve named elections")
        return self._elections

    @unary_boundary
    async def GetLeader(self, request: pb.GetLeaderRequest, context: Any) -> pb.GetLeaderResponse:
        if request.election:
            return await self._named_leader(_named(request.election))
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
        if request.election:
            return await self._named_nodes(_named(request.election), selector)
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
    ) -> AsyncGenerator[pb.WatchLeaderResponse]:
        if request.min_epoch < 0:
            raise InvalidArgument(f"min_epoch: must not be negative, got {request.min_epoch}")
        named = _named(request.election) if request.election else ""
        if named:
            self._registry()
        if self._streams >= self._max_streams:
            raise TooManyStreams(
                f"node {self._node_id} already serves {self._streams} WatchLeader streams "
                f"(--max-streams); try another node"
            )
        if named:
            async with contextlib.aclosing(self._watch_named(named, request.min_epoch)) as gen:
                async for message in gen:
                    yield message
            return
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

    # ----- named elections -------------------------------------------------------------------

    async def _settled(self, election: str) -> NamedSnapshot:
        self._registry()
        feed = self._hub.acquire(election)
        try:
            return await feed.settled(SETTLE_TIMEOUT)
        finally:
            self._hub.release(feed)

    async def _named_leader(self, election: str) -> pb.GetLeaderResponse:
        snap = await self._settled(election)
        if snap.state is ElectionState.ELECTED and snap.leader is not None:
            return pb.GetLeaderResponse(
                leader=convert.leader(snap.leader), responder_id=self._node_id
            )
        if snap.state is ElectionState.VACANT:
            raise NoSuchLeader(f"election {election!r} has no leader now")
        raise NotVouching(
            f"node {self._node_id} cannot vouch for election {election!r}: {snap.reason}"
        )

    async def _named_nodes(self, election: str, selector: dict[str, str]) -> pb.ListNodesResponse:
        registry = self._registry()
        feed = self._hub.acquire(election)
        try:
            before = await feed.settled(SETTLE_TIMEOUT)
            if before.state is ElectionState.UNKNOWN:
                raise NotVouching(
                    f"node {self._node_id} cannot list election {election!r}: {before.reason}"
                )
            loop = asyncio.get_running_loop()
            members = await asyncio.wait_for(
                loop.run_in_executor(None, registry.members, election), MEMBERS_TIMEOUT
            )
            after = feed.current()
        finally:
            self._hub.release(feed)
        if after.state is ElectionState.UNKNOWN:
            raise NotVouching(
                f"node {self._node_id} lost ZooKeeper while listing election {election!r}"
            )
        nodes = [
            convert.member_view(m)
            for m in members
            if all(m.member.record.labels.get(k) == v for k, v in selector.items())
        ]
        epoch = after.leader.epoch if after.leader is not None else 0
        return pb.ListNodesResponse(nodes=nodes, epoch=epoch, responder_id=self._node_id)

    async def _watch_named(
        self, election: str, min_epoch: int
    ) -> AsyncGenerator[pb.WatchLeaderResponse]:
        feed = self._hub.acquire(election)
        self._streams += 1
        try:
            await feed.settled(SETTLE_TIMEOUT)  # no "starting" first message from a new feed
            generation = -1
            while True:
                snap = feed.current()  # the lease is checked at send time
                if snap.closed:
                    return
                if snap.generation != generation:
                    generation = snap.generation
                    if snap.leader is None or snap.leader.epoch >= min_epoch:
                        yield self._named_message(feed, snap)
                await feed.wait_changed(generation)
        finally:
            self._streams -= 1
            self._hub.release(feed)

    def _named_message(self, feed: NamedFeed, snap: NamedSnapshot) -> pb.WatchLeaderResponse:
        cached = feed.message
        if cached is not None and cached[0] == snap.generation:
            reused: pb.WatchLeaderResponse = cached[1]
            return reused
        if snap.state is ElectionState.ELECTED and snap.leader is not None:
            msg = pb.WatchLeaderResponse(
                state=pb.LEADER_STATE_ELECTED,
                leader=convert.leader(snap.leader),
                responder_id=self._node_id,
            )
        elif snap.state is ElectionState.VACANT:
            msg = pb.WatchLeaderResponse(state=pb.LEADER_STATE_VACANT, responder_id=self._node_id)
        else:
            msg = pb.WatchLeaderResponse(
                state=pb.LEADER_STATE_UNKNOWN, reason=snap.reason, responder_id=self._node_id
            )
        feed.message = (snap.generation, msg)
        return msg

    @unary_boundary
    async def Resign(self, request: pb.ResignRequest, context: Any) -> pb.ResignResponse:
        if not request.election:
            raise InvalidArgument(
                "election: empty; Resign ends a term of a named election (the node election "
                "is left by stopping a node)"
            )
        election = _named(request.election)
        if request.epoch <= 0:
            raise InvalidArgument(f"epoch: must be positive, got {request.epoch}")
        registry = self._registry()
        loop = asyncio.get_running_loop()
        info = await asyncio.wait_for(
            loop.run_in_executor(None, registry.resign, election, request.epoch),
            MEMBERS_TIMEOUT,
        )
        # Reads through this node no longer name the ended term once this answer is sent.
        await self._hub.until_gone(election, info.member.znode, SETTLE_TIMEOUT)
        logger.info(
            "node=%s ended term %d of election %s (candidate %s) on request",
            self._node_id,
            info.epoch,
            election,
            info.member.record.id,
        )
        return pb.ResignResponse(leader=convert.leader(info), responder_id=self._node_id)

    @unary_boundary
    async def ListElections(
        self, request: pb.ListElectionsRequest, context: Any
    ) -> pb.ListElectionsResponse:
        registry = self._registry()
        loop = asyncio.get_running_loop()
        listed = await asyncio.wait_for(loop.run_in_executor(None, registry.list), MEMBERS_TIMEOUT)
        return pb.ListElectionsResponse(
            elections=[pb.ElectionSummary(name=name, candidates=n) for name, n in listed],
            responder_id=self._node_id,
        )

    @stream_boundary
    async def Campaign(
        self, request_iterator: AsyncIterator[pb.CampaignRequest], context: Any
    ) -> AsyncGenerator[pb.CampaignResponse]:
        self._registry()
        assert self._campaign is not None
        async with contextlib.aclosing(self._campaign.run(request_iterator, context)) as gen:
            async for message in gen:
                yield message
