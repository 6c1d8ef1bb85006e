"""Benchmark 6, the peer: etcd's v3 election API on the same machine, measured by the same
harness as electd and reported in the same tables:

  * resign -> an Observe stream sees the new leader (and -> the next campaigner's Campaign
    returns), against electd's graceful failover;
  * Observe fan-out at the same stream counts as electd's WatchLeader fan-out, and etcd's RSS
    per open stream;
  * the Leader call under ghz at the same concurrencies as GetLeader.
"""

from __future__ import annotations

import base64
import time
import uuid

from bench import fanout, ghz, procs, unary
from bench.context import ROOT, Context
from bench.etcdpeer import Election, EtcdServer
from bench.progress import Progress
from bench.report import Target
from bench.watch import Watchers, measure_changes
from electd.devcluster.cluster import wait_until

NAME = "etcd"
PROTO = ROOT / "bench" / "proto" / "etcd_election.proto"


def run(ctx: Context) -> None:
    server = EtcdServer(ctx)
    resign_observe(ctx, server)
    observe_fanout(ctx, server)
    leader_load(ctx, server)


def resign_observe(ctx: Context, server: EtcdServer) -> None:
    trials = ctx.opts.n(40, 3)
    campaign, observed = handover(ctx, server, trials, "etcd resign -> observe")
    res = ctx.results
    res.add(
        "failover.etcd_campaign",
        bench="failover",
        metric="etcd: Resign -> next Campaign returns",
        system="etcd election",
        size="3 campaigners",
        samples=campaign,
        baseline="failover.zk_floor",
    )
    res.add(
        "failover.etcd_observe",
        bench="failover",
        metric="etcd: Resign -> Observe stream has it",
        system="etcd election",
        size="3 campaigners",
        samples=observed,
        baseline="failover.zk_floor",
    )
    electd = res.rows.get("failover.electd_watch_third")
    if electd is not None:
        res.add(
            "failover.electd_vs_etcd",
            bench="failover",
            metric="(b) electd WatchLeader vs etcd Observe",
            system="electd",
            size="3 nodes",
            samples=electd.samples,
            baseline="failover.etcd_observe",
            target=Target("p50 < etcd p50", ref="failover.etcd_observe"),
            keep_samples=False,
        )


def handover(
    ctx: Context, server: EtcdServer, trials: int, label: str, warmup: int = 3
) -> tuple[list[float], list[float]]:
    """etcd's leader handover on a fresh election of 3 campaigners, `trials` times (after
    `warmup`): the leader resigns -> (ms) the next campaigner's Campaign returns, and -> an
    Observe stream (the Go stream client) has the new leader. A fresh campaigner joins at the
    back after each trial, so there are always 3. Returns (campaign, observed)."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    election = Election(server, name)
    ctx.stack.callback(election.close)
    election.add(3)
    observed: list[float] = []
    campaign: list[float] = []
    with (
        Watchers(server.address, kind="etcd", name=name, log=ctx.workdir / "watchtool.log") as w,
        Progress(label, trials) as p,
    ):
        for i in range(trials + warmup):
            w.mark()
            time.sleep(0.1)
            t0, successor = election.change()
            arrival = w.wait(10)
            wait_until(
                lambda s=successor: s.elected_at > 0, 10, "successor's Campaign", interval=0.01
            )
            if not arrival.complete:
                raise RuntimeError(f"the Observe stream did not see the new leader: {arrival}")
            if i >= warmup:
                observed.append((arrival.first_ns / 1e9 - t0) * 1000)
                campaign.append((successor.elected_at - t0) * 1000)
                p.step(f"last {observed[-1]:.2f} ms")
            election.add(1)
    election.close()
    return campaign, observed


def observe_fanout(ctx: Context, server: EtcdServer) -> None:
    """etcd fan-out at each stream count, two ways: raw Watch streams on the election prefix
    (every size; a watcher sees the old leader's key deleted: etcd's fastest path and the
    baseline for electd), and election Observe streams (only up to OBSERVE_MAX: etcd 3.4.23's
    server-side Observe stalled here beyond ~32-40 concurrent observers and wedged the election)."""
    for n in ctx.opts.fanout_sizes:
        one_fanout(ctx, server, n, "etcd-watch", "watch")
    for n in sorted({min(n, OBSERVE_MAX) for n in ctx.opts.fanout_sizes}):
        one_fanout(ctx, server, n, "etcd", "observe")


OBSERVE_MAX = 16


def one_fanout(ctx: Context, server: EtcdServer, n: int, kind: str, tag: str) -> None:
    trials = ctx.opts.n(20, 2)
    warmup = 2
    name = f"fanout-{uuid.uuid4().hex[:8]}"
    election = Election(server, name)
    election.add(trials + warmup + 1)
    time.sleep(0.5)
    rss0 = procs.rss_kib(server.proc.pid)
    with Watchers(
        server.address,
        kind=kind,
        name=name,
        streams=n,
        conns=fanout.conns_for(n),
        log=ctx.workdir / "watchtool.log",
    ) as w:
        time.sleep(1.0)
        rss1 = procs.rss_kib(server.proc.pid)
        got = measure_changes(
            w, trials, warmup, f"etcd fanout {n} ({kind})", lambda: election.change()[0]
        )
        open_ms = w.open_ms
    election.close()
    per_stream = (rss1 - rss0) / n
    fanout.add_rows(ctx, "etcd", n, got, [], per_stream, rss0, open_ms, tag)


def leader_load(ctx: Context, server: EtcdServer) -> None:
    name = f"load-{uuid.uuid4().hex[:8]}"
    election = Election(server, name)
    election.add(1)
    data = '{"name":"' + base64.b64encode(name.encode()).decode() + '"}'
    call = "v3electionpb.Election.Leader"
    secs = ctx.opts.ghz_seconds
    ghz.run(server.address, call, PROTO, [PROTO.parent], 4, min(1.0, secs), data=data)
    loads = []
    for c in ctx.opts.concurrencies:
        time.sleep(0.5)
        load = ghz.run(
            server.address, call, PROTO, [PROTO.parent], c, secs, data=data, connections=4
        )
        loads.append(load)
        unary.add_rows(ctx, "etcd", "Leader", load)
    unary.add_best(ctx, "etcd", "Leader", loads)
    election.close()
