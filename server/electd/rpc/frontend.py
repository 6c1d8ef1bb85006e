"""The gRPC side of one node behind one object, so that app.py needs nothing else of rpc/:
bind the port (first, to learn it; TLS or plaintext, with the transport limits and the
authorization interceptor of `SecuritySettings`), attach the hub, the servicer, health and
reflection once the node's id is known, hand the engine its `publish`, and stop in order.

Loop thread only, except `publish` (any thread: the hub crosses into the loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import grpc
from grpc_health.v1._async import HealthServicer

from electd.engine import MemberView, Role, View
from electd.rpc.auth import GuardInterceptor, Policy
from electd.rpc.campaign import CampaignCounters
from electd.rpc.hub import ViewHub
from electd.rpc.interceptor import Observer, ObservingInterceptor
from electd.rpc.server import BindError, Limits, add_services, create_server
from electd.rpc.servicer import ElectionsApi, ElectionServicer
from electd.rpc.tls import CertificateFiles, server_credentials
from electd.tlsfiles import PemError

__all__ = ["BindError", "Frontend", "SecuritySettings"]


class SecuritySettings(Protocol):
    """What the node's security settings (config/security.py's ServerSecurityConfig, which
    NodeConfig inherits) give the gRPC side; rpc/ reads them without importing config/."""

    @property
    def tls_cert(self) -> str | None: ...
    @property
    def tls_key(self) -> str | None: ...
    @property
    def tls_client_ca(self) -> str | None: ...
    @property
    def allow_read(self) -> tuple[str, ...]: ...
    @property
    def allow_write(self) -> tuple[str, ...]: ...
    @property
    def reflection_enabled(self) -> bool: ...
    @property
    def max_recv_message_bytes(self) -> int: ...
    @property
    def max_streams_per_peer(self) -> int: ...
    @property
    def max_streams_per_connection(self) -> int: ...
    @property
    def min_ping_interval(self) -> float: ...
    @property
    def max_ping_strikes(self) -> int: ...
    @property
    def max_connection_idle(self) -> float: ...
    @property
    def max_connection_age(self) -> float: ...
    @property
    def max_connection_age_grace(self) -> float: ...


class Frontend:
    def __init__(
        self,
        listen: str,
        observe: Observer | None = None,
        security: SecuritySettings | None = None,
    ) -> None:
        """Bind `listen` now (port 0 picks one: see `port`). Raises BindError (also for TLS
        files that cannot be used). `observe`: called with (method, code, seconds or None for
        streams) after every call. `security`: TLS, policy and limits (None: plaintext, open,
        the default limits)."""
        interceptors: list[Any] = [ObservingInterceptor(observe)] if observe is not None else []
        credentials: grpc.ServerCredentials | None = None
        self.certificates: CertificateFiles | None = None
        self._reflect = True
        limits = Limits()
        if security is not None:
            if security.tls_cert and security.tls_key:
                try:
                    credentials, self.certificates = server_credentials(
                        security.tls_cert, security.tls_key, security.tls_client_ca
                    )
                except PemError as exc:
                    raise BindError(f"cannot serve TLS: {exc}") from None
            policy = Policy.of(security.allow_read, security.allow_write)
            interceptors.append(GuardInterceptor(policy, security.max_streams_per_peer))
            self._reflect = security.reflection_enabled
            limits = Limits(
                max_recv_message_bytes=security.max_recv_message_bytes,
                max_streams_per_connection=security.max_streams_per_connection,
                min_ping_interval=security.min_ping_interval,
                max_ping_strikes=security.max_ping_strikes,
                max_connection_idle=security.max_connection_idle,
                max_connection_age=security.max_connection_age,
                max_connection_age_grace=security.max_connection_age_grace,
            )
        self.tls = credentials is not None
        self._server, self.port = create_server(listen, interceptors, credentials, limits)
        self._hub: ViewHub | None = None
        self._health: HealthServicer | None = None
        #: The Campaign streams' counters (ops/metrics.py reads them).
        self.campaign_counters = CampaignCounters()

    def attach(
        self,
        node_id: str,
        members: Callable[[], list[MemberView]],
        max_streams: int,
        current: Callable[[], View] | None = None,
        elections: ElectionsApi | None = None,
        candidate_timeout: float = 5.0,
    ) -> None:
        """Add ElectionService, health (NOT_SERVING until the engine vouches) and reflection.
        `members` is called on a worker thread per ListNodes; `current` (the engine's latest
        view, any thread, never blocking for long) confirms every answer that names this node
        (ViewHub.current). `elections`: the registry of named elections (Campaign, Resign,
        ListElections and the `election` field); `candidate_timeout`: --candidate-timeout."""
        loop = asyncio.get_running_loop()
        self._hub = ViewHub(
            loop,
            View(0, node_id, Role.JOINING, None, "connecting to ZooKeeper", "", "", 0),
            current,
        )
        self._servicer = ElectionServicer(
            self._hub,
            members,
            node_id,
            max_streams,
            elections=elections,
            candidate_timeout=candidate_timeout,
            counters=self.campaign_counters,
        )
        self._health = add_services(self._server, self._servicer, self._hub, self._reflect)
        if elections is not None:
            self.campaign_counters.count = elections.candidates

    @property
    def open_streams(self) -> int:
        """WatchLeader streams open now."""
        return self._servicer.open_streams if self._hub is not None else 0

    @property
    def hub(self) -> ViewHub:
        assert self._hub is not None, "attach() first"
        return self._hub

    def publish(self, view: View) -> None:
        """The engine's publish callback (any thread)."""
        self.hub.publish(view)

    def on_leading_change(self, listener: Callable[[int | None], None]) -> None:
        """`listener(epoch)` when this node starts leading, `listener(None)` when it stops."""
        self.hub.on_leading_change(listener)

    async def start(self) -> None:
        await self._server.start()

    def retire(self) -> None:
        """Stop vouching at once: streams hear "unknown", GetLeader answers UNAVAILABLE."""
        self.hub.retire()

    async def drain(self) -> None:
        """Tell health checkers that this node is going away."""
        if self._health is not None:
            await self._health.enter_graceful_shutdown()

    def end_streams(self) -> None:
        """End every WatchLeader stream (they get the hub's final state) and every Campaign
        stream still open (Lost SHUTDOWN, then UNAVAILABLE)."""
        if self._hub is not None:
            self._hub.close()

    async def stop(self, grace: float) -> None:
        """Stop the server, letting in-flight calls finish in `grace`."""
        await self._server.stop(grace)
