"""The blocking client: `ElectionClient` (thread-safe) and `LeaderWatch` (an iterator that
`cancel()` ends at once from any thread or a signal handler)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from electd_client._campaign import PING_INTERVAL, Spec
from electd_client._campaign_sync import Campaign, CampaignHook, Term
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
    validate_address,
    validate_addresses,
    vouch_failure,
)
from electd_client.v1 import election_service_pb2 as pb
from electd_client.v1 import election_service_pb2_grpc as pb_grpc

_R = TypeVar("_R")
_SETTLED = frozenset(
    {
        grpc.ChannelConnectivity.READY,
        grpc.ChannelConnectivity.TRANSIENT_FAILURE,
        grpc.ChannelConnectivity.SHUTDOWN,
    }
)
# The longest single wait on a condition. Python runs a signal handler on the main thread
# between bytecodes, and a signal that the kernel hands to one of gRPC's threads does not wake
# the main thread from a wait: so a wait is cut into slices of this length, for `cancel()` in a
# signal handler to take effect within one slice (gRPC's own blocking calls wait in 0.1 s
# slices for the same reason).
WAIT_SLICE = 0.1


def _wait(cond: threading.Condition, remaining: float) -> None:
    """`cond.wait` (the caller holds `cond`) for at most `remaining` seconds or one slice."""
    cond.wait(min(remaining, WAIT_SLICE))


def _settle(
    channel: grpc.Channel,
    timeout: float,
    cond: threading.Condition,
    stopped: Callable[[], bool] = lambda: False,
) -> bool:
    """Start the channel's connection and wait until it has an outcome: True when READY or
    failed (TRANSIENT_FAILURE: a call then fails at once, with gRPC's own status and details);
    False when the connect deadline passed first, or `stopped()` (checked whenever `cond` is
    notified, and at least every WAIT_SLICE)."""
    seen: list[grpc.ChannelConnectivity] = []

    def on_change(state: grpc.ChannelConnectivity) -> None:
        with cond:
            seen.append(state)
            cond.notify_all()

    channel.subscribe(on_change, try_to_connect=True)
    try:
        deadline = time.monotonic() + timeout
        with cond:
            while not stopped():
                if seen and seen[-1] in _SETTLED:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                _wait(cond, remaining)
            return False
    finally:
        channel.unsubscribe(on_change)


class _Link:
    """One address's pooled channel. After a failure it is replaced, and closed once no call
    uses it, so that the next call makes a fresh connection attempt (under the connect deadline)
    instead of inheriting gRPC's reconnect backoff."""

    def __init__(self, address: str, options: list[tuple[str, int]], transport: Transport) -> None:
        self.address = address
        self.channel = transport.channel(address, options)
        self.stub = pb_grpc.ElectionServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.ready = False  # has it ever answered a call?
        self.users = 0
        self.dropped = False


class ElectionClient:
    """A client of an electd cluster through one or more node addresses (`HOST:PORT`); any
    node answers for the whole cluster. Thread-safe; `close()` (or `with`) releases its
    connections and cancels the watches it started.

    Unary calls try the addresses in turn, starting with the last one that answered: an address
    that refuses, does not connect within `connect_timeout`, does not answer within
    `call_timeout`, or answers UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED is skipped;
    after one round with no answer the call raises ElectdError with `no_node_answered`. Any
    other status is raised at once.

    TLS (clients/README.md, "TLS"): any of `tls_ca` (PEM file of the CAs that sign the nodes'
    certificates; default the system's roots), `tls_cert` + `tls_key` (PEM files of a client
    certificate and its key, for mutual TLS) or `tls_server_name` (the name to verify the
    nodes' certificates against, instead of each address's host) turns TLS on."""

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
        self._lock = threading.Lock()
        self._links: dict[str, _Link] = {}
        self._watches: weakref.WeakSet[LeaderWatch] = weakref.WeakSet()
        self._campaigns: weakref.WeakSet[Campaign] = weakref.WeakSet()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            links, self._links = list(self._links.values()), {}
            watches = list(self._watches)
            campaigns = list(self._campaigns)
            for link in links:
                link.dropped = True
        for watch in watches:
            watch.cancel()
        for campaign in campaigns:
            campaign.cancel()
        for link in links:
            link.channel.close()

    def __enter__(self) -> ElectionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_leader(self, election: str = "") -> pb.GetLeaderResponse:
        """The current leader (`.leader`) as the first node that answers sees it; of the
        named `election` if given (NOT_FOUND when it has no leader), else of the nodes."""
        request = pb.GetLeaderRequest(election=election)
        response: pb.GetLeaderResponse = self._unary(
            lambda stub: stub.GetLeader(request, timeout=self.call_timeout, wait_for_ready=False)
        )
        return response

    def list_nodes(
        self, label_selector: Mapping[str, str] | None = None, election: str = ""
    ) -> pb.ListNodesResponse:
        """The members (`.nodes`) in election order, optionally only those with these labels;
        of the named `election` if given (its candidates), else the nodes."""
        request = pb.ListNodesRequest(label_selector=dict(label_selector or {}), election=election)
        response: pb.ListNodesResponse = self._unary(
            lambda stub: stub.ListNodes(request, timeout=self.call_timeout, wait_for_ready=False)
        )
        return response

    def resign(self, election: str, epoch: int) -> pb.ResignResponse:
        """End the current term of the named `election` on an operator's behalf: `epoch` must
        be its leader's (FAILED_PRECONDITION names the current one; NOT_FOUND: no leader).
        The response names the leader whose term was ended."""
        request = pb.ResignRequest(election=election, epoch=epoch)
        response: pb.ResignResponse = self._unary(
            lambda stub: stub.Resign(request, timeout=self.call_timeout, wait_for_ready=False)
        )
        return response

    def list_elections(self) -> pb.ListElectionsResponse:
        """The named elections (`.elections`: name, candidates), sorted by name."""
        request = pb.ListElectionsRequest()
        response: pb.ListElectionsResponse = self._unary(
            lambda stub: stub.ListElections(
                request, timeout=self.call_timeout, wait_for_ready=False
            )
        )
        return response

    def campaign(
        self,
        election: str,
        candidate_id: str,
        work: Callable[[Term], Any] | None,
        value: bytes = b"",
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
        never_lead: bool = False,
        on_loss: str = "recampaign",
        ping_interval: float = PING_INTERVAL,
        on_event: CampaignHook | None = None,
    ) -> Campaign:
        """Campaign in the named `election` as `candidate_id` and run `work(term)` in a thread
        of its own while leading (clients/README.md, the campaign helper); returns the running
        Campaign at once.

        The work gets a Term: `epoch` (the fencing token), `deadline` (time.monotonic()
        seconds, extended while the node answers pings) and `cancelled`, a threading.Event set
        when the term ends: on loss, when the deadline comes within the safety margin (10 % of
        the lease, at least 50 ms) unextended, or on resign()/cancel(). Blocking work cannot be
        interrupted: it must poll (or wait on) `term.cancelled` and return; the campaign
        treats the term as over at the deadline whatever the work does. The work returning
        on its own resigns and ends the campaign with its value; raising resigns and ends it
        with that error. `work=None` holds leadership doing nothing (until lost, resigned,
        cancelled).

        `on_loss`: "recampaign" (default: stay queued, or reopen the stream, and lead again
        with a higher epoch) or "stop" (end the campaign after a term was lost). `value`,
        `labels`, `priority`, `never_lead` are CampaignStart's. Pings go every `ping_interval`
        seconds (at most a third of the last lease apart). `on_event(CampaignEvent)` gets
        queued / leading / lost / failover / refused / stopped for logs. The stream fails
        over between the addresses as a watch does; a status other than the failover ones
        (INVALID_ARGUMENT, ALREADY_EXISTS, PERMISSION_DENIED) ends the campaign with an
        ElectdError, as does a first round in which no node answered."""
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
        with self._lock:
            if self._closed:
                raise ElectdError("the client is closed")
        campaign = Campaign(self, spec, work, on_event)
        with self._lock:
            self._campaigns.add(campaign)
        return campaign

    def watch_leader(
        self, after_epoch: int = 0, on_failover: FailoverHook | None = None, election: str = ""
    ) -> LeaderWatch:
        """Leaders from now on, one per change, with strictly increasing epochs, each greater
        than `after_epoch` (the highest epoch the caller already handled; 0: from the current
        leader on). `on_failover(address, reason)` is called each time the watch leaves an
        address. Of the named `election` if given (a vacancy is reported by nobody, and is no
        reason to fail over), else of the nodes. Iterate over the returned LeaderWatch;
        `cancel()` ends it."""
        watch = LeaderWatch(self, after_epoch, on_failover, election)
        with self._lock:
            if self._closed:
                raise ElectdError("the client is closed")
            self._watches.add(watch)
        return watch

    # ----- plumbing ------------------------------------------------------------------------

    def _acquire(self, address: str) -> _Link:
        with self._lock:
            if self._closed:
                raise ElectdError("the client is closed")
            link = self._links.get(address)
            if link is None:
                link = self._links[address] = _Link(address, self.options, self.transport)
            link.users += 1
            return link

    def _release(self, link: _Link, failed: bool) -> None:
        with self._lock:
            link.users -= 1
            if failed and self._links.get(link.address) is link:
                del self._links[link.address]
                link.dropped = True
            close = link.dropped and link.users == 0
        if close:
            link.channel.close()

    def _unary(self, call: Callable[[Any], _R]) -> _R:
        failures: list[Failure] = []
        n = len(self.addresses)
        start = self._current
        for i in range(n):
            index = (start + i) % n
            address = self.addresses[index]
            link = self._acquire(address)
            answered = False
            try:
                if not link.ready and not _settle(
                    link.channel, self.connect_timeout, threading.Condition()
                ):
                    failures.append(connect_failure(address, self.connect_timeout))
                    continue
                try:
                    result = call(link.stub)
                except grpc.RpcError as exc:
                    if exc.code() not in FAILOVER_CODES:
                        answered = link.ready = True  # it answered: connected
                        raise ElectdError.from_rpc(address, exc) from None
                    failures.append(Failure.from_rpc(address, exc))
                    continue
                except ValueError:  # grpc: "Cannot invoke RPC on closed channel!"
                    raise ElectdError("the client is closed") from None
                answered = link.ready = True
                self._current = index
                return result
            finally:
                self._release(link, failed=not answered)
        raise no_node_answered(self.addresses, failures)


class LeaderWatch:
    """An iterator of leaders (electd.v1.Leader), one per change, epochs strictly increasing.

    Streams WatchLeader from one address at a time and moves to the next one (calling
    `on_failover(address, reason)`) when the address refuses, does not connect within the
    connect deadline, sends no first message within the first-message deadline, stops
    answering keepalive pings (a frozen node), fails with UNAVAILABLE, DEADLINE_EXCEEDED or
    RESOURCE_EXHAUSTED, cannot vouch for a leader, or ends the stream. After each full round
    without a leader it backs off (50 ms doubling to 2 s, full jitter). Raises ElectdError with
    `no_node_answered` if no node answered at all in the first round, and at once with any other
    status; once a node has answered it keeps trying until cancelled.

    `cancel()` (any thread, or a signal handler) ends the iteration at once, also during a
    backoff or a pending connection; so does leaving a `with` block."""

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
        # RLock-based: cancel() may run in a signal handler of a thread that holds it.
        self._cond = threading.Condition(threading.RLock())
        self._cancelled = False
        self._call: Any = None
        self._leaders: Generator[pb.Leader, None, None] | None = None

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
        with self._cond:
            call = self._call
            self._cond.notify_all()
        if call is not None:
            call.cancel()

    def __enter__(self) -> LeaderWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def __iter__(self) -> LeaderWatch:
        return self

    def __next__(self) -> pb.Leader:
        if self._leaders is None:
            self._leaders = self._run()
        return next(self._leaders)

    def _stopped(self) -> bool:
        return self._cancelled

    def _run(self) -> Generator[pb.Leader, None, None]:
        state, client = self._state, self._client
        while not self._cancelled:
            address = state.address
            channel = client.transport.channel(address, client.options)
            try:
                if _settle(channel, client.connect_timeout, self._cond, self._stopped):
                    outcome = yield from self._stream(channel, address)
                    if outcome is None:
                        return  # cancelled
                    failure, got_leader = outcome
                elif self._cancelled:
                    return
                else:
                    failure, got_leader = connect_failure(address, client.connect_timeout), False
            finally:
                channel.close()
            delay = state.leave(failure, got_leader)
            if delay:
                self._sleep(delay)

    def _sleep(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        with self._cond:
            while not self._cancelled:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                _wait(self._cond, remaining)

    def _stream(
        self, channel: grpc.Channel, address: str
    ) -> Generator[pb.Leader, None, tuple[Failure, bool] | None]:
        """One stream from `address`: the leaders it brings, then (why it ended, whether it
        brought an elected leader), or None when cancelled."""
        state, timeout = self._state, self._client.first_message_timeout
        stub = pb_grpc.ElectionServiceStub(channel)  # type: ignore[no-untyped-call]
        call = stub.WatchLeader(state.request(), wait_for_ready=False)
        first = {"got": False, "expired": False}

        def expire() -> None:
            with self._cond:
                if first["got"]:
                    return
                first["expired"] = True
            call.cancel()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        with self._cond:
            self._call = call
        if self._cancelled:
            call.cancel()
        timer.start()
        got_leader = False
        try:
            for msg in call:
                with self._cond:
                    first["got"] = True
                timer.cancel()
                failure = vouch_failure(address, msg)
                if failure is not None:
                    return failure, got_leader
                got_leader = True
                leader = state.accept(msg)
                if leader is not None:
                    yield leader
                if self._cancelled:
                    return None
            return ended_failure(address), got_leader
        except grpc.RpcError as exc:
            if self._cancelled:
                return None
            if first["expired"]:
                return first_message_failure(address, timeout), False
            if exc.code() in FAILOVER_CODES or exc.code() == grpc.StatusCode.CANCELLED:
                # CANCELLED that we did not ask for: the node cancels its streams as it stops.
                return Failure.from_rpc(address, exc), got_leader
            raise ElectdError.from_rpc(address, exc) from None
        finally:
            timer.cancel()
            call.cancel()
            with self._cond:
                self._call = None


def wait_for_leader(addresses: Sequence[str], timeout: float = 30.0) -> pb.Leader:
    """Poll until some node reports a leader (for scripts and tests)."""
    deadline = time.monotonic() + timeout
    with ElectionClient(addresses, call_timeout=1.0) as client:
        while True:
            try:
                return client.get_leader().leader
            except ElectdError as exc:
                if not exc.no_node_answered or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def probe(
    address: str,
    timeout: float = 0.5,
    *,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_server_name: str | None = None,
) -> str:
    """The node's overall grpc.health.v1 status by name ("SERVING", "NOT_SERVING", ...), or
    "UNREACHABLE" when the health call itself fails (refused, timed out, wrong service, TLS
    refused). The TLS options are the client's (ElectionClient)."""
    transport = Transport(tls_ca, tls_cert, tls_key, tls_server_name)
    with transport.channel(validate_address(address)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
