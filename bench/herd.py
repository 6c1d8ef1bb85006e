"""Benchmark 3, herd scaling: 10, 100 and 1,000 contenders, each with its own ZooKeeper
session, spread over a few worker processes (bench/herd_worker.py). For electd and for the naive
"everyone watches the children" baseline:

  * graceful failover: the leader leaves (deletes its znode) -> the successor declares
    leadership; p50/p99, plus the time until every contender knows the new leader;
  * ZooKeeper watch notifications delivered, and election re-evaluations run, per leader
    change, per non-leader leave and per join (summed over all contenders).

After every leave a new contender joins at the tail, so the size stays constant.
"""

from __future__ import annotations

import json
import random
import select
import subprocess
import time
import uuid
from itertools import count
from typing import Any

from bench import procs
from bench.context import ROOT, Context
from bench.progress import Progress
from bench.report import Target
from bench.stats import Summary
from electd.devcluster.cluster import wait_until

NAME = "herd"
SESSION_TIMEOUT = 30.0


class Herd:
    """N contenders of one kind across `workers` processes."""

    def __init__(self, ctx: Context, kind: str, workers: int) -> None:
        self.kind = kind
        self.path = f"/bench/herd-{kind}-{uuid.uuid4().hex[:8]}"
        hosts = ctx.zk().connect_string
        self.procs: list[subprocess.Popen[str]] = []
        log = (ctx.workdir / f"herd-{kind}.log").open("a")
        for _ in range(workers):
            self.procs.append(
                subprocess.Popen(
                    [
                        ctx.python(),
                        "-m",
                        "bench.herd_worker",
                        kind,
                        hosts,
                        self.path,
                        str(SESSION_TIMEOUT),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    cwd=ROOT,
                    start_new_session=True,
                )
            )
        log.close()
        ctx.stack.callback(self.close)
        self.where: dict[str, int] = {}  # contender id -> worker index
        self.seq: dict[str, int] = {}
        self._ids = count(1)
        self._next_worker = 0

    def _send(self, i: int, cmd: str, arg: Any = None) -> None:
        stdin = self.procs[i].stdin
        assert stdin is not None
        stdin.write(json.dumps([cmd, arg]) + "\n")
        stdin.flush()

    def _recv(self, i: int, what: str, timeout: float = 600) -> Any:
        stdout = self.procs[i].stdout
        assert stdout is not None
        if not select.select([stdout], [], [], timeout)[0]:
            raise TimeoutError(f"herd worker {i} did not answer {what!r}")
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"herd worker {i} exited (see herd-{self.kind}.log)")
        return json.loads(line)

    def _ask(self, i: int, cmd: str, arg: Any = None) -> Any:
        self._send(i, cmd, arg)
        return self._recv(i, cmd)

    def _all(self, cmd: str, arg: Any = None) -> list[Any]:
        for i in range(len(self.procs)):
            self._send(i, cmd, arg)
        return [self._recv(i, cmd) for i in range(len(self.procs))]

    def add(self, n: int) -> None:
        """n new contenders, spread over the workers (registered in parallel)."""
        batches: list[list[str]] = [[] for _ in self.procs]
        for _ in range(n):
            ident = f"c{next(self._ids)}"
            batches[self._next_worker].append(ident)
            self.where[ident] = self._next_worker
            self._next_worker = (self._next_worker + 1) % len(self.procs)
        for i, batch in enumerate(batches):
            self._send(i, "add", batch)
        for i in range(len(self.procs)):
            self.seq.update(self._recv(i, "add"))

    def arm(self) -> None:
        self._all("arm")

    def order(self) -> list[str]:
        return sorted(self.seq, key=lambda i: self.seq[i])

    def leave(self, ident: str) -> float:
        t0: float = self._ask(self.where.pop(ident), "leave", ident)
        del self.seq[ident]
        return t0

    def status(self) -> dict[str, tuple[int, str, float, float]]:
        out: dict[str, tuple[int, str, float, float]] = {}
        for part in self._all("status"):
            out.update(part)
        return out

    def learned(self, leader: str) -> dict[str, tuple[int, str, float, float]] | None:
        """The status, once every contender knows `leader` leads; None before."""
        st = self.status()
        return st if all(v[1] == leader for v in st.values()) else None

    def counts(self) -> tuple[int, int]:
        parts = self._all("counts")
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    def settle(self, quiet: float = 0.3, limit: float = 120) -> tuple[int, int]:
        """Wait until no notification or re-evaluation happened for `quiet` seconds."""
        last = self.counts()
        still_since = time.monotonic()
        deadline = still_since + limit
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.counts()
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                break
        return last

    def close(self) -> None:
        if not self.procs:
            return
        try:
            self._all("quiet")
            self._all("quit")
        except (OSError, RuntimeError, TimeoutError, ValueError):
            pass
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                procs.kill(p)
            for f in (p.stdin, p.stdout):
                if f is not None:
                    f.close()
        self.procs = []


def workers_for(n: int) -> int:
    return 2 if n <= 20 else 4


def measure(ctx: Context, kind: str, n: int, trials: int) -> dict[str, Any]:
    herd = Herd(ctx, kind, workers_for(n))
    try:
        herd.add(n)
        herd.arm()
        herd.settle()
        failover: list[float] = []
        everyone: list[float] = []
        per_change: list[tuple[int, int]] = []
        per_leave: list[tuple[int, int]] = []
        per_join: list[tuple[int, int]] = []
        with Progress(f"herd {kind} {n}", 2 * trials) as p:
            for _ in range(trials):
                order = herd.order()
                leader, successor = order[0], order[1]
                before = herd.settle()
                t0 = herd.leave(leader)
                st = wait_until(
                    lambda s=successor: herd.learned(s),
                    120,
                    f"every contender to learn of {successor}",
                )
                failover.append((st[successor][3] - t0) * 1000)
                everyone.append((max(v[2] for v in st.values()) - t0) * 1000)
                after = herd.settle()
                per_change.append((after[0] - before[0], after[1] - before[1]))
                herd.add(1)
                joined = herd.settle()
                per_join.append((joined[0] - after[0], joined[1] - after[1]))
                p.step(f"last {failover[-1]:.1f} ms")
            for _ in range(trials):
                order = herd.order()
                victim = random.choice(order[1:-1]) if len(order) > 2 else order[-1]
                before = herd.settle()
                herd.leave(victim)
                time.sleep(0.05)
                after = herd.settle()
                per_leave.append((after[0] - before[0], after[1] - before[1]))
                herd.add(1)
                herd.settle()
                p.step()
        return {
            "failover": failover,
            "everyone": everyone,
            "per_change": per_change,
            "per_leave": per_leave,
            "per_join": per_join,
        }
    finally:
        herd.close()


def run(ctx: Context) -> None:
    res = ctx.results
    for kind, sizes in (("electd", ctx.opts.herd_sizes), ("naive", ctx.opts.naive_sizes)):
        base_key: str | None = None
        for n in sizes:
            trials = ctx.opts.n(20 if n < 1000 else (10 if kind == "electd" else 5), 2)
            m = measure(ctx, kind, n, trials)
            size = f"{n} contenders"
            key = f"herd.{kind}_{n}"
            target = None
            if kind == "electd" and base_key is not None and n == max(sizes):
                target = Target(f"p50 <= 1.5x p50 at {min(sizes)}", factor=1.5, ref=base_key)
            res.add(
                key,
                bench=NAME,
                metric="leader leaves -> successor declares",
                system=kind,
                size=size,
                samples=m["failover"],
                baseline=base_key,
                target=target,
            )
            res.add(
                f"{key}_everyone",
                bench=NAME,
                metric="leader leaves -> every contender knows",
                system=kind,
                size=size,
                samples=m["everyone"],
            )
            for what, label in (
                ("per_change", "notifications per leader change"),
                ("per_leave", "notifications per non-leader leave"),
                ("per_join", "notifications per join"),
            ):
                res.add(
                    f"{key}_{what}_notif",
                    bench=NAME,
                    metric=label,
                    system=kind,
                    size=size,
                    unit="count",
                    samples=[float(a) for a, _ in m[what]],
                )
            reeval = [float(b) for _, b in m["per_leave"]]
            res.add(
                f"{key}_per_leave_reeval",
                bench=NAME,
                metric="re-evaluations per non-leader leave",
                system=kind,
                size=size,
                unit="count",
                samples=reeval,
                target=Target("exactly 1 (max <= 1)", "max", factor=1.0)
                if kind == "electd"
                else None,
                extra={"min": Summary.of(reeval).min},
            )
            res.add(
                f"{key}_per_change_reeval",
                bench=NAME,
                metric="re-evaluations per leader change",
                system=kind,
                size=size,
                unit="count",
                samples=[float(b) for _, b in m["per_change"]],
            )
            if base_key is None:
                base_key = key
