"""etcd's crash failover, the peer of benchmark 2: a campaigner in a child process holds the
leadership of an election on a lease with a short TTL that it keeps alive (every TTL/3, as
etcd's clientv3 does); it is SIGKILLed (kill -9) and the next campaigner's `Campaign`, blocked
in this process, returns once etcd has expired the lease (TTL, checked every 500 ms).

    python -m bench.etcdcrash ADDRESS NAME TTL     # the child: campaign, print "elected", wait
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc

from bench import procs
from bench.context import ROOT
from bench.etcdpeer import Campaigner, EtcdServer, stubs
from electd.devcluster.cluster import wait_until


def kill_trial(server: EtcdServer, ttl: int, python: str) -> float:
    """One trial: ms from the kill -9 of the leading campaigner to the next one's Campaign
    returning. The kill comes at a random phase against the keep-alives."""
    name = f"crash-{uuid.uuid4().hex[:8]}"
    child = procs.spawn(
        [python, "-m", "bench.etcdcrash", server.address, name, str(ttl)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    successor: Campaigner | None = None
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != b"elected":
            raise RuntimeError("the etcd crash child was not elected")
        successor = Campaigner(server, name.encode(), "next")
        time.sleep(0.2 + random.uniform(0, ttl / 3))
        t0 = time.time()
        procs.kill(child)
        wait_until(
            lambda s=successor: s.elected_at > 0 or s.error is not None,
            ttl * 3 + 5,
            "the next campaigner after the kill -9",
            interval=0.005,
        )
        if successor.error is not None:
            raise RuntimeError(f"the next Campaign failed: {successor.error}")
        return (successor.elected_at - t0) * 1000
    finally:
        procs.kill(child)
        if child.stdout is not None:
            child.stdout.close()
        if successor is not None:
            successor.close()


def child(address: str, name: str, ttl: int) -> None:
    election_pb, election_grpc, lease_pb, lease_grpc = stubs()
    channel = grpc.insecure_channel(address)
    lease = lease_grpc.LeaseStub(channel)
    lease_id = lease.LeaseGrant(lease_pb.LeaseGrantRequest(TTL=ttl), timeout=10).ID

    def beats() -> Iterator[Any]:
        while True:
            yield lease_pb.LeaseKeepAliveRequest(ID=lease_id)
            time.sleep(ttl / 3)

    answers = lease.LeaseKeepAlive(beats())
    threading.Thread(target=lambda: all(True for _ in answers), daemon=True).start()
    election = election_grpc.ElectionStub(channel)
    election.Campaign(
        election_pb.CampaignRequest(name=name.encode(), lease=lease_id, value=b"crash-leader")
    )
    print("elected", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
