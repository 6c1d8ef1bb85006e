"""A candidate for the candidate scenarios: one Campaign stream to one node, raw stubs (no client
library, so the scenarios judge the server's rules C1-C4 alone), and a writer that trusts
nothing but its lease: every 20 ms, while its monotonic clock is more than a margin before the
deadline of the last `leading` (the send time of the ping it answers + lease_ms), it writes to
the fenced resource with its epoch. The resource's record of when each write arrived judges
the node: the terms of one election never overlap there.

  candidate.py ADDR ELECTION ID FENCE_HOST:PORT [--stop-reading-after N]

Prints one line per event, flushed: `queued position=P`, `leading epoch=E lease_ms=L`,
`lost epoch=E reason=R`, `ended CODE`. SIGTERM: resign on the stream, then exit 0.
`--stop-reading-after N`: after N responses it reads nothing more (it keeps pinging and
writing only while the last lease it read lasts).
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import socket
import sys
import threading
import time

import grpc

from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc

PING = 0.1
MARGIN = 0.1


class Candidate:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.sent: dict[int, float] = {}
        self.epoch = 0
        self.deadline = 0.0
        self.announced = 0
        self.requests: queue.SimpleQueue[pb.CampaignRequest | None] = queue.SimpleQueue()
        self.done = threading.Event()
        host, _, port = args.fence.rpartition(":")
        self.fence = socket.create_connection((host, int(port)), timeout=5).makefile("rwb")

    def say(self, line: str) -> None:
        print(line, flush=True)

    def outgoing(self):  # type: ignore[no-untyped-def]
        while True:
            req = self.requests.get()
            if req is None:
                return
            yield req

    def pinger(self) -> None:
        nonce = 0
        while not self.done.is_set():
            nonce += 1
            with self.lock:
                self.sent[nonce] = time.monotonic()
            self.requests.put(pb.CampaignRequest(ping=pb.CampaignPing(nonce=nonce)))
            self.done.wait(PING)

    def writer(self) -> None:
        seq = 0
        while not self.done.is_set():
            # Check and write under the lock: a `lost` is acknowledged only after the write in
            # flight has been answered (the candidate stops acting, then acks).
            with self.lock:
                if self.epoch and time.monotonic() < self.deadline - MARGIN:
                    now = time.time()
                    msg = {
                        "op": "write",
                        "node": self.args.id,
                        "epoch": self.epoch,
                        "seq": seq,
                        "asked": now,
                        "checked": now,
                    }
                    self.fence.write(json.dumps(msg).encode() + b"\n")
                    self.fence.flush()
                    self.fence.readline()
                    seq += 1
            time.sleep(0.02)

    def resign(self, *_: object) -> None:
        """Stop acting first, then resign (the node may hand over at once)."""
        with self.lock:
            self.epoch, self.deadline = 0, 0.0
        self.requests.put(pb.CampaignRequest(resign=pb.CampaignResign()))

    def run(self) -> int:
        channel = grpc.insecure_channel(
            self.args.addr,
            options=[("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 1000)],
        )
        stub = pb_grpc.ElectionServiceStub(channel)
        start = pb.CampaignStart(election=self.args.election, candidate_id=self.args.id)
        self.requests.put(pb.CampaignRequest(start=start))
        calls = stub.Campaign(self.outgoing())
        signal.signal(signal.SIGTERM, self.resign)
        threading.Thread(target=self.pinger, daemon=True).start()
        threading.Thread(target=self.writer, daemon=True).start()
        read = 0
        try:
            for resp in calls:
                read += 1
                self.handle(resp)
                if self.args.stop_reading_after and read >= self.args.stop_reading_after:
                    self.say("stopped reading")
                    self.done.wait()
            code = "OK"
        except grpc.RpcError as exc:
            code = exc.code().name
        with self.lock:
            self.epoch = 0
        self.done.set()
        self.requests.put(None)
        self.say(f"ended {code}")
        return 0

    def handle(self, resp: pb.CampaignResponse) -> None:
        kind = resp.WhichOneof("response")
        if kind == "leading":
            lead = resp.leading
            with self.lock:
                sent = self.sent.get(lead.nonce)
                if lead.epoch != self.epoch:
                    self.epoch, self.deadline = lead.epoch, 0.0
                if sent is not None and lead.lease_ms > 0:
                    self.deadline = max(self.deadline, sent + lead.lease_ms / 1000)
                first = self.deadline > 0 and self.announced != lead.epoch
                if first:
                    self.announced = lead.epoch
            if first:
                self.say(f"leading epoch={lead.epoch} lease_ms={lead.lease_ms}")
        elif kind == "lost":
            with self.lock:
                self.epoch, self.deadline = 0, 0.0
            self.say(f"lost epoch={resp.lost.epoch} reason={pb.LossReason.Name(resp.lost.reason)}")
            # The writer checks epoch under the lock before every write: it has stopped.
            self.requests.put(pb.CampaignRequest(ack=pb.CampaignAck(epoch=resp.lost.epoch)))
        elif kind == "queued" and resp.queued.nonce == 0:
            self.say(f"queued position={resp.queued.position}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("addr")
    parser.add_argument("election")
    parser.add_argument("id")
    parser.add_argument("fence")
    parser.add_argument("--stop-reading-after", type=int, default=0)
    return Candidate(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
