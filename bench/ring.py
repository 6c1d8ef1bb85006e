"""The three-node failover loop shared by the failover, crash and failover_trace benchmarks.

A `Ring` is three `electd serve` processes on one election path, in election order: leader,
successor, third node. `Ring.failovers` stops the leader once per trial (a SIGTERM, a SIGKILL:
the caller's `fault`), waits until the successor logs "I am a new leader" and, if asked, until a
WatchLeader stream on the third node has the new leader; then it starts the stopped node again,
which joins at the tail, so every trial sees the same shape. When the fault killed only the node
process under `electd serve`'s supervisor (which lives on, ends the dead node's session and
starts the node again), the ring waits for that restarted node to serve instead of starting one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench import nodes
from bench.context import Context
from bench.mtls import Material
from bench.watch import Arrival, Watchers
from electd.devcluster.cluster import NodeProcess, wait_until

NAMES = ("n1", "n2", "n3")


@dataclass(frozen=True)
class Failover:
    """One timed trial."""

    leader: NodeProcess  # the stopped leader (exited, or its supervisor restarted its node)
    successor: NodeProcess
    t0: float  # unix time just before the fault
    declared: float  # unix time of the successor's "I am a new leader" log line
    arrival: Arrival | None  # the third node's stream; None when the trial was not watched

    def ms(self, unix: float) -> float:
        """Milliseconds from the fault to `unix`."""
        return (unix - self.t0) * 1000


class Ring:
    def __init__(
        self,
        ctx: Context,
        path: str,
        session_timeout: float = 4.0,
        env: Callable[[str, int], dict[str, str]] | None = None,
        tls: Material | None = None,
        names: tuple[str, ...] = NAMES,
    ) -> None:
        """Start `names` (n1, n2, n3) on `path`, each serving before the next starts.
        `env(name, n)` gives the extra environment of node `name`'s n-th start (0 for the
        first). With `tls` the nodes serve mutual TLS, and the probes and the third node's
        stream use the client certificate."""
        self.ctx, self.path, self.session_timeout, self._env = ctx, path, session_timeout, env
        self.tls = tls
        self.nodes: deque[NodeProcess] = deque(self._start(name, 0) for name in names)
        self._starts = 0

    def _start(self, name: str, n: int) -> NodeProcess:
        env = self._env(name, n) if self._env is not None else None
        proc = nodes.start(
            self.ctx, name, self.path, session_timeout=self.session_timeout, env=env, tls=self.tls
        )
        nodes.wait_serving(proc, tls=self.tls)
        return proc

    def failovers(
        self,
        trials: int,
        fault: Callable[[NodeProcess], None],
        delay: Callable[[], float],
        warmup: int = 0,
        watch: float | None = None,
        check_order: bool = False,
        rest: float = 0.2,
    ) -> Iterator[Failover]:
        """`warmup` + `trials` failovers (`trial`); yields the timed ones, whose log lines can
        still be read when they are yielded. The ring rests `rest` s after each."""
        for i in range(trials + warmup):
            f = self.trial(fault, delay, watch, check_order)
            if i >= warmup:
                yield f
            if rest:
                time.sleep(rest)

    def trial(
        self,
        fault: Callable[[NodeProcess], None],
        delay: Callable[[], float],
        watch: float | None = None,
        check_order: bool = False,
        node_only: bool = False,
    ) -> Failover:
        """One failover: sleep `delay()`, then `fault(leader)`. With `watch` (a timeout, s) a
        stream on the third node must see a new leader; with `check_order` too, it must name the
        leader before and the successor after. Returns once the ring has three serving members
        again, the stopped one at the tail: started anew once `electd serve` exited, or, with
        `node_only` (the fault killed the node process alone), restarted by its supervisor."""
        leader, successor, observer = self.nodes[0], self.nodes[1], self.nodes[2]
        old_node = leader.node_pid()
        arrival = None
        if watch is None:
            time.sleep(delay())
            t0 = time.time()
            fault(leader)
        else:
            with Watchers(
                observer.address, log=self.ctx.workdir / "watchtool.log", tls=self.tls
            ) as w:
                before = w.mark()
                if check_order and not before.startswith(f"{leader.node_id}@"):
                    raise RuntimeError(f"expected {leader.node_id} to lead, stream says {before}")
                time.sleep(delay())
                t0 = time.time()
                fault(leader)
                arrival = w.wait(watch)
            if not arrival.complete or (
                check_order and not arrival.leader.startswith(f"{successor.node_id}@")
            ):
                what = "the successor" if check_order else "a new leader"
                raise RuntimeError(f"the third node's stream did not see {what}: {arrival}")
        declared: float = wait_until(
            lambda s=successor, t=t0: nodes.leader_since(s, t),
            15,
            "successor's log line",
            interval=0.01,
        )
        self.nodes.popleft()
        if node_only:
            assert old_node is not None, f"{leader.node_id} had no node process"
            self.nodes.append(self._rejoined(leader, old_node))
        else:
            leader.wait(15)
            self._starts += 1
            self.nodes.append(self._start(leader.node_id, self._starts))
        return Failover(leader, successor, t0, declared, arrival)

    def _rejoined(self, proc: NodeProcess, old_node: int, timeout: float = 60.0) -> NodeProcess:
        """Wait until the supervisor of `proc` runs a new node process and it serves (joined,
        session live); the restart backoff of repeated crashes is part of the wait."""
        wait_until(
            lambda: proc.node_pid() not in (None, old_node) or not proc.alive(),
            timeout,
            f"the supervisor of {proc.node_id} to restart its node",
            interval=0.01,
        )
        nodes.wait_serving(proc, timeout, tls=self.tls)
        return proc

    def stop(self) -> None:
        for proc in self.nodes:
            proc.stop()
