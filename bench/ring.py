"""The three-node failover loop shared by the failover, crash and failover_trace benchmarks.

A `Ring` is three `electd serve` processes on one election path, in election order: leader,
successor, third node. `Ring.failovers` stops the leader once per trial (a SIGTERM, a SIGKILL:
the caller's `fault`), waits until the successor logs "I am a new leader" and, if asked, until a
WatchLeader stream on the third node has the new leader; then it starts the stopped node again,
which joins at the tail, so every trial sees the same shape.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench import nodes
from bench.context import Context
from bench.watch import Arrival, Watchers
from electd.devcluster.cluster import NodeProcess, wait_until

NAMES = ("n1", "n2", "n3")


@dataclass(frozen=True)
class Failover:
    """One timed trial."""

    leader: NodeProcess  # the stopped leader (it has exited)
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
    ) -> None:
        """Start n1, n2, n3 on `path`, each serving before the next starts. `env(name, n)` gives
        the extra environment of node `name`'s n-th start (0 for the first)."""
        self.ctx, self.path, self.session_timeout, self._env = ctx, path, session_timeout, env
        self.nodes: deque[NodeProcess] = deque(self._start(name, 0) for name in NAMES)

    def _start(self, name: str, n: int) -> NodeProcess:
        env = self._env(name, n) if self._env is not None else None
        proc = nodes.start(self.ctx, name, self.path, session_timeout=self.session_timeout, env=env)
        nodes.wait_serving(proc)
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
        """`warmup` + `trials` failovers; yields the timed ones. Each sleeps `delay()`, then
        `fault(leader)`. With `watch` (a timeout, s) a stream on the third node must see a new
        leader; with `check_order` too, it must name the leader before and the successor
        after. The stopped node is started again and the ring rests `rest` s before the next
        trial; the trial's log lines can still be read when it is yielded."""
        for i in range(trials + warmup):
            leader, successor, observer = self.nodes[0], self.nodes[1], self.nodes[2]
            arrival = None
            if watch is None:
                time.sleep(delay())
                t0 = time.time()
                fault(leader)
            else:
                with Watchers(observer.address, log=self.ctx.workdir / "watchtool.log") as w:
                    before = w.mark()
                    if check_order and not before.startswith(f"{leader.node_id}@"):
                        raise RuntimeError(
                            f"expected {leader.node_id} to lead, stream says {before}"
                        )
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
            leader.wait(15)
            if i >= warmup:
                yield Failover(leader, successor, t0, declared, arrival)
            self.nodes.popleft()
            self.nodes.append(self._start(leader.node_id, i + 1))
            if rest:
                time.sleep(rest)

    def stop(self) -> None:
        for proc in self.nodes:
            proc.stop()
