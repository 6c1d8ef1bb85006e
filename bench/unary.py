"""Benchmark 5, unary throughput and latency: GetLeader and ListNodes on one electd node (of a
3-node cluster) under ghz, at several concurrencies. etcd's Leader call is measured the same
way by bench/etcd.py, in the same table."""

from __future__ import annotations

import math
import time
import uuid

from bench import ghz, nodes
from bench.context import ROOT, Context
from bench.report import Target

NAME = "unary"
PROTO = ROOT / "proto" / "electd" / "v1" / "election_service.proto"


def run(ctx: Context) -> None:
    path = f"/bench/unary-{uuid.uuid4().hex[:8]}"
    cluster = [nodes.start(ctx, f"u{i}", path) for i in (1, 2, 3)]
    for proc in cluster:
        nodes.wait_serving(proc)
    target = cluster[1]  # a follower
    secs = ctx.opts.ghz_seconds
    for method in ("GetLeader", "ListNodes"):
        call = f"electd.v1.ElectionService.{method}"
        ghz.run(target.address, call, PROTO, [ROOT / "proto"], 4, min(1.0, secs))  # warm-up
        loads = []
        for c in ctx.opts.concurrencies:
            time.sleep(0.5)
            load = ghz.run(target.address, call, PROTO, [ROOT / "proto"], c, secs, connections=4)
            loads.append(load)
            add_rows(ctx, "electd", method, load)
        if method == "GetLeader":
            add_best(ctx, "electd", method, loads)
    for proc in cluster:
        proc.stop()


def add_rows(ctx: Context, system: str, method: str, load: ghz.Load) -> None:
    res = ctx.results
    size = f"c={load.concurrency}"
    key = f"unary.{system}_{method}_c{load.concurrency}"
    errors = load.count - load.ok
    res.add(
        key,
        bench=NAME,
        metric=f"{method} latency",
        system=system,
        size=size,
        stats={"n": load.count, "p50": load.p50_ms, "p99": load.p99_ms},
        baseline=f"unary.etcd_Leader_c{load.concurrency}" if method == "GetLeader" else None,
        extra={"rps": load.rps, "errors": errors, "error_kinds": load.errors},
    )
    res.add(
        f"{key}_rps",
        bench=NAME,
        metric=f"{method} throughput (requests/s)",
        system=system,
        size=size,
        unit="rps",
        stats={"n": load.count, "p50": load.rps, "p99": math.nan},
        baseline=f"unary.etcd_Leader_c{load.concurrency}_rps" if method == "GetLeader" else None,
        extra={"errors": errors},
    )


def add_best(ctx: Context, system: str, method: str, loads: list[ghz.Load]) -> None:
    """The highest throughput reached with p99 under 10 ms (the issue's target for GetLeader)."""
    good = [x for x in loads if x.p99_ms < 10.0 and x.ok >= 0.99 * x.count]
    best = max(good, key=lambda x: x.rps) if good else None
    ctx.results.add(
        f"unary.{system}_{method}_best",
        bench=NAME,
        metric=f"{method}: best requests/s with p99 < 10 ms",
        system=system,
        size=f"c={best.concurrency}" if best else "-",
        unit="rps",
        stats={"n": best.count if best else 0, "p50": best.rps if best else 0.0, "p99": math.nan},
        target=Target(">= 10,000 requests/s", op=">=", factor=10_000.0)
        if system == "electd"
        else None,
        extra={"p99_ms": best.p99_ms if best else None},
    )
