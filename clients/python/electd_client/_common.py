"""What the blocking and the asyncio clients share: the contract's defaults (clients/README.md,
"The client contract"), the channel options that make them hold in grpc's C core, TLS
(`Transport`: clients/README.md, "TLS"), the one error type, address checking, the backoff and
the watch's epoch bookkeeping. Imports grpc, nothing of the generated code's channels."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from electd_client.v1 import election_service_pb2 as pb

CALL_TIMEOUT = 2.0
"""Per-call deadline of a unary call, seconds."""
CONNECT_TIMEOUT = 2.0
"""Per-address connect deadline (TCP connect and HTTP/2 handshake), seconds."""
FIRST_MESSAGE_TIMEOUT = 2.0
"""A watch that gets no first message within this many seconds moves on."""
KEEPALIVE_TIME = 3.0
"""HTTP/2 ping every this many seconds on an idle connection (with or without calls)."""
KEEPALIVE_TIMEOUT = 3.0
"""No ping ack within this many seconds closes the connection."""
GRPC_CONNECT_SLACK = 0.5
"""gRPC's own connection-attempt deadline is the connect deadline plus this, seconds."""
BACKOFF_START = 0.05
BACKOFF_CAP = 2.0

# Codes after which another node may well answer: move to the next address.
FAILOVER_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,  # a full node (--max-streams)
    }
)

FailoverHook = Callable[[str, str], object]
"""`on_failover(address, reason)`: called each time a watch leaves an address."""


def channel_options(
    connect_timeout: float = CONNECT_TIMEOUT,
    keepalive_time: float = KEEPALIVE_TIME,
    keepalive_timeout: float = KEEPALIVE_TIMEOUT,
) -> list[tuple[str, int]]:
    """The options of every channel this library opens, checked against grpcio 1.85's core.

    * `grpc.keepalive_timeout_ms` alone does not bound anything: a keepalive ping is an HTTP/2
      ping, and the transport closes on an unanswered ping after `grpc.http2.ping_timeout_ms`
      (default 60 s) whatever the keepalive timeout says. Both are set, so a frozen node is left
      within keepalive time + timeout.
    * `grpc.http2.max_pings_without_data` = 0: pings go on while a watch is quiet (the default,
      2, stops them after two pings without data, and a frozen node is then never noticed).
    * `grpc.keepalive_permit_without_calls`: a pooled connection with no call open is probed
      too (the server permits pings every second).
    * `grpc.min_reconnect_backoff_ms` is, despite its name, the deadline of one connection
      attempt (TCP connect *and* HTTP/2 handshake up to the server's SETTINGS; default 20 s).
      The clients enforce the connect deadline themselves (they wait for the channel to be
      READY, and give up on it and replace it at the deadline, with a reason that says so);
      gRPC's own attempt deadline is set 0.5 s beyond it, so that it bounds a reconnection of
      a pooled channel too without racing that wait. The reconnect backoff is capped at the
      same value so that an attempt never gets a longer deadline.
    * `grpc.use_local_subchannel_pool`: each channel owns its connection, so a channel that is
      replaced after a failure does not inherit the old one's pending attempt or backoff.
    """
    connect_ms = _ms(connect_timeout + GRPC_CONNECT_SLACK)
    ping_timeout_ms = _ms(keepalive_timeout)
    return [
        ("grpc.keepalive_time_ms", _ms(keepalive_time)),
        ("grpc.keepalive_timeout_ms", ping_timeout_ms),
        ("grpc.http2.ping_timeout_ms", ping_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.min_reconnect_backoff_ms", connect_ms),
        ("grpc.initial_reconnect_backoff_ms", min(1_000, connect_ms)),
        ("grpc.max_reconnect_backoff_ms", connect_ms),
        ("grpc.use_local_subchannel_pool", 1),
    ]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class Transport:
    """Plaintext, or TLS when any of the four options is given (clients/README.md, "TLS"):

    * `tls_ca`: PEM file of the CAs to verify the nodes' certificates with (without it: the
      system's roots, as grpc finds them);
    * `tls_cert` + `tls_key`: PEM files of a client certificate chain and its key, presented
      for mutual TLS (one without the other is an error);
    * `tls_server_name`: the name the nodes' certificates must carry (also sent as SNI)
      instead of each address's host.

    The files are read now (a missing one is an ElectdError naming the option) and read again
    for a new connection whenever one of them changed, so rotated certificates are picked up
    without a new client. Thread-safe."""

    def __init__(
        self,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_server_name: str | None = None,
    ) -> None:
        # Rule 1 of the contract (clients/README.md): an empty value is not given.
        tls_ca, tls_cert, tls_key = tls_ca or None, tls_cert or None, tls_key or None
        if (tls_cert is None) != (tls_key is None):
            given, missing = ("tls_cert", "tls_key") if tls_key is None else ("tls_key", "tls_cert")
            raise ElectdError(f"{given}: needs {missing} too (a client certificate and its key)")
        self._files = {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key}
        self.server_name = tls_server_name or None
        self.tls = any(v is not None for v in self._files.values()) or self.server_name is not None
        self._lock = threading.Lock()
        self._stamp: tuple[object, ...] = ()
        self._credentials: grpc.ChannelCredentials | None = None
        if self.tls:
            self.credentials()

    def _stat(self) -> tuple[object, ...]:
        out: list[object] = []
        for path in self._files.values():
            try:
                st = os.stat(path) if path is not None else None
            except OSError:
                st = None
            out.append(None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def _read(self, name: str) -> bytes | None:
        path = self._files[name]
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise ElectdError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None

    def credentials(self) -> grpc.ChannelCredentials:
        """The TLS credentials, read again if a file changed since the last read."""
        with self._lock:
            stamp = self._stat()
            if self._credentials is None or stamp != self._stamp:
                self._credentials = grpc.ssl_channel_credentials(
                    root_certificates=self._read("tls_ca"),
                    private_key=self._read("tls_key"),
                    certificate_chain=self._read("tls_cert"),
                )
                self._stamp = stamp
            return self._credentials

    def _options(self, options: Sequence[tuple[str, int]]) -> list[tuple[str, int | str]]:
        out: list[tuple[str, int | str]] = list(options)
        if self.server_name is not None:
            out.append(("grpc.ssl_target_name_override", self.server_name))
        return out

    def channel(self, address: str, options: Sequence[tuple[str, int]] = ()) -> grpc.Channel:
        """A blocking channel to `address`."""
        if not self.tls:
            return grpc.insecure_channel(address, options=list(options))
        return grpc.secure_channel(address, self.credentials(), options=self._options(options))

    def aio_channel(
        self, address: str, options: Sequence[tuple[str, int]] = ()
    ) -> grpc.aio.Channel:
        """An asyncio channel to `address`."""
        if not self.tls:
            return grpc.aio.insecure_channel(address, options=list(options))
        return grpc.aio.secure_channel(address, self.credentials(), options=self._options(options))


class ElectdError(Exception):
    """The one error of this library.

    `code` and `details` are the gRPC status of the failure (of the last address tried when no
    node answered; `code` is None for a failure that had no status, such as a bad address).
    `no_node_answered` is true when every address was tried and none answered. `addresses`
    names the addresses concerned: all of them when none answered, else the one that answered.
    """

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


@dataclass
class Failure:
    """One address that did not answer: the status to report and a line for the message."""

    address: str
    code: grpc.StatusCode
    details: str
    answered: bool = False  # the node did send something (it cannot vouch, or it ended)

    @classmethod
    def from_rpc(cls, address: str, exc: grpc.RpcError) -> Failure:
        return cls(address, exc.code(), exc.details() or "")

    @property
    def reason(self) -> str:
        return f"{self.code.name}: {self.details}" if self.details else self.code.name

    def __str__(self) -> str:
        return f"{self.address}: {self.reason}"


def no_node_answered(addresses: Sequence[str], failures: Sequence[Failure]) -> ElectdError:
    last = failures[-1] if failures else None
    return ElectdError(
        "no electd node answered (" + "; ".join(str(f) for f in failures) + ")",
        last.code if last is not None else grpc.StatusCode.UNAVAILABLE,
        last.details if last is not None else "",
        addresses,
        no_node_answered=True,
    )


def connect_failure(address: str, timeout: float) -> Failure:
    return Failure(
        address,
        grpc.StatusCode.UNAVAILABLE,
        f"no connection within the connect deadline ({timeout:g}s)",
    )


def validate_address(address: str) -> str:
    """`HOST:PORT` with a port in 1-65535, else ElectdError naming what is wrong. Returns the
    address stripped of surrounding blanks."""
    text = address.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ElectdError(f"bad address {address!r}: want HOST:PORT with a port in 1-65535")
    return text


def validate_addresses(addresses: Sequence[str]) -> list[str]:
    if isinstance(addresses, str):
        addresses = [addresses]
    if not addresses:
        raise ElectdError("at least one node address is needed")
    return [validate_address(a) for a in addresses]


class Backoff:
    """Exponential backoff with full jitter between rounds: a delay drawn uniformly from
    [0, d], with d starting at 50 ms and doubling up to 2 s."""

    def __init__(self, start: float = BACKOFF_START, cap: float = BACKOFF_CAP) -> None:
        self._start, self._cap, self._next = start, cap, start

    def reset(self) -> None:
        self._next = self._start

    def delay(self) -> float:
        delay = random.uniform(0.0, self._next)
        self._next = min(self._next * 2, self._cap)
        return delay


class WatchState:
    """The bookkeeping of one watch, the same for the blocking and the asyncio one: which
    address is next, the highest epoch reported, failures in a row, when to back off, when to
    give up (no node answered at all in the first round)."""

    def __init__(
        self,
        addresses: Sequence[str],
        start: int,
        after_epoch: int,
        on_failover: FailoverHook | None,
        election: str = "",
    ) -> None:
        if isinstance(after_epoch, bool) or not isinstance(after_epoch, int) or after_epoch < 0:
            raise ElectdError(f"after_epoch: want an epoch >= 0, got {after_epoch!r}")
        self.addresses = list(addresses)
        self.election = election
        self.index = start % len(self.addresses)
        self.last_epoch = after_epoch
        self.on_failover = on_failover
        self.backoff = Backoff()
        self.answered = False  # has any node ever sent a message?
        self.failures: list[Failure] = []  # attempts in a row that gave no elected leader
        self.last_error = ""

    @property
    def address(self) -> str:
        return self.addresses[self.index]

    def request(self) -> pb.WatchLeaderRequest:
        # min_epoch = the last reported epoch (not one more): the node then holds back only
        # what is older, and still sends its current leader as the first message at once even
        # when that is the one already reported (which accept() drops), so the first-message
        # deadline tells a mute node from a quiet cluster.
        return pb.WatchLeaderRequest(min_epoch=self.last_epoch, election=self.election)

    def heard(self) -> None:
        """The current node answered: the failures in a row and the backoff start again."""
        self.answered = True
        self.failures.clear()
        self.backoff.reset()

    def accept(self, msg: pb.WatchLeaderResponse) -> pb.Leader | None:
        """An elected leader (or a vacant named election) from the current node: the leader
        to report, if it is a new one (never one with an epoch at or below the last
        reported); None for a vacancy, which is an answer (no failover) with nobody to
        report."""
        self.heard()
        if msg.state == pb.LEADER_STATE_VACANT:
            return None
        if msg.leader.epoch > self.last_epoch:
            self.last_epoch = msg.leader.epoch
            return msg.leader
        return None

    def leave(self, failure: Failure, got_leader: bool) -> float | None:
        """The watch leaves the current address. Calls the hook, moves to the next address;
        returns the backoff delay when a full round failed, raises ElectdError when no node
        answered at all in the first round."""
        self.last_error = str(failure)
        if failure.answered:
            self.answered = True
        if not got_leader:
            self.failures.append(failure)
        if self.on_failover is not None:
            self.on_failover(failure.address, failure.reason)
        self.index = (self.index + 1) % len(self.addresses)
        n = len(self.addresses)
        if not self.failures or len(self.failures) % n:
            return None
        if not self.answered:
            raise no_node_answered(self.addresses, self.failures[-n:])
        return self.backoff.delay()


def vouch_failure(address: str, msg: pb.WatchLeaderResponse) -> Failure | None:
    """None when the message names an elected leader or vouches that a named election has
    none (LEADER_STATE_VACANT: not a reason to fail over), else why this node cannot vouch."""
    if msg.state == pb.LEADER_STATE_ELECTED and msg.HasField("leader"):
        return None
    if msg.state == pb.LEADER_STATE_VACANT:
        return None
    state = pb.LeaderState.Name(msg.state) if msg.state in pb.LeaderState.values() else "?"
    return Failure(
        address,
        grpc.StatusCode.UNAVAILABLE,
        f"cannot vouch for a leader ({state}): {msg.reason}" if msg.reason else state,
        answered=True,
    )


def ended_failure(address: str) -> Failure:
    return Failure(
        address, grpc.StatusCode.UNAVAILABLE, "stream ended (node shutting down?)", answered=True
    )


def first_message_failure(address: str, timeout: float) -> Failure:
    return Failure(
        address,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        f"no first message within the first-message deadline ({timeout:g}s)",
    )
