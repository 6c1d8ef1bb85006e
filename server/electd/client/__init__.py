"""The Python client library for electd (also behind `electd leader|nodes|watch` and
`electd dev`, which use it so that grpc stays inside this package and `rpc/`).

Imports grpc and the generated code, nothing of the server. Follows clients/README.md (its
naming contract and its failover contract): any node answers for the cluster; on UNAVAILABLE,
a deadline, an unreachable node or (on a watch) a node that cannot vouch for a leader, move to
the next address, with exponential backoff and jitter between full rounds. A watch never
yields an epoch lower than or equal to one it already yielded, even across failover, because
it resumes with `min_epoch`. Every failure reaches the caller as one `ElectdError`, which
carries the gRPC status code and details.

It lives in the server's distribution (not its own under clients/python) because it shares the
generated code `electd.v1` with the server: one copy, produced by one command. Splitting it
out (a client install without kazoo) means moving that generated code into a package both
depend on; clients/python/README.md says so.

    client = ElectionClient(["10.0.0.1:7000", "10.0.0.2:7000"])
    leader = client.get_leader().leader         # GetLeaderResponse -> electd.v1.Leader
    for leader in client.watch_leader():        # one per change of leader, epochs increasing
        ...
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc

__all__ = [
    "ElectdError",
    "ElectionClient",
    "LeaderWatch",
    "pb",
    "probe",
    "validate_address",
    "wait_for_leader",
]

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
_R = TypeVar("_R")
# Codes after which another node may well answer.
FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class ElectdError(Exception):
    """The one error of this library. `code` and `details` are the gRPC status of the last
    failure (`code` is None for a failure that had no status, such as a bad address);
    `no_node_answered` is true when every address was tried and none answered, and
    `addresses` then names them."""

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode | None = None,
        details: str = "",
        addresses: Sequence[str] = (),
        no_node_answered: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details = details
        self.addresses = list(addresses)
        self.no_node_answered = no_node_answered

    @classmethod
    def from_rpc(cls, address: str, exc: grpc.RpcError) -> ElectdError:
        code, details = exc.code(), exc.details() or ""
        return cls(f"{address}: {code.name}: {details}", code, details, [address])


def _no_node(
    addresses: Sequence[str], errors: Sequence[str], last: grpc.RpcError | None
) -> ElectdError:
    return ElectdError(
        "no electd node answered (" + "; ".join(errors) + ")",
        last.code() if last is not None else grpc.StatusCode.UNAVAILABLE,
        (last.details() or "") if last is not None else "",
        addresses,
        no_node_answered=True,
    )


def validate_address(address: str) -> str:
    """`HOST:PORT` with a port in 1-65535, else ElectdError naming what is wrong. Returns the
    address stripped of surrounding blanks."""
    text = address.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ElectdError(f"bad address {address!r}: want HOST:PORT with a port in 1-65535")
    return text


class Backoff:
    """Exponential backoff with full jitter: 50 ms, doubling, capped at 2 s."""

    def __init__(self, start: float = 0.05, cap: float = 2.0) -> None:
        self._start, self._cap, self._next = start, cap, start

    def reset(self) -> None:
        self._next = self._start

    def delay(self) -> float:
        delay = random.uniform(self._next / 2, self._next)
        self._next = min(self._next * 2, self._cap)
        return delay


class ElectionClient:
    def __init__(self, addresses: Sequence[str], call_timeout: float = 2.0) -> None:
        if not addresses:
            raise ElectdError("at least one node address is needed")
        self.addresses = [validate_address(a) for a in addresses]
        self.call_timeout = call_timeout
        self._current = 0
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}

    def close(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()

    def __enter__(self) -> ElectionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stub(self, address: str) -> pb_grpc.ElectionServiceStub:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
                self._channels[address] = channel
        return pb_grpc.ElectionServiceStub(channel)  # type: ignore[no-untyped-call]

    def get_leader(self) -> pb.GetLeaderResponse:
        """The current leader (`.leader`) as one node that answers sees it."""
        response: pb.GetLeaderResponse = self._unary(
            lambda stub: stub.GetLeader(pb.GetLeaderRequest(), timeout=self.call_timeout)
        )
        return response

    def list_nodes(self, label_selector: Mapping[str, str] | None = None) -> pb.ListNodesResponse:
        """The members (`.nodes`) in election order, optionally only those with these labels."""
        request = pb.ListNodesRequest(label_selector=dict(label_selector or {}))
        response: pb.ListNodesResponse = self._unary(
            lambda stub: stub.ListNodes(request, timeout=self.call_timeout)
        )
        return response

    def watch_leader(self, min_epoch: int = 0) -> LeaderWatch:
        """Leaders from now on, one per change, with strictly increasing epochs."""
        return LeaderWatch(self, min_epoch)

    def _unary(self, call: Callable[[pb_grpc.ElectionServiceStub], _R]) -> _R:
        errors = []
        last: grpc.RpcError | None = None
        n = len(self.addresses)
        for i in range(n):
            address = self.addresses[(self._current + i) % n]
            try:
                result = call(self.stub(address))
            except grpc.RpcError as exc:
                if exc.code() not in FAILOVER_CODES:
                    raise ElectdError.from_rpc(address, exc) from None
                errors.append(f"{address}: {exc.code().name}: {exc.details()}")
                last = exc
                continue
            self._current = (self._current + i) % n
            return result
        raise _no_node(self.addresses, errors, last)

    def _advance(self) -> str:
        self._current = (self._current + 1) % len(self.addresses)
        return self.addresses[self._current]


class LeaderWatch:
    """An iterator of leaders; `cancel()` (from any thread) ends it at once. Raises
    ElectdError (`no_node_answered`) if no node answers at all in the first round; once one has
    answered, it keeps trying (with backoff) until cancelled."""

    def __init__(self, client: ElectionClient, min_epoch: int) -> None:
        self._client = client
        self.last_epoch = max(0, min_epoch - 1)
        self._cancelled = threading.Event()
        self._call: grpc.Future | None = None
        self._lock = threading.Lock()
        self.last_error = ""

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def __iter__(self) -> Iterator[pb.Leader]:
        backoff = Backoff()
        address = self._client.addresses[self._client._current]
        failures = 0
        answered = False  # has any node ever answered? If none does in the first round: fail
        errors: list[str] = []
        last: grpc.RpcError | None = None
        while not self._cancelled.is_set():
            got_leader = False
            try:
                for msg in self._stream(address):
                    answered = True
                    if msg.state == pb.LEADER_STATE_ELECTED:
                        got_leader = True
                        backoff.reset()
                        failures = 0
                        if msg.leader.epoch > self.last_epoch:
                            self.last_epoch = msg.leader.epoch
                            yield msg.leader
                    else:
                        self.last_error = f"{address}: {msg.reason}"
                        break  # this node cannot vouch: ask another
                else:
                    self.last_error = f"{address}: stream ended (node shutting down?)"
            except grpc.RpcError as exc:
                if self._cancelled.is_set():
                    return
                if exc.code() not in FAILOVER_CODES | {grpc.StatusCode.CANCELLED}:
                    raise ElectdError.from_rpc(address, exc) from None
                last = exc
                self.last_error = f"{address}: {exc.code().name}: {exc.details()}"
            if not got_leader:
                failures += 1
                errors.append(self.last_error)
            if not answered and failures == len(self._client.addresses):
                raise _no_node(self._client.addresses, errors, last)
            if failures and failures % len(self._client.addresses) == 0:
                self._cancelled.wait(backoff.delay())
            address = self._client._advance()

    def _stream(self, address: str) -> Iterator[pb.WatchLeaderResponse]:
        request = pb.WatchLeaderRequest(min_epoch=self.last_epoch + 1 if self.last_epoch else 0)
        call = self._client.stub(address).WatchLeader(request)
        with self._lock:
            self._call = call
        if self._cancelled.is_set():
            call.cancel()
        try:
            yield from call
        finally:
            call.cancel()
            with self._lock:
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


def probe(address: str, timeout: float = 0.5) -> str:
    """The node's overall grpc.health.v1 status by name ("SERVING", "NOT_SERVING", ...), or
    "UNREACHABLE" when the health call itself fails (refused, timed out, wrong service). The
    one "is this node serving?" question of the CLI, `electd dev`, tests and benchmarks."""
    with grpc.insecure_channel(validate_address(address)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
