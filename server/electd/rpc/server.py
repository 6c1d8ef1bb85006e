"""Assembles a node's grpc.aio server: ElectionService, the standard health service
(grpc.health.v1, driven by the hub), server reflection (for grpcurl), the transport limits
(`Limits`: message size, ping abuse, connection idle and age, streams per connection) and the
port, plaintext or TLS. Loop thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from electd.rpc import reflection
from electd.rpc.hub import ViewHub
from electd.rpc.servicer import ElectionServicer
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ElectionService"].full_name

SERVER_OPTIONS = [
    # Never share a port with another process: a port in use must fail loudly.
    ("grpc.so_reuseport", 0),
    # Probe idle clients so that dead watchers do not pin resources.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Let clients probe their connections with pings every 3 s, with or without calls open
    # (clients/README.md, the failover contract); `Limits` says how often at most.
    ("grpc.keepalive_permit_without_calls", 1),
    # Calls that arrived but have not been picked up by the loop yet: with grpc's defaults
    # (1,000, hard limit 3,000) a burst of watchers reconnecting at once after a failover
    # (3,000 WatchLeader calls at once on one node: 631 CANCELLED) loses part of them.
    ("grpc.server.max_pending_requests", 50_000),
    ("grpc.server.max_pending_requests_hard_limit", 100_000),
]


@dataclass(frozen=True)
class Limits:
    """The transport's limits (the settings of the same names; 0 seconds: no limit).

    * `min_ping_interval` / `max_ping_strikes`: a ping sooner than the interval after the
      previous one (while the server sends nothing) is a strike; one more than
      `max_ping_strikes` and the connection gets GOAWAY (ENHANCE_YOUR_CALM, "too_many_pings").
      The clients' keepalive pings every 3 s; the interval must stay below that.
    * `max_connection_idle`: a connection with no call open for this long gets GOAWAY (the
      clients reconnect when they next call).
    * `max_connection_age` + `max_connection_age_grace`: every connection gets GOAWAY at this
      age (new calls go to a new connection, with the certificates of the moment), and is
      closed after the grace; streams still open then end with UNAVAILABLE, which the clients
      treat as "next address" and resume from the last epoch they reported (nothing missed,
      nothing twice).
    """

    max_recv_message_bytes: int = 65_536
    max_streams_per_connection: int = 2_000
    min_ping_interval: float = 1.0
    max_ping_strikes: int = 2
    max_connection_idle: float = 300.0
    max_connection_age: float = 3_600.0
    max_connection_age_grace: float = 30.0

    def options(self) -> list[tuple[str, int]]:
        opts = [
            ("grpc.max_receive_message_length", self.max_recv_message_bytes),
            ("grpc.max_concurrent_streams", self.max_streams_per_connection),
            ("grpc.http2.min_ping_interval_without_data_ms", _ms(self.min_ping_interval)),
            ("grpc.http2.max_ping_strikes", self.max_ping_strikes),
        ]
        if self.max_connection_idle > 0:
            opts.append(("grpc.max_connection_idle_ms", _ms(self.max_connection_idle)))
        if self.max_connection_age > 0:
            opts.append(("grpc.max_connection_age_ms", _ms(self.max_connection_age)))
            opts.append(("grpc.max_connection_age_grace_ms", _ms(self.max_connection_age_grace)))
        return opts


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


class BindError(Exception):
    """The listen address cannot be bound (in use, not local, no permission)."""


def create_server(
    listen: str,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    limits: Limits | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Create the server and bind it (TLS with `credentials`, else plaintext); returns it with
    the bound port (for port 0)."""
    options = SERVER_OPTIONS + (limits or Limits()).options()
    server = grpc.aio.server(options=options, interceptors=list(interceptors))
    try:
        if credentials is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, credentials)
    except RuntimeError as exc:
        raise BindError(f"cannot listen on {listen}: {exc}") from None
    if port == 0:
        raise BindError(f"cannot listen on {listen}: address in use or not available")
    return server, port


class HealthReporter:
    """Drives grpc.health.v1 from the hub's serving flag. Called on the loop thread; applies
    the latest status under a lock, so out-of-order task completion cannot leave a stale one."""

    def __init__(self, health: HealthServicer) -> None:
        self._health = health
        self._latest = health_pb2.HealthCheckResponse.NOT_SERVING
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, serving: bool) -> None:
        self._latest = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        logger.info("health: %s", "SERVING" if serving else "NOT_SERVING")
        task = asyncio.get_running_loop().create_task(self._apply())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply(self) -> None:
        async with self._lock:
            status = self._latest
            for name in ("", SERVICE_NAME):
                await self._health.set(name, status)


def add_services(
    server: grpc.aio.Server, servicer: ElectionServicer, hub: ViewHub, reflect: bool = True
) -> HealthServicer:
    """Register ElectionService, health (NOT_SERVING until the hub says otherwise) and, with
    `reflect`, reflection on `server`."""
    pb_grpc.add_ElectionServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    hub.on_serving_change(HealthReporter(health))
    if reflect:
        reflection.enable(
            server, (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
        )
    return health
