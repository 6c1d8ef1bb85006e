"""The floor of benchmark 9's handover: electd's shape with none of electd in it.

    python -m bench.campaignfloor ZK_HOSTS ELECTION_PATH   # prints its port, serves until SIGTERM

A bare grpc.aio server with electd's `Campaign` and `WatchLeader` methods and messages, on one
raw kazoo session, doing only the steps no implementation of this design can skip:
  * Campaign: `start` creates an ephemeral sequential entry and answers `queued` (its place); a
    candidate that is not first watches its predecessor only; when that goes, ONE read of its
    own entry (the round trip electd's claim takes before it may lead, RELIABILITY.md V10), then
    `leading` with the entry's sequence number as epoch. `resign` deletes the entry and a second
    znode in one multi (electd deletes entry and companion together), then `lost(RESIGNED)`
    and the stream ends OK. Pings are not answered.
  * WatchLeader(election): a children watch on the path; per change one listing, then the
    lowest entry as the leader.
Every kazoo callback crosses into the event loop with `call_soon_threadsafe`, as electd's hub.

No safety: no lease, no companions' checks, no fencing, no priorities, no validation. Benchmark
9 runs three of these beside the three electd nodes, with the same harness and the same trial,
so "electd / floor" is the price of electd's own code on this path, measured side by side.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from kazoo.client import KazooClient

from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc


def _seq(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


class FloorServicer(pb_grpc.ElectionServiceServicer):
    def __init__(self, kz: KazooClient, path: str, loop: asyncio.AbstractEventLoop) -> None:
        self.kz, self.path, self.loop = kz, path, loop

    def _entries(self, watch: Any = None) -> list[str]:
        names = self.kz.get_children(self.path, watch=watch)
        return sorted((n for n in names if not n.endswith(".x")), key=_seq)

    async def Campaign(
        self, request_iterator: AsyncIterator[pb.CampaignRequest], context: Any
    ) -> AsyncIterator[pb.CampaignResponse]:
        out: asyncio.Queue[pb.CampaignResponse | None] = asyncio.Queue()

        def send(msg: pb.CampaignResponse | None) -> None:  # any thread
            self.loop.call_soon_threadsafe(out.put_nowait, msg)

        it = aiter(request_iterator)
        await anext(it)  # start

        def register() -> str:  # the entry, and the second znode of the multi
            made: str = self.kz.create(f"{self.path}/c-", b"", ephemeral=True, sequence=True)
            self.kz.create(f"{made}.x", b"", ephemeral=True)
            return made

        me = await asyncio.to_thread(register)
        name = me.rsplit("/", 1)[1]

        ahead: list[str] = []  # the entries before ours at the last listing

        def check() -> None:  # a thread of kazoo's or the default executor
            entries = self._entries()
            if name not in entries:
                return
            ahead[:] = entries[: entries.index(name)]
            if not ahead:
                lead()
            elif self.kz.exists(f"{self.path}/{ahead[-1]}", watch=gone) is None:
                check()
            else:
                send(pb.CampaignResponse(queued=pb.CampaignQueued(position=len(ahead))))

        def gone(_event: object) -> None:  # kazoo's callback thread: the predecessor went
            # One round trip: our own entry and the others we knew ahead, pipelined.
            pending = [self.kz.exists_async(me)]
            pending += [self.kz.exists_async(f"{self.path}/{n}") for n in ahead[:-1]]
            stats = [p.get() for p in pending]
            if stats[0] is None:
                return
            if all(st is None for st in stats[1:]):
                ahead.clear()
                send(pb.CampaignResponse(leading=pb.CampaignLeading(epoch=_seq(name))))
            else:
                check()

        def lead() -> None:
            self.kz.exists(me)  # the one read before leading
            send(pb.CampaignResponse(leading=pb.CampaignLeading(epoch=_seq(name))))

        await asyncio.to_thread(check)

        async def read() -> None:
            async for req in it:
                if req.WhichOneof("request") == "resign":
                    tx = self.kz.transaction()
                    tx.delete(me)
                    tx.delete(f"{me}.x")
                    tx.commit_async().rawlink(
                        lambda _r: send(
                            pb.CampaignResponse(
                                lost=pb.CampaignLost(
                                    epoch=_seq(name), reason=pb.LOSS_REASON_RESIGNED
                                )
                            )
                        )
                    )
                    send(None)
                    return

        reader = asyncio.create_task(read())
        try:
            while True:
                msg = await out.get()
                if msg is None:  # resigned: the Lost is still to come (after the multi's reply)
                    lost = await out.get()
                    if lost is not None:
                        yield lost
                    return
                yield msg
        finally:
            reader.cancel()
            self.kz.delete_async(me)
            self.kz.delete_async(f"{me}.x")

    async def WatchLeader(
        self, request: pb.WatchLeaderRequest, context: Any
    ) -> AsyncIterator[pb.WatchLeaderResponse]:
        out: asyncio.Queue[int] = asyncio.Queue()
        ended = False

        def listing(_event: object = None) -> None:  # kazoo's callback thread
            if ended:
                return  # the stream is gone: set no watch again
            entries = self._entries(watch=listing)
            if entries:
                self.loop.call_soon_threadsafe(out.put_nowait, _seq(entries[0]))

        await asyncio.to_thread(listing)
        last = -1
        try:
            while True:
                epoch = await out.get()
                if epoch != last:
                    last = epoch
                    yield pb.WatchLeaderResponse(
                        state=pb.LEADER_STATE_ELECTED,
                        leader=pb.Leader(node=pb.Node(id=str(epoch)), epoch=epoch),
                    )
        finally:
            ended = True


async def serve(hosts: str, path: str) -> None:
    kz = KazooClient(hosts=hosts, timeout=10.0)
    kz.start(15)
    kz.ensure_path(path)
    server = grpc.aio.server()
    pb_grpc.add_ElectionServiceServicer_to_server(  # type: ignore[no-untyped-call]
        FloorServicer(kz, path, asyncio.get_running_loop()), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(port, flush=True)
    await stop.wait()
    await server.stop(0)
    kz.stop()
    kz.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m bench.campaignfloor ZK_HOSTS ELECTION_PATH")
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
