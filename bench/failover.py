"""Benchmark 1, graceful failover: SIGTERM to the leader node ->
  (a) the successor's engine declares leadership ("I am a new leader" in its JSON log),
  (b) a WatchLeader stream on a third node receives the new leader,
side by side with the ZooKeeper floor and kazoo's `Election` recipe, measured in the same run.

Three `electd serve` processes; after each trial the stopped leader is started again (it joins
at the tail), so every trial sees the same shape: leader, successor, third node.
"""

from __future__ import annotations

import signal
import uuid

from bench import nodes, zkbase
from bench.context import Context
from bench.progress import Progress
from bench.report import Target
from bench.ring import Ring

NAME = "failover"


def run(ctx: Context) -> None:
    trials = ctx.opts.n(40, 3)
    hosts = ctx.zk().connect_string
    res = ctx.results
    size = "3 nodes"

    with Progress("failover: ZooKeeper floor", trials) as p:
        floor = zkbase.floor(hosts, f"/bench/floor-{uuid.uuid4().hex[:8]}", trials, p.step)
    res.add(
        "failover.zk_floor",
        bench=NAME,
        metric="ZK floor: delete -> other session's watch",
        system="kazoo raw",
        size="2 sessions",
        samples=floor,
    )
    with Progress("failover: kazoo Election", trials) as p:
        recipe = zkbase.kazoo_election(
            hosts, f"/bench/kazoo-election-{uuid.uuid4().hex[:8]}", trials, p.step
        )
    res.add(
        "failover.kazoo_election",
        bench=NAME,
        metric="kazoo Election: session closed -> next runs",
        system="kazoo Election",
        size="3 contenders",
        samples=recipe,
        baseline="failover.zk_floor",
    )

    succ, third, deleted = electd_graceful(ctx, trials)
    res.add(
        "failover.electd_sigterm_deleted",
        bench=NAME,
        metric="SIGTERM -> leader logged its znode deleted",
        system="electd",
        size=size,
        samples=deleted,
        baseline="failover.zk_floor",
    )
    res.add(
        "failover.electd_successor",
        bench=NAME,
        metric="(a) SIGTERM -> successor declares leadership",
        system="electd",
        size=size,
        samples=succ,
        baseline="failover.zk_floor",
        target=Target("p50 <= 1.5x ZK floor", factor=1.5, ref="failover.zk_floor"),
    )
    res.add(
        "failover.electd_vs_kazoo",
        bench=NAME,
        metric="(a) vs kazoo Election",
        system="electd",
        size=size,
        samples=succ,
        baseline="failover.kazoo_election",
        target=Target("p50 <= kazoo Election", ref="failover.kazoo_election"),
        keep_samples=False,
    )
    res.add(
        "failover.electd_watch_third",
        bench=NAME,
        metric="(b) SIGTERM -> WatchLeader on a 3rd node",
        system="electd",
        size=size,
        samples=third,
        baseline="failover.zk_floor",
        target=Target("p50 <= 2.5x ZK floor", factor=2.5, ref="failover.zk_floor"),
    )


def electd_graceful(
    ctx: Context, trials: int, warmup: int = 2
) -> tuple[list[float], list[float], list[float]]:
    ring = Ring(ctx, f"/bench/failover-{uuid.uuid4().hex[:8]}")
    succ: list[float] = []
    third: list[float] = []
    deleted: list[float] = []
    with Progress("failover: electd SIGTERM", trials) as p:
        for f in ring.failovers(
            trials,
            lambda leader: leader.signal(signal.SIGTERM),
            lambda: 0.1,
            warmup=warmup,
            watch=15,
            check_order=True,
        ):
            assert f.arrival is not None
            gone = nodes.log_time(f.leader, "left the election", f.t0)
            succ.append(f.ms(f.declared))
            third.append(f.ms(f.arrival.first_ns / 1e9))
            if gone is not None:
                deleted.append(f.ms(gone))
            p.step(f"last {succ[-1]:.1f}/{third[-1]:.1f} ms")
    ring.stop()
    return succ, third, deleted
