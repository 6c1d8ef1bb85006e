"""Benchmark 7, resources: an idle node's RSS and CPU, and the time from process start to
joined-and-serving (health SERVING), against the same figures for ZooKeeper and etcd where
they are running in this run. `electd serve` is two processes: the supervisor (the pid started)
and the node process under it; each is measured on its own (the supervisor's cost during crash
failover is in benchmark 2)."""

from __future__ import annotations

import time
import uuid

from bench import nodes, procs
from bench.context import Context
from bench.progress import Progress

NAME = "resources"


def run(ctx: Context) -> None:
    trials = ctx.opts.n(10, 2)
    idle_secs = 2.0 if ctx.opts.quick else 10.0
    path = f"/bench/resources-{uuid.uuid4().hex[:8]}"
    ctx.zk()
    startup: list[float] = []
    rss: list[float] = []
    cpu: list[float] = []
    sup_rss: list[float] = []
    sup_cpu: list[float] = []
    with Progress("resources: start, idle", trials) as p:
        for i in range(trials):
            t0 = time.time()
            proc = nodes.start(ctx, f"r{i}", path, session_timeout=4.0)
            ready = nodes.wait_serving(proc, interval=0.005)
            startup.append((ready - t0) * 1000)
            time.sleep(1.0)
            node = nodes.node_process(proc)
            pids = (node, proc.pid)
            c0, w0 = [procs.cpu_seconds(pid) for pid in pids], time.monotonic()
            time.sleep(idle_secs if i == 0 else min(idle_secs, 2.0))
            c1, w1 = [procs.cpu_seconds(pid) for pid in pids], time.monotonic()
            cpu.append((c1[0] - c0[0]) / (w1 - w0) * 100)
            sup_cpu.append((c1[1] - c0[1]) / (w1 - w0) * 100)
            rss.append(procs.rss_kib(node) / 1024)
            sup_rss.append(procs.rss_kib(proc.pid) / 1024)
            proc.stop()
            p.step(f"start {startup[-1]:.0f} ms")
    res = ctx.results
    res.add(
        "resources.startup",
        bench=NAME,
        metric="process start -> joined and serving",
        system="electd",
        size="1 node",
        samples=startup,
    )
    for key, what, system, samples in (
        ("idle_rss", "RSS", "electd node", rss),
        ("supervisor_rss", "RSS", "electd supervisor", sup_rss),
        ("idle_cpu", "CPU", "electd node", cpu),
        ("supervisor_cpu", "CPU", "electd supervisor", sup_cpu),
    ):
        res.add(
            f"resources.{key}",
            bench=NAME,
            metric="idle RSS" if what == "RSS" else "idle CPU (% of one core)",
            system=system,
            size="1 node",
            unit="MiB" if what == "RSS" else "%",
            samples=samples,
            extra={"session_timeout_s": 4.0},
        )
    zk = ctx.zk().servers[0].proc
    if zk is not None:
        res.add(
            "resources.zk_rss",
            bench=NAME,
            metric="ZooKeeper RSS (after the run so far)",
            system="ZooKeeper",
            size="1 server",
            unit="MiB",
            stats={"n": 1, "p50": procs.rss_kib(zk.pid) / 1024, "p99": float("nan")},
        )
