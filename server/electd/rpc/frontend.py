"""The gRPC side of one node behind one object, so that app.py needs nothing else of rpc/:
bind the port (first, to learn it), attach the hub, the servicer, health and reflection once
the node's id is known, hand the engine its `publish`, and stop in order.

Loop thread only, except `publish` (any thread: the hub crosses into the loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from grpc_health.v1._async import HealthServicer

from electd.engine import MemberView, Role, View
from electd.rpc.hub import ViewHub
from electd.rpc.interceptor import Observer, ObservingInterceptor
from electd.rpc.server import BindError, add_services, create_server
from electd.rpc.servicer import ElectionServicer

__all__ = ["BindError", "Frontend"]


class Frontend:
    def __init__(self, listen: str, observe: Observer | None = None) -> None:
        """Bind `listen` now (port 0 picks one: see `port`). Raises BindError. `observe`:
        called with (method, code, seconds or None for streams) after every call."""
        interceptors = [ObservingInterceptor(observe)] if observe is not None else []
        self._server, self.port = create_server(listen, interceptors)
        self._hub: ViewHub | None = None
        self._health: HealthServicer | None = None

    def attach(
        self, node_id: str, members: Callable[[], list[MemberView]], max_streams: int
    ) -> None:
        """Add ElectionService, health (NOT_SERVING until the engine vouches) and reflection.
        `members` is called on a worker thread per ListNodes."""
        loop = asyncio.get_running_loop()
        self._hub = ViewHub(
            loop, View(0, node_id, Role.JOINING, None, "connecting to ZooKeeper", "", "", 0)
        )
        self._servicer = ElectionServicer(self._hub, members, node_id, max_streams)
        self._health = add_services(self._server, self._servicer, self._hub)

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
        """End every WatchLeader stream (they get the hub's final state)."""
        if self._hub is not None:
            self._hub.close()

    async def stop(self, grace: float) -> None:
        """Stop the server, letting in-flight calls finish in `grace`."""
        await self._server.stop(grace)
