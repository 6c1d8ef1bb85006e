"""Benchmark 2, crash failover: SIGKILL of the leader node -> the successor declares leadership
(and a WatchLeader stream on a third node sees it), for each session timeout. The baseline,
measured in the same run, is ZooKeeper itself: a raw kazoo session in a child process is
SIGKILLed and another session's watch on its ephemeral znode fires.

Crash failover is bounded by the session timeout (plus up to one tick of ZooKeeper's expiry
bucketing), not by code: the figure that matters is the ratio to the session timeout.
"""

from __future__ import annotations

import random
import uuid

from bench import zkbase
from bench.context import Context
from bench.progress import Progress
from bench.report import Target
from bench.ring import Ring
from electd.devcluster.cluster import NodeProcess

NAME = "crash"


def run(ctx: Context) -> None:
    trials = ctx.opts.n(20, 2)
    hosts = ctx.zk().connect_string
    for timeout in ctx.opts.crash_timeouts:
        size = f"timeout {timeout:g} s"
        tag = f"{timeout:g}s"
        floor: list[float] = []
        with Progress(f"crash {tag}: ZooKeeper session kill", trials) as p:
            for _ in range(trials):
                path = f"/bench/crash-floor-{uuid.uuid4().hex[:8]}"
                floor.append(zkbase.crash_floor(hosts, path, timeout, ctx.python()) * 1000)
                p.step()
        ctx.results.add(
            f"crash.zk_{tag}",
            bench=NAME,
            metric="ZK: SIGKILL session owner -> watch fires",
            system="kazoo raw",
            size=size,
            samples=floor,
        )
        succ, third = electd_crash(ctx, timeout, trials)
        limit = timeout * 1000
        ctx.results.add(
            f"crash.electd_{tag}",
            bench=NAME,
            metric="SIGKILL leader -> successor declares",
            system="electd",
            size=size,
            samples=succ,
            baseline=f"crash.zk_{tag}",
            target=Target(f"p99 <= 1.1x timeout ({1.1 * timeout:g} s)", "p99", factor=1.1 * limit),
            extra={
                "ratio_to_timeout_p50": _r(succ, limit, 50),
                "ratio_to_timeout_p99": _r(succ, limit, 99),
            },
        )
        ctx.results.add(
            f"crash.electd_watch_{tag}",
            bench=NAME,
            metric="SIGKILL leader -> WatchLeader on 3rd node",
            system="electd",
            size=size,
            samples=third,
            baseline=f"crash.zk_{tag}",
        )
        ctx.results.add(
            f"crash.electd_ratio_{tag}",
            bench=NAME,
            metric="successor declares / session timeout",
            system="electd",
            size=size,
            unit="x",
            samples=[s / limit for s in succ],
            target=Target("p99 <= 1.1", "p99", factor=1.1),
        )


def _r(samples: list[float], limit: float, pct: float) -> float:
    from bench.stats import percentile

    return percentile(samples, pct) / limit


def electd_crash(ctx: Context, timeout: float, trials: int) -> tuple[list[float], list[float]]:
    ring = Ring(ctx, f"/bench/crash-{uuid.uuid4().hex[:8]}", session_timeout=timeout)
    succ: list[float] = []
    third: list[float] = []
    with Progress(f"crash {timeout:g}s: electd SIGKILL", trials) as p:
        for f in ring.failovers(
            trials,
            NodeProcess.kill,
            # A random phase against the heartbeats, as a real crash would have.
            lambda: 0.2 + random.uniform(0, timeout / 3),
            watch=timeout * 3 + 10,
        ):
            assert f.arrival is not None
            succ.append(f.ms(f.declared))
            third.append(f.ms(f.arrival.first_ns / 1e9))
            p.step(f"last {succ[-1]:.0f} ms")
    ring.stop()
    return succ, third
