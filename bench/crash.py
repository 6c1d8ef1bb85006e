"""Benchmark 2, crash failover, for each session timeout, all in one loop of rounds so that the
machine's load drifts over every series alike:

  (a) SIGKILL of the leader's node process alone: its supervisor (`electd serve`) reaps it,
      closes the dead node's ZooKeeper session itself and starts the node again -> the
      successor declares leadership, and -> a WatchLeader stream on a third node has it.
      (a) is the supervisor's first crash (it imports kazoo then: in production a crash is
      rare, so this is the usual case); (a') a later crash of the same supervisor;
  (b) SIGKILL of supervisor and node together (the process group): the session timeout;
  (c) ZooKeeper's own session expiry: a raw kazoo session in a child process is SIGKILLed ->
      another session's watch on its ephemeral znode fires;
  (d) etcd (bench/etcdcrash.py): kill -9 of the campaigner holding leadership on a 2 s TTL
      lease -> the next campaigner's Campaign returns.

A round runs (a), (b), a graceful SIGTERM of the leader (not measured, benchmark 1 does) and
(a') on the ring in that order, which always brings the right supervisor to the front (a fresh
one for (a), one that has handled a crash for (a'); the trials are classified by the actual
history all the same), with (c) and (d) at random places in between. After a node-process kill
the ring waits until the supervisor has restarted the node and it serves again.

(b) and (c) are bounded by the session timeout (plus up to one tick of ZooKeeper's expiry
bucketing); (a) should not be: it is reported against the session timeout and against etcd.
The supervisor's log says where (a)'s milliseconds go: its "killed by signal" line (it saw the
death), and "closed the dead node's ZooKeeper session ... in N ms" (the resume + close).
"""

from __future__ import annotations

import random
import re
import signal
import uuid
from dataclasses import dataclass, field

from bench import etcdcrash, procs, zkbase
from bench.context import Context
from bench.etcdpeer import EtcdMissing, EtcdServer
from bench.progress import Progress
from bench.report import Target
from bench.ring import Failover, Ring
from electd.devcluster.cluster import NodeProcess

NAME = "crash"
ETCD_TTL = 2
NODE_TARGET = Target(
    "p50 <= 50 ms, p99 <= 200 ms", "p50", factor=50.0, also=Target("", "p99", factor=200.0)
)
_CLOSED = re.compile(r"closed the dead node's ZooKeeper session \S+ in (\d+) ms")
# One round's faults on the ring, in this order (see the module docstring).
RING_STEPS = ("first", "group", "rotate", "later")


@dataclass
class Series:
    """The samples of one session timeout, ms unless named otherwise."""

    zk: list[float] = field(default_factory=list)
    group: list[float] = field(default_factory=list)
    group_watch: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    first_watch: list[float] = field(default_factory=list)
    later: list[float] = field(default_factory=list)
    later_watch: list[float] = field(default_factory=list)
    death: list[float] = field(default_factory=list)  # kill -> supervisor logs the death
    prep_first: list[float] = field(default_factory=list)  # death logged -> close begins
    prep_later: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)  # the supervisor's "in N ms"


@dataclass
class Usage:
    """The supervisor's cost in (a): CPU from the kill to the node serving again, RSS after."""

    cpu_first: list[float] = field(default_factory=list)  # ms of CPU
    cpu_later: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)  # MiB, the supervisor after a crash
    node_rss: list[float] = field(default_factory=list)  # MiB, the new leader's node process


def run(ctx: Context) -> None:
    trials = ctx.opts.n(20, 2)
    hosts = ctx.zk().connect_string
    try:
        etcd: EtcdServer | None = EtcdServer(ctx)
    except EtcdMissing as exc:
        ctx.results.note(f"crash: no etcd row ({exc})")
        etcd = None
    etcd_ms: list[float] = []
    usage = Usage()
    for timeout in ctx.opts.crash_timeouts:
        add_rows(ctx, timeout, rounds(ctx, hosts, timeout, trials, etcd, etcd_ms, usage))
    if etcd is not None:
        etcd.stop()
        ctx.results.add(
            "crash.etcd_kill",
            bench=NAME,
            metric="(d) etcd: kill -9 leader -> next Campaign returns",
            system="etcd election",
            size=f"TTL {ETCD_TTL} s",
            samples=etcd_ms,
        )
    add_usage(ctx, usage)


def rounds(
    ctx: Context,
    hosts: str,
    timeout: float,
    trials: int,
    etcd: EtcdServer | None,
    etcd_ms: list[float],
    usage: Usage,
) -> Series:
    s = Series()
    ring = Ring(ctx, f"/bench/crash-{uuid.uuid4().hex[:8]}", session_timeout=timeout)
    crashed: set[int] = set()  # supervisors (pids) that have handled a node crash
    order_rng = random.Random(f"crash-{timeout}")
    watch = timeout * 3 + 10

    def phase() -> float:
        """A random phase against the heartbeats (and keep-alives), as a real crash has."""
        return 0.2 + random.uniform(0, timeout / 3)

    def node_kill() -> None:
        sup = ring.nodes[0]
        first = sup.pid not in crashed
        cpu0 = procs.cpu_seconds(sup.pid)
        f = ring.trial(_kill_node, phase, watch=watch, node_only=True)
        cpu = (procs.cpu_seconds(sup.pid) - cpu0) * 1000
        crashed.add(sup.pid)
        usage.rss.append(procs.rss_kib(sup.pid) / 1024)
        new_node = f.successor.node_pid()
        if new_node is not None:
            usage.node_rss.append(procs.rss_kib(new_node) / 1024)
        (usage.cpu_first if first else usage.cpu_later).append(cpu)
        (s.first if first else s.later).append(f.ms(f.declared))
        (s.first_watch if first else s.later_watch).append(_arrived(f))
        _supervisor_steps(f, s, first)

    with Progress(f"crash {timeout:g}s: node / group kill, ZK expiry, etcd", trials) as p:
        for _ in range(trials):
            order = list(RING_STEPS)
            for peer in ["zk"] + (["etcd"] if etcd is not None else []):
                order.insert(order_rng.randint(0, len(order)), peer)
            for kind in order:
                if kind == "zk":
                    path = f"/bench/crash-floor-{uuid.uuid4().hex[:8]}"
                    s.zk.append(zkbase.crash_floor(hosts, path, timeout, ctx.python()) * 1000)
                elif kind == "etcd":
                    assert etcd is not None
                    etcd_ms.append(etcdcrash.kill_trial(etcd, ETCD_TTL, ctx.python()))
                elif kind == "group":
                    f = ring.trial(NodeProcess.kill, phase, watch=watch)
                    s.group.append(f.ms(f.declared))
                    s.group_watch.append(_arrived(f))
                elif kind == "rotate":
                    ring.trial(_sigterm, lambda: 0.0)
                else:
                    node_kill()
            last = (s.first or s.later)[-1]
            p.step(f"node kill {last:.0f} ms, group kill {s.group[-1]:.0f} ms")
    ring.stop()
    return s


def _kill_node(leader: NodeProcess) -> None:
    if leader.signal_node(signal.SIGKILL) is None:
        raise RuntimeError(f"{leader.node_id} has no node process to kill")


def _sigterm(leader: NodeProcess) -> None:
    leader.signal(signal.SIGTERM)


def _arrived(f: Failover) -> float:
    assert f.arrival is not None
    return f.ms(f.arrival.first_ns / 1e9)


def _supervisor_steps(f: Failover, s: Series, first: bool) -> None:
    """Where (a)'s milliseconds went, from the supervisor's log lines of this trial."""
    death = closed = None
    close_ms = 0.0
    for rec in f.leader.log_records():
        ts, msg = float(rec.get("ts", 0.0)), str(rec.get("msg", ""))
        if ts < f.t0 or rec.get("logger") != "electd.supervisor":
            continue
        if death is None and "killed by signal" in msg:
            death = ts
        m = _CLOSED.search(msg)
        if m and closed is None:
            closed, close_ms = ts, float(m.group(1))
    if death is None or closed is None:
        return
    s.death.append(f.ms(death))
    prep = max(0.0, f.ms(closed) - close_ms - f.ms(death))
    (s.prep_first if first else s.prep_later).append(prep)
    s.close.append(close_ms)


def add_rows(ctx: Context, timeout: float, s: Series) -> None:
    size = f"timeout {timeout:g} s"
    tag = f"{timeout:g}s"
    limit = timeout * 1000
    etcd = "crash.etcd_kill"
    zk = f"crash.zk_{tag}"

    def add(
        key: str,
        metric: str,
        samples: list[float],
        system: str = "electd",
        unit: str = "ms",
        baseline: str | None = None,
        target: Target | None = None,
    ) -> None:
        ctx.results.add(
            f"crash.{key}_{tag}",
            bench=NAME,
            metric=metric,
            system=system,
            size=size,
            unit=unit,
            samples=samples,
            baseline=baseline,
            target=target,
        )

    ratio = [v / limit for v in s.first]
    add(
        "node",
        "(a) SIGKILL node process -> successor declares",
        s.first,
        baseline=etcd,
        target=NODE_TARGET,
    )
    add(
        "node_watch",
        "(a) SIGKILL node process -> WatchLeader, 3rd node",
        s.first_watch,
        baseline=etcd,
        target=NODE_TARGET,
    )
    add("node_ratio", "(a) successor declares / session timeout", ratio, unit="x")
    add(
        "node_later",
        "(a') later crash, kazoo loaded -> successor declares",
        s.later,
        baseline=etcd,
        target=NODE_TARGET,
    )
    add(
        "node_later_watch",
        "(a') later crash -> WatchLeader, 3rd node",
        s.later_watch,
        baseline=etcd,
        target=NODE_TARGET,
    )
    add("node_death", "(a, a') kill -> supervisor logs the death", s.death)
    add("node_prep", "(a) death logged -> closeSession begins", s.prep_first)
    add("node_later_prep", "(a') death logged -> closeSession begins", s.prep_later)
    add("node_close", "(a, a') closeSession (supervisor's 'in N ms')", s.close)
    add("zk", "(c) ZK: SIGKILL session owner -> watch fires", s.zk, system="kazoo raw")
    add(
        "electd",
        "(b) SIGKILL supervisor+node -> successor declares",
        s.group,
        baseline=zk,
        target=Target(f"p99 <= 1.1x timeout ({1.1 * timeout:g} s)", "p99", factor=1.1 * limit),
    )
    add("electd_watch", "(b) SIGKILL supervisor+node -> WatchLeader", s.group_watch, baseline=zk)
    add(
        "electd_ratio",
        "(b) successor declares / session timeout",
        [v / limit for v in s.group],
        unit="x",
        target=Target("p99 <= 1.1", "p99", factor=1.1),
    )


def add_usage(ctx: Context, u: Usage) -> None:
    res = ctx.results
    for key, metric, samples in (
        ("supervisor_cpu", "supervisor CPU per node crash, (a) first", u.cpu_first),
        ("supervisor_cpu_later", "supervisor CPU per node crash, (a') later", u.cpu_later),
    ):
        res.add(
            f"crash.{key}",
            bench=NAME,
            metric=metric,
            system="electd supervisor",
            size=f"{len(samples)} crashes",
            samples=samples,
            extra={"what": "utime+stime from the SIGKILL until the restarted node serves"},
        )
    for key, metric, system, samples in (
        ("supervisor_rss", "supervisor RSS after handling a crash", "electd supervisor", u.rss),
        ("node_rss", "new leader's node process RSS (same moment)", "electd node", u.node_rss),
    ):
        res.add(
            f"crash.{key}",
            bench=NAME,
            metric=metric,
            system=system,
            size=f"{len(u.rss)} crashes",
            unit="MiB",
            samples=samples,
        )
