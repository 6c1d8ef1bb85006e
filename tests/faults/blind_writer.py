"""A careless leader command for the supervisor's scenarios: it writes to the fenced resource
with its ELECTD_EPOCH every 20 ms and never asks whether its node still leads, so only the
supervisor can keep its term from overlapping the next one. The resource's record of when each
write arrived is what the scenarios judge.

  BLIND_FENCE=host:port   the fenced resource (tests/faults/fence.py)
  BLIND_IGNORE_TERM=1     ignore SIGTERM (as many daemons do): only SIGKILL ends it
  BLIND_GRANDCHILD=1      also fork a grandchild that leaves the process group (setsid) and
                          writes too, as "<node>/grandchild"

A standalone script: the standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time


def write_forever(node: str, epoch: int, host: str, port: int) -> None:
    fence = socket.create_connection((host, port), timeout=5)
    f = fence.makefile("rwb")
    seq = 0
    while True:
        now = time.monotonic()
        msg = {
            "op": "write",
            "node": node,
            "epoch": epoch,
            "seq": seq,
            "asked": now,
            "checked": now,
        }
        f.write(json.dumps(msg).encode() + b"\n")
        f.flush()
        f.readline()
        seq += 1
        time.sleep(0.02)


def main() -> int:
    node = os.environ["ELECTD_NODE_ID"]
    epoch = int(os.environ["ELECTD_EPOCH"])
    host, _, port = os.environ["BLIND_FENCE"].rpartition(":")
    if os.environ.get("BLIND_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("BLIND_GRANDCHILD") == "1" and os.fork() == 0:
        os.setsid()  # out of the command's process group and session
        write_forever(f"{node}/grandchild", epoch, host, int(port))
    write_forever(node, epoch, host, int(port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
