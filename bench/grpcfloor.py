"""The gRPC floor of fan-out: a bare grpc.aio server with the same WatchLeader method and message,
and none of electd (no engine, no ZooKeeper, no hub). SIGUSR1 makes it publish a new "leader"
to every open stream. Run as `python -m bench.grpcfloor`; it prints its port, then serves until
SIGTERM. The fan-out benchmark measures it exactly like an electd node, in the same run, so the
cost of Python's gRPC stack itself (time and RSS per stream) is known next to electd's."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import grpc

from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc


class FloorServicer(pb_grpc.ElectionServiceServicer):
    def __init__(self) -> None:
        self.epoch = 1
        self.message = self._build()
        self.changed = asyncio.Event()

    def _build(self) -> pb.WatchLeaderResponse:
        return pb.WatchLeaderResponse(
            state=pb.LEADER_STATE_ELECTED,
            leader=pb.Leader(node=pb.Node(id="floor", address="127.0.0.1:1"), epoch=self.epoch),
            responder_id="floor",
        )

    def change(self) -> None:
        self.epoch += 1
        self.message = self._build()
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def WatchLeader(self, request: Any, context: Any) -> Any:
        epoch = 0
        while True:
            if epoch != self.epoch:
                epoch = self.epoch
                yield self.message
            await self.changed.wait()


async def serve() -> None:
    server = grpc.aio.server()
    servicer = FloorServicer()
    pb_grpc.add_ElectionServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, servicer.change)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(port, flush=True)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(serve())
    sys.exit(0)
