"""Benchmark 8, TLS's cost: three measurements of electd, each made twice in one run, over
plaintext and over mutual TLS (`electd serve --tls-cert --tls-key --tls-client-ca`, clients
presenting a certificate of the same throwaway CA, bench/mtls.py), the two alternated so that
both see the same machine:

  (a) graceful failover, as benchmark 1: SIGTERM of the leader of a 3-node ring -> the successor
      declares, and -> a WatchLeader stream on the third node (over mTLS in the TLS ring) has
      it. Two rings run side by side (plaintext, mTLS); their trials alternate.
  (b) GetLeader under ghz, as benchmark 5: one 3-node cluster whose two followers differ only in
      the transport (one plaintext, one mTLS); at each concurrency ghz runs against one then
      the other, in alternating order, `tls_rounds` times (medians over the rounds).
  (c) `tls_streams` WatchLeader streams on one node, as benchmark 4 (puppet leader changes): a
      fresh node per session, sessions alternating plaintext/mTLS `tls_rounds` times; time to
      open all streams, node RSS per stream, change -> first / median / last stream.

Every mTLS row has its plaintext twin of this run as baseline: the ratios are TLS/plaintext.
Node CPU (utime+stime of the node process) is recorded beside (b) and (c), to show where the
cost goes.
"""

from __future__ import annotations

import math
import signal
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

from bench import ghz, mtls, nodes, procs
from bench.context import ROOT, Context
from bench.fanout import Puppets, conns_for
from bench.mtls import Material
from bench.progress import Progress
from bench.ring import Ring
from bench.watch import Spread, Watchers, measure_changes

NAME = "tls"
PROTO = ROOT / "proto" / "electd" / "v1" / "election_service.proto"
MODES = ("plain", "mtls")
SYSTEM = {"plain": "electd plaintext", "mtls": "electd mTLS"}


def order(i: int) -> tuple[str, ...]:
    """Plaintext first on even rounds, mTLS first on odd ones (ABBA: drift cancels out)."""
    return MODES if i % 2 == 0 else MODES[::-1]


def run(ctx: Context) -> None:
    material = mtls.create(ctx.workdir / "tls")
    failover(ctx, material)
    unary(ctx, material)
    fanout(ctx, material)


def add(
    ctx: Context,
    key: str,
    mode: str,
    metric: str,
    size: str,
    samples: Sequence[float] | None = None,
    stats: dict[str, float | int] | None = None,
    unit: str = "ms",
    extra: dict[str, Any] | None = None,
) -> None:
    """A row of `mode` (`key` has a `{mode}` field); the mTLS row's baseline is the plaintext
    row of the same key, so its ratios are TLS/plaintext."""
    ctx.results.add(
        f"tls.{key.format(mode=mode)}",
        bench=NAME,
        metric=metric,
        system=SYSTEM[mode],
        size=size,
        unit=unit,
        samples=samples,
        stats=stats,
        baseline=f"tls.{key.format(mode='plain')}" if mode == "mtls" else None,
        extra=extra,
    )


# ----- (a) graceful failover -----------------------------------------------------------------


def failover(ctx: Context, material: Material, warmup: int = 2) -> None:
    trials = ctx.opts.n(30, 3)
    tag = uuid.uuid4().hex[:8]
    rings = {
        "plain": Ring(ctx, f"/bench/tls-failover-plain-{tag}", names=("p1", "p2", "p3")),
        "mtls": Ring(
            ctx, f"/bench/tls-failover-mtls-{tag}", tls=material, names=("t1", "t2", "t3")
        ),
    }
    succ: dict[str, list[float]] = {m: [] for m in MODES}
    third: dict[str, list[float]] = {m: [] for m in MODES}
    with Progress("tls: graceful failover, plaintext / mTLS", 2 * trials) as p:
        for i in range(warmup + trials):
            for mode in order(i):
                f = rings[mode].trial(
                    lambda leader: leader.signal(signal.SIGTERM),
                    lambda: 0.1,
                    watch=15,
                    check_order=True,
                )
                time.sleep(0.2)
                if i < warmup:
                    continue
                assert f.arrival is not None
                succ[mode].append(f.ms(f.declared))
                third[mode].append(f.ms(f.arrival.first_ns / 1e9))
                p.step(f"{mode} {succ[mode][-1]:.1f}/{third[mode][-1]:.1f} ms")
    for ring in rings.values():
        ring.stop()
    for mode in MODES:
        add(
            ctx,
            "failover_successor_{mode}",
            mode,
            "(a) SIGTERM -> successor declares",
            "3 nodes",
            succ[mode],
        )
        add(
            ctx,
            "failover_watch_{mode}",
            mode,
            "(b) SIGTERM -> WatchLeader on a 3rd node",
            "3 nodes",
            third[mode],
        )


# ----- (b) GetLeader under ghz -----------------------------------------------------------------


def unary(ctx: Context, material: Material) -> None:
    path = f"/bench/tls-unary-{uuid.uuid4().hex[:8]}"
    tls = {"plain": None, "mtls": material}
    leader = nodes.start(ctx, "tu1", path)
    nodes.wait_serving(leader)
    target = {}
    for name, mode in (("tu2", "plain"), ("tu3", "mtls")):  # two followers of tu1
        target[mode] = nodes.start(ctx, name, path, tls=tls[mode])
        nodes.wait_serving(target[mode], tls=tls[mode])
    call = "electd.v1.ElectionService.GetLeader"
    secs, rounds = ctx.opts.ghz_seconds, max(1, ctx.opts.tls_rounds)
    imports = [ROOT / "proto"]
    for mode in MODES:  # warm-up
        ghz.run(target[mode].address, call, PROTO, imports, 4, min(1.0, secs), tls=tls[mode])
    pids = {m: nodes.node_process(target[m]) for m in MODES}
    concurrencies = ctx.opts.concurrencies
    with Progress(
        "tls: GetLeader under ghz, plaintext / mTLS", 2 * rounds * len(concurrencies)
    ) as p:
        for c in concurrencies:
            loads: dict[str, list[ghz.Load]] = {m: [] for m in MODES}
            cpu: dict[str, list[float]] = {m: [] for m in MODES}
            for r in range(rounds):
                for mode in order(r):
                    time.sleep(0.5)
                    cpu0 = procs.cpu_seconds(pids[mode])
                    load = ghz.run(
                        target[mode].address,
                        call,
                        PROTO,
                        imports,
                        c,
                        secs,
                        connections=4,
                        tls=tls[mode],
                    )
                    used = procs.cpu_seconds(pids[mode]) - cpu0
                    loads[mode].append(load)
                    cpu[mode].append(used * 1000 / max(1, load.ok))
                    p.step(f"c={c} {mode} {load.rps:,.0f}/s")
            for mode in MODES:
                add_unary(ctx, mode, c, loads[mode], cpu[mode])
    for proc in (target["mtls"], target["plain"], leader):
        proc.stop()


def add_unary(ctx: Context, mode: str, c: int, loads: list[ghz.Load], cpu_ms: list[float]) -> None:
    """Medians over the rounds of ghz's own p50, p99 and requests/s (each round's in `extra`)."""

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else math.nan

    count = sum(x.count for x in loads)
    errors = {k: v for x in loads for k, v in x.errors.items()}
    rounds = [{"rps": x.rps, "p50": x.p50_ms, "p99": x.p99_ms, "n": x.count} for x in loads]
    size = f"c={c}"
    add(
        ctx,
        f"unary_{{mode}}_c{c}",
        mode,
        "GetLeader latency (ghz, median of rounds)",
        size,
        stats={
            "n": count,
            "p50": med([x.p50_ms for x in loads]),
            "p99": med([x.p99_ms for x in loads]),
        },
        extra={"rounds": rounds, "errors": count - sum(x.ok for x in loads), "error_kinds": errors},
    )
    add(
        ctx,
        f"unary_{{mode}}_c{c}_rps",
        mode,
        "GetLeader throughput (requests/s)",
        size,
        unit="rps",
        stats={"n": count, "p50": med([x.rps for x in loads]), "p99": math.nan},
    )
    add(
        ctx,
        f"unary_{{mode}}_c{c}_cpu",
        mode,
        "node CPU per GetLeader call",
        size,
        stats={"n": len(cpu_ms), "p50": med(cpu_ms), "p99": max(cpu_ms, default=math.nan)},
        extra={"rounds": cpu_ms},
    )


# ----- (c) fan-out ----------------------------------------------------------------------------


def fanout(ctx: Context, material: Material, warmup: int = 1) -> None:
    n, rounds = ctx.opts.tls_streams, max(1, ctx.opts.tls_rounds)
    changes = ctx.opts.n(6, 2)
    path = f"/bench/tls-fanout-{uuid.uuid4().hex[:8]}"
    puppets = Puppets(ctx.zk().connect_string, path)
    ctx.stack.callback(puppets.close)
    puppets.add(rounds * len(MODES) * (changes + warmup) + 1)
    got = {m: Spread() for m in MODES}
    open_ms: dict[str, list[float]] = {m: [] for m in MODES}
    rss: dict[str, list[float]] = {m: [] for m in MODES}
    cpu_open: dict[str, list[float]] = {m: [] for m in MODES}
    cpu_change: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(rounds):
        for mode in order(r):
            tls = material if mode == "mtls" else None
            node = nodes.start(ctx, f"tf-{mode}-{r}", path, session_timeout=10.0, tls=tls)
            nodes.wait_serving(node, tls=tls)
            time.sleep(0.5)
            pid = nodes.node_process(node)  # the node process, not its supervisor
            rss0, cpu0 = procs.rss_kib(pid), procs.cpu_seconds(pid)
            with Watchers(
                node.address,
                streams=n,
                conns=conns_for(n),
                log=ctx.workdir / "watchtool.log",
                tls=tls,
            ) as w:
                time.sleep(1.0)
                rss1, cpu1 = procs.rss_kib(pid), procs.cpu_seconds(pid)
                spread = measure_changes(
                    w,
                    changes,
                    warmup,
                    f"tls: {n:,} streams, {SYSTEM[mode]} ({r + 1}/{rounds})",
                    puppets.pop,
                )
                cpu2 = procs.cpu_seconds(pid)
            node.stop()
            for mine, theirs in (
                (got[mode].first, spread.first),
                (got[mode].median, spread.median),
                (got[mode].last, spread.last),
            ):
                mine.extend(theirs)
            open_ms[mode].append(w.open_ms)
            rss[mode].append((rss1 - rss0) / n)
            cpu_open[mode].append((cpu1 - cpu0) * 1000)
            cpu_change[mode].append((cpu2 - cpu1) * 1000 / (changes + warmup))
    size = f"{n:,} streams"
    for mode in MODES:
        key = f"fanout_{{mode}}_{n}"
        add(ctx, key + "_open", mode, "open all streams (500 at a time)", size, open_ms[mode])
        add(ctx, key, mode, "change -> LAST stream has it", size, got[mode].last)
        add(ctx, key + "_first", mode, "change -> first stream has it", size, got[mode].first)
        add(ctx, key + "_median", mode, "change -> median stream has it", size, got[mode].median)
        add(ctx, key + "_rss", mode, "node RSS per open stream", size, rss[mode], unit="KiB")
        add(ctx, key + "_cpu_open", mode, "node CPU to open the streams", size, cpu_open[mode])
        add(ctx, key + "_cpu_change", mode, "node CPU per leader change", size, cpu_change[mode])
