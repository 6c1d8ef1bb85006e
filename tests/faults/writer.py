"""The fault suite's leader workload, run by `electd serve --leader-command "exec python THIS"`.

electd starts it when its node becomes leader, with ELECTD_EPOCH, ELECTD_NODE_ID and
ELECTD_ADDRESS, and sends it SIGTERM the moment the node stops leading. Until then it loops:
ask its own node (GetLeader on ELECTD_ADDRESS, 100 ms deadline) whether it still leads with
ELECTD_EPOCH, and only if so write (node, epoch, seq, time of that answer) to the fenced
resource at ELECTD_FAULTS_FENCE. It never writes on a failed or negative check and says goodbye
on SIGTERM. electd's supervisor ends it with its term (also when the node process dies, and it
cannot outlive the supervisor: electd/supervisor/command.py).

A standalone script: it imports only grpc and electd's generated stubs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time

import grpc

from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc

CHECK_DEADLINE = 0.1


def main() -> int:
    node = os.environ["ELECTD_NODE_ID"]
    epoch = int(os.environ["ELECTD_EPOCH"])
    address = os.environ["ELECTD_ADDRESS"]
    host, _, port = os.environ["ELECTD_FAULTS_FENCE"].rpartition(":")
    period = float(os.environ.get("ELECTD_FAULTS_PERIOD", "0.02"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    fence = socket.create_connection((host, int(port)), timeout=5)
    f = fence.makefile("rwb")

    def call(msg: dict[str, object]) -> dict[str, object]:
        f.write(json.dumps(msg).encode() + b"\n")
        f.flush()
        reply: dict[str, object] = json.loads(f.readline())
        return reply

    call({"op": "hello", "node": node, "epoch": epoch, "pid": os.getpid()})
    stub = pb_grpc.ElectionServiceStub(grpc.insecure_channel(address))
    seq = 0
    reason = "sigterm"
    while not stop.is_set():
        asked = time.monotonic()
        try:
            leader = stub.GetLeader(pb.GetLeaderRequest(), timeout=CHECK_DEADLINE).leader
        except grpc.RpcError:
            stop.wait(period)
            continue
        checked = time.monotonic()
        if leader.node.id == node and leader.epoch == epoch and not stop.is_set():
            seq += 1
            call(
                {
                    "op": "write",
                    "node": node,
                    "epoch": epoch,
                    "seq": seq,
                    "asked": asked,
                    "checked": checked,
                }
            )
        stop.wait(period)
    call({"op": "bye", "node": node, "epoch": epoch, "reason": reason})
    return 0


if __name__ == "__main__":
    code = 0
    try:
        code = main()
    except (OSError, ValueError):  # the fence went away: the run is over
        code = 0
    sys.stdout.flush()
    os._exit(code)  # no interpreter teardown: grpc's threads can hang it
