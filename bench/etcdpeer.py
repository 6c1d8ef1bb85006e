"""etcd, the peer: a single-member etcd server (Debian's etcd-server) started for the run, and
a small client of its v3 election API (Campaign blocks until elected, Resign, Leader) over
Python stubs generated at run time from bench/proto (a wire-compatible subset of etcd's API).

Fairness: ZooKeeper runs with forceSync=no; etcd 3.4 cannot turn fsync off, so its data
directory is put on tmpfs (/dev/shm) where fsync is free.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from bench import procs
from bench.context import ROOT, Context, tool
from electd.devcluster.cluster import wait_until
from electd.devcluster.zookeeper import free_port

PROTO_DIR = ROOT / "bench" / "proto"
GEN_DIR = ROOT / "bench" / ".cache" / "etcdpb"


class EtcdMissing(RuntimeError):
    pass


def stubs() -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """(election_pb2, election_pb2_grpc, lease_pb2, lease_pb2_grpc), generated if needed."""
    stamp = GEN_DIR / "stamp"
    sources = sorted(PROTO_DIR.glob("etcd_*.proto"))
    want = "".join(p.read_text() for p in sources)
    if not stamp.is_file() or stamp.read_text() != want:
        from grpc_tools import protoc  # type: ignore[import-untyped]

        GEN_DIR.mkdir(parents=True, exist_ok=True)
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={GEN_DIR}",
            f"--grpc_python_out={GEN_DIR}",
            *[str(p) for p in sources],
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed on bench/proto")
        stamp.write_text(want)
    if str(GEN_DIR) not in sys.path:
        sys.path.insert(0, str(GEN_DIR))
    return (
        importlib.import_module("etcd_election_pb2"),
        importlib.import_module("etcd_election_pb2_grpc"),
        importlib.import_module("etcd_lease_pb2"),
        importlib.import_module("etcd_lease_pb2_grpc"),
    )


class EtcdServer:
    def __init__(self, ctx: Context) -> None:
        exe = tool("etcd")
        if exe is None:
            raise EtcdMissing("etcd is not installed: run bench/install.sh (Debian's etcd-server)")
        base = Path("/dev/shm") if Path("/dev/shm").is_dir() else ctx.workdir
        self.datadir = Path(tempfile.mkdtemp(prefix="electd-bench-etcd-", dir=base))
        self.port, peer = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = ctx.workdir / "etcd.log"
        self.proc = procs.spawn(
            [
                exe,
                "--name=bench",
                f"--data-dir={self.datadir}",
                f"--listen-client-urls=http://{self.address}",
                f"--advertise-client-urls=http://{self.address}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=bench=http://127.0.0.1:{peer}",
                "--log-level=error",
                "--logger=zap",
            ],
            log=self.log,
        )
        ctx.stack.callback(self.stop)
        self.election_pb, election_grpc, self.lease_pb, lease_grpc = stubs()
        self.channel = grpc.insecure_channel(self.address)
        self.election = election_grpc.ElectionStub(self.channel)
        self.lease = lease_grpc.LeaseStub(self.channel)
        wait_until(self._ready, 30, "etcd to serve", interval=0.05)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"etcd exited; see {self.log}")
        try:
            self.lease.LeaseGrant(self.lease_pb.LeaseGrantRequest(TTL=5), timeout=0.5)
        except grpc.RpcError:
            return False
        return True

    def grant(self, ttl: int = 3600) -> int:
        lease_id: int = self.lease.LeaseGrant(self.lease_pb.LeaseGrantRequest(TTL=ttl)).ID
        return lease_id

    def revoke(self, lease_id: int) -> None:
        with contextlib.suppress(grpc.RpcError):
            self.lease.LeaseRevoke(self.lease_pb.LeaseRevokeRequest(ID=lease_id), timeout=5)

    def stop(self) -> None:
        self.channel.close()
        procs.stop(self.proc)
        shutil.rmtree(self.datadir, ignore_errors=True)


class Campaigner:
    """One contender: its own lease and connection; `Campaign` blocks in a thread until it
    is elected, then records the time."""

    def __init__(self, server: EtcdServer, name: bytes, ident: str) -> None:
        self.server = server
        self.ident = ident
        self.name = name
        self.lease = server.grant()
        self.channel = grpc.insecure_channel(server.address)
        _, election_grpc, _, _ = stubs()
        self.stub = election_grpc.ElectionStub(self.channel)
        self.elected_at = 0.0
        self.key: Any = None
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._campaign, daemon=True)
        self.thread.start()

    def _campaign(self) -> None:
        pb = self.server.election_pb
        try:
            resp = self.stub.Campaign(
                pb.CampaignRequest(name=self.name, lease=self.lease, value=self.ident.encode())
            )
        except grpc.RpcError as exc:
            self.error = exc
            return
        self.elected_at = time.time()
        self.key = resp.leader

    def resign(self) -> float:
        """Resign the leadership; returns the unix time just before the call."""
        pb = self.server.election_pb
        t0 = time.time()
        self.stub.Resign(pb.ResignRequest(leader=self.key), timeout=10)
        return t0

    def close(self) -> None:
        self.server.revoke(self.lease)
        self.channel.close()


class Election:
    """A queue of campaigners on one election name: the first leads, the others wait."""

    def __init__(self, server: EtcdServer, name: str) -> None:
        self.server = server
        self.name = name.encode()
        self.queue: list[Campaigner] = []
        self._n = 0

    def add(self, n: int) -> None:
        for _ in range(n):
            self._n += 1
            self.queue.append(Campaigner(self.server, self.name, f"e{self._n}"))
            time.sleep(0.01)  # keep creation order = election order
        wait_until(
            lambda: self.queue[0].elected_at > 0, 10, "first campaigner elected", interval=0.01
        )

    def change(self) -> tuple[float, Campaigner]:
        """The leader resigns; returns (t0, the successor)."""
        leader = self.queue.pop(0)
        wait_until(
            lambda: leader.key is not None, 10, "the leader's Campaign to return", interval=0.01
        )
        t0 = leader.resign()
        leader.close()
        return t0, self.queue[0]

    def close(self) -> None:
        for c in self.queue:
            c.close()
        self.queue = []
