"""Benchmark 4, fan-out: 100, 1,000 and 10,000 concurrent WatchLeader streams on one electd node;
per leader change, the time until the last stream has the new leader (also the first and the
median stream), and the node's RSS per open stream.

The leader changes are made by "puppet" members: ephemeral-sequential znodes with valid electd
node records, created ahead of the node under test by one raw kazoo session in this process.
Deleting the lowest one is a leader change for the node (exactly what a leader's graceful exit
looks like to ZooKeeper), and it costs nothing else on this machine while the node works.

Baselines in the same run: the same streams on a bare grpc.aio server (bench/grpcfloor.py: the
cost of Python's gRPC stack alone) and etcd (bench/etcd.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

from bench import nodes, procs, zkbase
from bench.context import ROOT, Context
from bench.report import Target
from bench.watch import Spread, Watchers, measure_changes
from electd.devcluster.cluster import NodeProcess
from electd.engine import NodeRecord
from electd.zk import paths

NAME = "fanout"


def conns_for(streams: int) -> int:
    """TCP connections to spread the streams over (100 streams per connection)."""
    return max(1, -(-streams // 100))


class Puppets:
    """Electd-looking members held by one kazoo session; `pop()` deletes the lowest."""

    def __init__(self, hosts: str, path: str) -> None:
        self.kz = zkbase.client(hosts, timeout=30)
        self.path = path
        self.kz.ensure_path(path)
        self.names: list[str] = []

    def add(self, n: int) -> None:
        for _ in range(n):
            token = uuid.uuid4().hex
            data = NodeRecord(f"puppet-{len(self.names)}", "127.0.0.1:1").encode()
            created = self.kz.create(
                paths.create_prefix(self.path, token), data, ephemeral=True, sequence=True
            )
            self.names.append(created.rsplit("/", 1)[1])

    def pop(self) -> float:
        """Delete the lowest puppet (the leader); returns the unix time just before."""
        name = self.names.pop(0)
        t0 = time.time()
        self.kz.delete(paths.join(self.path, name))
        return t0

    def close(self) -> None:
        zkbase.close(self.kz)


def run(ctx: Context) -> None:
    trials = ctx.opts.n(20, 2)
    warmup = 2
    sizes = ctx.opts.fanout_sizes
    path = f"/bench/fanout-{uuid.uuid4().hex[:8]}"
    puppets = Puppets(ctx.zk().connect_string, path)
    ctx.stack.callback(puppets.close)
    puppets.add(len(sizes) * (trials + warmup) + 1)
    for n in sizes:
        grpc_floor(ctx, n, trials, warmup)
        node = nodes.start(ctx, f"fan{n}", path, session_timeout=10.0)
        nodes.wait_serving(node)
        time.sleep(0.5)
        node_pid = nodes.node_process(node)  # not the supervisor's (node.pid)
        rss0 = procs.rss_kib(node_pid)
        learned: list[float] = []

        def node_learned(
            t0: float, node: NodeProcess = node, learned: list[float] = learned
        ) -> None:
            seen = nodes.log_time(node, f"node={node.node_id} epoch=", t0)
            if seen is not None:
                learned.append((seen - t0) * 1000)

        with Watchers(
            node.address, streams=n, conns=conns_for(n), log=ctx.workdir / "watchtool.log"
        ) as w:
            time.sleep(1.0)
            rss1 = procs.rss_kib(node_pid)
            got = measure_changes(
                w, trials, warmup, f"fanout {n} streams", puppets.pop, node_learned
            )
        node.stop()
        per_stream = (rss1 - rss0) / n
        add_rows(ctx, "electd", n, got, learned, per_stream, rss0, w.open_ms)


def grpc_floor(ctx: Context, n: int, trials: int, warmup: int) -> None:
    """The same measurement on a bare grpc.aio server (bench/grpcfloor.py)."""
    proc = subprocess.Popen(
        [ctx.python(), "-m", "bench.grpcfloor"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    ctx.stack.callback(procs.stop, proc)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    time.sleep(0.5)
    rss0 = procs.rss_kib(proc.pid)

    def change() -> float:
        t0 = time.time()
        os.kill(proc.pid, signal.SIGUSR1)
        return t0

    with Watchers(
        f"127.0.0.1:{port}", streams=n, conns=conns_for(n), log=ctx.workdir / "watchtool.log"
    ) as w:
        time.sleep(1.0)
        rss1 = procs.rss_kib(proc.pid)
        got = measure_changes(w, trials, warmup, f"fanout {n} streams (grpc floor)", change)
        open_ms = w.open_ms
    procs.stop(proc)
    if proc.stdout is not None:
        proc.stdout.close()
    add_rows(ctx, "grpc.aio", n, got, [], (rss1 - rss0) / n, rss0, open_ms, "floor")


def add_rows(
    ctx: Context,
    system: str,
    n: int,
    got: Spread,
    learned: list[float],
    per_stream_kib: float,
    rss0_kib: int,
    open_ms: float,
    tag: str = "",
) -> None:
    """The fan-out rows of one system at one stream count (shared with the etcd benchmark).
    `tag` names a variant of the system in the keys and labels (etcd: "observe")."""
    res = ctx.results
    size = f"{n:,} streams"
    key = f"fanout.{system}{'_' + tag if tag else ''}_{n}"
    system = f"{system} {tag}".strip()
    peer = f"fanout.etcd_watch_{n}" if system == "electd" else None  # etcd's fastest path
    floor = f"fanout.grpc.aio_floor_{n}" if system == "electd" else None
    target = None
    if system == "electd" and n >= 10_000:
        target = Target("p99 <= 1 s", "p99", factor=1000.0)
    res.add(
        key,
        bench=NAME,
        metric="change -> LAST stream has it",
        system=system,
        size=size,
        samples=got.last,
        baseline=floor,
        target=target,
        extra={"open_ms": open_ms},
    )
    if system == "electd":
        res.add(
            f"{key}_vs_etcd",
            bench=NAME,
            metric="last stream, vs etcd Watch",
            system=system,
            size=size,
            samples=got.last,
            baseline=peer,
            target=Target("p50 <= 2x etcd", factor=2.0, ref=peer),
            keep_samples=False,
        )
    res.add(
        f"{key}_first",
        bench=NAME,
        metric="change -> first stream has it",
        system=system,
        size=size,
        samples=got.first,
    )
    res.add(
        f"{key}_median",
        bench=NAME,
        metric="change -> median stream has it",
        system=system,
        size=size,
        samples=got.median,
    )
    if learned:
        res.add(
            f"{key}_learned",
            bench=NAME,
            metric="change -> node logged the new leader",
            system=system,
            size=size,
            samples=learned,
        )
    res.add(
        f"{key}_rss",
        bench=NAME,
        metric="RSS per open stream",
        system=system,
        size=size,
        unit="KiB",
        stats={"n": 1, "p50": per_stream_kib, "p99": per_stream_kib},
        baseline=f"{floor}_rss" if floor else None,
        target=Target("< 10 KiB", factor=10.0) if system == "electd" and n >= 10_000 else None,
        extra={"rss_before_kib": rss0_kib},
    )
