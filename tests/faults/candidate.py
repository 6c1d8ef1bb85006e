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

Its belief, reported to the harness. Besides its writes, the candidate sends the fenced
resource ({"op": "claim"}, recorded as a "claim" event: history.py) the two ends of each
stretch of belief in one epoch, as exact claims on the history's clock (time.monotonic():
every process is on one machine, and CLOCK_MONOTONIC is one clock for all of them; history.py),
which the checkers read like a node's exact evidence:
  leading   it began to believe: [the time it sent the ping that `leading` answers, the time
            it received it], sent when a `leading` gives it a deadline still ahead while it
            did not believe (the first one of an epoch, or one after its deadline had lapsed);
  the end   one instant [t, t], sent once it is known, with what ended it as the source:
            deadline  its deadline passed without a later `leading`: t = the deadline, the
                      send time of the ping it answers + lease_ms, the very instant its writer
                      stops relying on;
            lost, resign, superseded
                      it stopped acting before its deadline (on `lost`, on SIGTERM, or on a
                      `leading` of another epoch without a `lost`, which the node never sends):
                      t = the moment it stopped, under the lock the writer checks before every
                      write, so no write follows, and the ack or the resign is sent only after.
                      Past the deadline, the deadline.
The end claim is the deadline itself, not deadline - MARGIN where its writes stop: MARGIN is
this candidate's own caution, and C1 grants it the lease until the deadline, so a node that let
a successor lead inside the margin is caught (strict), although these writes would not
overlap. And it is never later than what the candidate still relied on: a `lost` or a resign
ends the belief at once, so its term is not stretched to a deadline it gave up (not false).
A stream that ends (node gone, connection broken) ends nothing: the candidate still acts on its
lease until its deadline, which the node must honour (C3, C4: a leader's entry stays until its
last lease ran out), so the claim is then the deadline. A candidate SIGKILLed while it believes
sends no end claim; its writes are its last evidence.
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
from typing import Any

import grpc

from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc

PING = 0.1
MARGIN = 0.1


class Candidate:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()  # the state below and the fence connection
        self.sent: dict[int, float] = {}  # nonce -> monotonic time at send
        self.epoch = 0
        self.deadline = 0.0  # monotonic
        self.believing = 0  # the epoch whose stretch of belief is open (its end not yet sent)
        self.announced = 0
        self.requests: queue.SimpleQueue[pb.CampaignRequest | None] = queue.SimpleQueue()
        self.stream_over = threading.Event()
        self.done = threading.Event()
        host, _, port = args.fence.rpartition(":")
        self.fence = socket.create_connection((host, int(port)), timeout=5).makefile("rwb")

    def say(self, line: str) -> None:
        print(line, flush=True)

    def send(self, msg: dict[str, Any]) -> None:
        """One request to the fenced resource and its answer; under self.lock."""
        self.fence.write(json.dumps(msg).encode() + b"\n")
        self.fence.flush()
        self.fence.readline()

    def claim(self, epoch: int, asked: float, answered: float, source: str) -> None:
        """Tell the harness that this candidate believed it led with `epoch` at some instant in
        [asked, answered]; under self.lock."""
        self.send(
            {
                "op": "claim",
                "node": self.args.id,
                "election": self.args.election,
                "epoch": epoch,
                "asked": asked,
                "answered": answered,
                "source": source,
            }
        )

    def end_belief(self, why: str) -> None:
        """The open stretch of belief ends now (`why`), or ended at the deadline if that has
        passed already; under self.lock."""
        if not self.believing:
            return
        if time.monotonic() >= self.deadline:
            self.claim(self.believing, self.deadline, self.deadline, "deadline")
        else:
            now = time.monotonic()
            self.claim(self.believing, now, now, why)
        self.believing = 0

    def outgoing(self):  # type: ignore[no-untyped-def]
        while True:
            req = self.requests.get()
            if req is None:
                return
            yield req

    def pinger(self) -> None:
        nonce = 0
        while not self.stream_over.is_set():
            nonce += 1
            with self.lock:
                self.sent[nonce] = time.monotonic()
            self.requests.put(pb.CampaignRequest(ping=pb.CampaignPing(nonce=nonce)))
            self.stream_over.wait(PING)

    def writer(self) -> None:
        seq = 0
        while not self.done.is_set():
            # Check and write under the lock: a `lost` is acknowledged only after the write in
            # flight has been answered (the candidate stops acting, then acks).
            with self.lock:
                if self.epoch and time.monotonic() < self.deadline - MARGIN:
                    now = time.monotonic()
                    self.send(
                        {
                            "op": "write",
                            "node": self.args.id,
                            "election": self.args.election,
                            "epoch": self.epoch,
                            "seq": seq,
                            "asked": now,
                            "checked": now,
                        }
                    )
                    seq += 1
            time.sleep(0.02)

    def deadlines(self) -> None:
        """Send the end claim of a stretch of belief whose deadline passed."""
        while not self.done.is_set():
            with self.lock:
                if self.believing and time.monotonic() >= self.deadline:
                    self.end_belief("deadline")
                left = self.deadline - time.monotonic() if self.believing else PING
            self.done.wait(min(max(left, 0.001), PING))

    def resign(self) -> None:
        """Stop acting first, then resign (the node may hand over at once)."""
        with self.lock:
            self.end_belief("resign")
            self.epoch, self.deadline = 0, 0.0
        self.requests.put(pb.CampaignRequest(resign=pb.CampaignResign()))

    def on_sigterm(self, *_: object) -> None:
        # Not in the handler itself: the main thread it interrupts may hold self.lock.
        threading.Thread(target=self.resign, daemon=True).start()

    def run(self) -> int:
        channel = grpc.insecure_channel(
            self.args.addr,
            options=[("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 1000)],
        )
        stub = pb_grpc.ElectionServiceStub(channel)
        start = pb.CampaignStart(election=self.args.election, candidate_id=self.args.id)
        self.requests.put(pb.CampaignRequest(start=start))
        calls = stub.Campaign(self.outgoing())
        signal.signal(signal.SIGTERM, self.on_sigterm)
        threading.Thread(target=self.pinger, daemon=True).start()
        threading.Thread(target=self.writer, daemon=True).start()
        threading.Thread(target=self.deadlines, daemon=True).start()
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
        self.stream_over.set()
        self.requests.put(None)
        self.say(f"ended {code}")
        # No more leases, but the one it holds still counts: act on it until it runs out.
        while True:
            with self.lock:
                left = self.deadline - time.monotonic() if self.believing else 0.0
            if left <= 0:
                break
            time.sleep(left)
        with self.lock:
            self.end_belief("ended")  # the deadline by now
            self.epoch = 0
        self.done.set()
        return 0

    def handle(self, resp: pb.CampaignResponse) -> None:
        kind = resp.WhichOneof("response")
        if kind == "leading":
            lead = resp.leading
            with self.lock:
                received = time.monotonic()
                sent = self.sent.get(lead.nonce)
                if lead.epoch != self.epoch:
                    self.end_belief("superseded")
                    self.epoch, self.deadline = lead.epoch, 0.0
                if sent is not None and lead.lease_ms > 0:
                    until = sent + lead.lease_ms / 1000
                    if until > self.deadline:
                        self.deadline = until
                if not self.believing and time.monotonic() < self.deadline:
                    self.believing = lead.epoch
                    self.claim(lead.epoch, received if sent is None else sent, received, "leading")
                first = self.deadline > 0 and self.announced != lead.epoch
                if first:
                    self.announced = lead.epoch
            if first:
                self.say(f"leading epoch={lead.epoch} lease_ms={lead.lease_ms}")
        elif kind == "lost":
            with self.lock:
                self.end_belief("lost")
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
