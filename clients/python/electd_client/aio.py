"""The asyncio client: the blocking API's twin on grpc.aio channels, with the same contract
(clients/README.md) and the same error type.

    from electd_client.aio import ElectionClient

    async with ElectionClient(["10.0.0.1:7000", "10.0.0.2:7000"]) as client:
        leader = (await client.get_leader()).leader
        nodes = (await client.list_nodes({"zone": "a"})).nodes
        async for leader in client.watch_leader(after_epoch=saved_epoch):
            ...

Use one client from one event loop. A watch ends when the task iterating it is cancelled, when
`cancel()` is called (from the loop's thread, e.g. a `loop.add_signal_handler` callback; from
another thread use `loop.call_soon_threadsafe(watch.cancel)`), or by `await watch.aclose()`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc

from electd_client._campaign import PING_INTERVAL, CampaignEvent, Spec
from electd_client._campaign_aio import Campaign, CampaignHook, Term
from electd_client._common import (
    CALL_TIMEOUT,
    CONNECT_TIMEOUT,
    FAILOVER_CODES,
    FIRST_MESSAGE_TIMEOUT,
    KEEPALIVE_TIME,
    KEEPALIVE_TIMEOUT,
    ElectdError,
    FailoverHook,
    Failure,
    Transport,
    WatchState,
    channel_options,
    connect_failure,
    ended_failure,
    first_message_failure,
    no_node_answered,
    validate_addresses,
    vouch_failure,
)
from electd_client.v1 import election_service_pb2 as pb
from electd_client.v1 import election_service_pb2_grpc as pb_grpc

__all__ = ["Campaign", "CampaignEvent", "ElectdError", "ElectionClient", "LeaderWatch", "Term"]

_R = TypeVar("_R")
_T = TypeVar("_T")
_SETTLED = frozenset(
    {
        grpc.ChannelConnectivity.READY,
        grpc.ChannelConnectivity.TRANSIENT_FAILURE,
        grpc.ChannelConnectivity.SHUTDOWN,
    }
)


async def _settle(channel: Any, timeout: float) -> bool:
    """Start the channel's connection and wait until it has an outcome: True when READY or
    failed (a call then fails at once with gRPC's own status), False when the connect
    deadline passed first."""

    async def settled() -> None:
        state = channel.get_state(try_to_connect=True)
        while state not in _SETTLED:
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)

    try:
        await asyncio.wait_for(settled(), timeout)
    except TimeoutError:
        return False
    return True


class _Link:
    """One address's pooled channel, replaced after a failure (as in the blocking client)."""

    def __init__(self, address: str, options: list[tuple[str, int]], transport: Transport) -> None:
        self.address = address
        self.channel = transport.aio_channel(address, options)
        self.stub = pb_grpc.ElectionServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.ready = False
        self.users = 0
        self.dropped = False


class ElectionClient:
    """A client of an electd cluster through one or more node addresses, for asyncio: the
    same failover and the same TLS options as the blocking `electd_client.ElectionClient`.
    `await close()` (or `async with`) releases its connections and cancels the watches it
    started."""

    def __init__(
        self,
        addresses: Sequence[str],
        call_timeout: float = CALL_TIMEOUT,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        first_message_timeout: float = FIRST_MESSAGE_TIMEOUT,
        keepalive_time: float = KEEPALIVE_TIME,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_server_name: str | None = None,
    ) -> None:
        self.addresses = validate_addresses(addresses)
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self.first_message_timeout = first_message_timeout
        self.options = channel_options(connect_timeout, keepalive_time, keepalive_timeout)
        self.transport = Transport(tls_ca, tls_cert, tls_key, tls_server_name)
        self._current = 0
        self._links: dict[str, _Link] = {}
        self._watches: set[LeaderWatch] = set()
        self._campaigns: weakref.WeakSet[Campaign] = weakref.WeakSet()
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        links, self._links = list(self._links.values()), {}
        for watch in list(self._watches):
            watch.cancel()
        for campaign in list(self._campaigns):
            campaign.cancel()
        for link in links:
            link.dropped = True
            await link.channel.close()

    async def __aenter__(self) -> ElectionClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get_leader(self, election: str = "") -> pb.GetLeaderResponse:
        """The current leader (`.leader`) as the first node that answers sees it; of the
        named `election` if given (NOT_FOUND when it has no leader), else of the nodes."""
        request = pb.GetLeaderRequest(election=election)
        response: pb.GetLeaderResponse = await self._unary(
            lambda stub: stub.GetLeader(request, timeout=self.call_timeout, wait_for_ready=False)
        )
        return response

    async def list_nodes(
        self, label_selector: Mapping[str, str] | None = None, election: str = ""
    ) -> pb.ListNodesResponse:
        """The members (`.nodes`) in election order, optionally only those with these labels;
        of the named `election` if given, else the nodes."""
        request = pb.ListNodesRequest(label_selector=dict(label_selector or {}), election=election)
        response: pb.ListNodesResponse = await self._unary(
            lambda stub: stub.ListNodes(request, timeout=self.call_timeout, wait_for_ready=False)
        )
        return response

    async def resign(self, election: str, epoch: int) -> pb.ResignResponse:
        """End the current term of the named `election` (the blocking client's resign)."""
        request = pb.ResignRequest(election=election, epoch=epoch)
        response: pb.ResignResponse = await self._unary(
            lambda stub: stub.Resign(request, timeout=self.call_timeout, wait_for_ready=False)
        )
        return response

    async def list_elections(self) -> pb.ListElectionsResponse:
        """The named elections (`.elections`: name, candidates), sorted by name."""
        request = pb.ListElectionsRequest()
        response: pb.ListElectionsResponse = await self._unary(
            lambda stub: stub.ListElections(
                request, timeout=self.call_timeout, wait_for_ready=False
            )
        )
        return response

    def campaign(
        self,
        election: str,
        candidate_id: str,
        work: Callable[[Term], Awaitable[Any]] | None,
        value: bytes = b"",
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
        never_lead: bool = False,
        on_loss: str = "recampaign",
        ping_interval: float = PING_INTERVAL,
        on_event: CampaignHook | None = None,
    ) -> Campaign:
        """The blocking client's campaign for asyncio (call it from a coroutine): `await
        work(term)` runs as a task while leading, and that task is cancelled when the term
        ends (on loss, when the deadline comes within the safety margin unextended, on
        resign()/cancel()), before the deadline; `term.cancelled` (an asyncio.Event) is set at
        the same moment. Returns the running Campaign at once."""
        spec = Spec(
            election,
            candidate_id,
            value,
            dict(labels or {}),
            priority,
            never_lead,
            on_loss,
            ping_interval,
            has_work=work is not None,
        )
        spec.check()
        if self._closed:
            raise ElectdError("the client is closed")
        campaign = Campaign(self, spec, work, on_event)
        self._campaigns.add(campaign)
        return campaign

    def watch_leader(
        self, after_epoch: int = 0, on_failover: FailoverHook | None = None, election: str = ""
    ) -> LeaderWatch:
        """Leaders from now on as an async iterator, one per change, epochs strictly
        increasing, each greater than `after_epoch`; `on_failover(address, reason)` is called
        each time the watch leaves an address. Of the named `election` if given, else of the
        nodes."""
        if self._closed:
            raise ElectdError("the client is closed")
        watch = LeaderWatch(self, after_epoch, on_failover, election)
        self._watches.add(watch)
        return watch

    # ----- plumbing ------------------------------------------------------------------------

    def _acquire(self, address: str) -> _Link:
        if self._closed:
            raise ElectdError("the client is closed")
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = _Link(address, self.options, self.transport)
        link.users += 1
        return link

    async def _release(self, link: _Link, failed: bool) -> None:
        link.users -= 1
        if failed and self._links.get(link.address) is link:
            del self._links[link.address]
            link.dropped = True
        if link.dropped and link.users == 0:
            await link.channel.close()

    async def _unary(self, call: Callable[[Any], Awaitable[_R]]) -> _R:
        failures: list[Failure] = []
        n = len(self.addresses)
        start = self._current
        for i in range(n):
            index = (start + i) % n
            address = self.addresses[index]
            link = self._acquire(address)
            answered = False
            try:
                if not link.ready and not await _settle(link.channel, self.connect_timeout):
                    failures.append(connect_failure(address, self.connect_timeout))
                    continue
                try:
                    result = await call(link.stub)
                except grpc.RpcError as exc:
                    if exc.code() not in FAILOVER_CODES:
                        answered = True
                        raise ElectdError.from_rpc(address, exc) from None
                    failures.append(Failure.from_rpc(address, exc))
                    continue
                except grpc.aio.UsageError:  # the channel was closed under the call
                    raise ElectdError("the client is closed") from None
                answered = link.ready = True
                self._current = index
                return result
            finally:
                await self._release(link, failed=not answered)
        raise no_node_answered(self.addresses, failures)


class _Stopped(Exception):
    """cancel() came first."""


class _Expired(Exception):
    """The deadline came first."""


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # abandoned after a deadline or cancel(): nobody else will look


class LeaderWatch:
    """An async iterator of leaders (electd.v1.Leader): the blocking LeaderWatch's twin, with
    the same failover, epochs, hook and errors. `cancel()` ends it at once (also during a
    backoff or a pending connection); `aclose()` also waits for its connection to close."""

    def __init__(
        self,
        client: ElectionClient,
        after_epoch: int,
        on_failover: FailoverHook | None,
        election: str = "",
    ) -> None:
        self._client = client
        self._state = WatchState(
            client.addresses, client._current, after_epoch, on_failover, election
        )
        self._cancelled = False
        self._pending: asyncio.Future[Any] | None = None
        self._leaders: AsyncGenerator[pb.Leader, None] | None = None
        self._outcome: tuple[Failure, bool] | None = None

    @property
    def last_epoch(self) -> int:
        """The highest epoch reported so far (or `after_epoch`)."""
        return self._state.last_epoch

    @property
    def last_error(self) -> str:
        """Why the watch last left an address ("" if it never did)."""
        return self._state.last_error

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True
        if self._pending is not None:
            self._pending.cancel()

    async def aclose(self) -> None:
        self.cancel()
        if self._leaders is not None:
            await self._leaders.aclose()
        self._client._watches.discard(self)

    async def __aenter__(self) -> LeaderWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> LeaderWatch:
        return self

    async def __anext__(self) -> pb.Leader:
        if self._leaders is None:
            self._leaders = self._run()
        try:
            return await self._leaders.__anext__()
        except StopAsyncIteration:
            self._client._watches.discard(self)
            raise

    async def _wait(self, aw: Awaitable[_T], timeout: float | None = None) -> _T:
        """`await aw`, unless cancel() comes first (_Stopped) or the timeout (_Expired)."""
        task = asyncio.ensure_future(aw)
        if self._cancelled:
            task.cancel()
        self._pending = task
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        finally:
            self._pending = None
            if not task.done():
                task.cancel()  # the timeout, or our own task is being cancelled
                task.add_done_callback(_retrieve)
        if not done:
            raise _Expired
        if task.cancelled():
            raise _Stopped
        return task.result()

    async def _run(self) -> AsyncGenerator[pb.Leader, None]:
        state, client = self._state, self._client
        while not self._cancelled:
            address = state.address
            channel = client.transport.aio_channel(address, client.options)
            try:
                try:
                    settled = await self._wait(_settle(channel, client.connect_timeout))
                except _Stopped:
                    return
                if settled:
                    self._outcome = None
                    async for leader in self._stream(channel, address):
                        yield leader
                    if self._outcome is None:
                        return  # cancelled
                    failure, got_leader = self._outcome
                else:
                    failure, got_leader = connect_failure(address, client.connect_timeout), False
            finally:
                await channel.close()
            delay = state.leave(failure, got_leader)
            if delay:
                try:
                    await self._wait(asyncio.sleep(delay))
                except _Stopped:
                    return

    async def _stream(self, channel: Any, address: str) -> AsyncGenerator[pb.Leader, None]:
        """One stream from `address`: yields its leaders, and leaves in `_outcome` why it
        ended and whether it brought an elected leader (None when cancelled)."""
        state, timeout = self._state, self._client.first_message_timeout
        stub = pb_grpc.ElectionServiceStub(channel)  # type: ignore[no-untyped-call]
        call = stub.WatchLeader(state.request(), wait_for_ready=False)
        first, got_leader = True, False
        try:
            while not self._cancelled:
                try:
                    msg = await self._wait(call.read(), timeout if first else None)
                except _Expired:
                    self._outcome = first_message_failure(address, timeout), False
                    return
                except _Stopped:
                    return
                except grpc.RpcError as exc:
                    if self._cancelled:
                        return
                    if exc.code() in FAILOVER_CODES or exc.code() == grpc.StatusCode.CANCELLED:
                        self._outcome = Failure.from_rpc(address, exc), got_leader
                        return
                    raise ElectdError.from_rpc(address, exc) from None
                if msg is grpc.aio.EOF:
                    self._outcome = ended_failure(address), got_leader
                    return
                first = False
                failure = vouch_failure(address, msg)
                if failure is not None:
                    self._outcome = failure, got_leader
                    return
                got_leader = True
                leader = state.accept(msg)
                if leader is not None:
                    yield leader
        finally:
            call.cancel()
