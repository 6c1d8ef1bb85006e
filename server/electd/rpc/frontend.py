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
from electd.rpc.server import BindError, add_services, create_server
from electd.rpc.servicer import ElectionServicer

__all__ = ["BindError", "Frontend"]


class Frontend:
    def __init__(self, listen: str) -> None:
        """Bind `listen` now (port 0 picks one: see `port`). Raises BindError."""
        self._server, self.port = create_server(listen)
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
        servicer = ElectionServicer(self._hub, members, node_id, max_streams)
        self._health = add_services(self._server, servicer, self._hub)

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
