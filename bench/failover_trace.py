"""Where the graceful-failover time goes: SIGTERM to the leader of 3 nodes, step by step.

    .venv/bin/python -m bench.failover_trace [--trials 20]

Runs the failover shape of benchmark 1 (leader, successor, third node; the stopped leader is
restarted at the tail) with every node loading bench/tracehook (timestamps at asyncio's signal
dispatch, `ViewHub.retire`, `ElectionEngine.leave`, kazoo's socket write of the Delete) and
prints the median and p99 time of each step since the SIGTERM, with the ZooKeeper floor
measured in the same run. A diagnostic, not part of `python -m bench`: the hooks cost a little.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import uuid
from pathlib import Path

from bench import zkbase
from bench.context import Context, Options
from bench.progress import Progress
from bench.report import Results
from bench.ring import Ring
from bench.stats import Summary

HOOK = Path(__file__).resolve().parent / "tracehook"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover_trace", description=__doc__)
    parser.add_argument("--trials", type=int, default=20, help="timed trials (default 20)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="electd-trace-"))
    ctx = Context(Options(), Results(), workdir)
    steps: dict[str, list[float]] = {}
    try:
        hosts = ctx.zk().connect_string
        with Progress("ZooKeeper floor", args.trials) as p:
            floor = zkbase.floor(hosts, f"/bench/floor-{uuid.uuid4().hex[:8]}", args.trials, p.step)

        def env(name: str, n: int) -> dict[str, str]:
            hook_path = os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")]))
            trace = workdir / f"trace-{name}-{n}.txt"
            return {"PYTHONPATH": hook_path, "ELECTD_TRACE_FILE": str(trace)}

        ring = Ring(ctx, f"/bench/trace-{uuid.uuid4().hex[:8]}", env=env)
        with Progress("SIGTERM of the leader, traced", args.trials) as p:
            for f in ring.failovers(
                args.trials,
                lambda leader: leader.signal(signal.SIGTERM),
                lambda: 0.2,
                warmup=2,
                rest=0,
            ):
                seen: dict[str, float] = {}
                for line in Path(f.leader.env["ELECTD_TRACE_FILE"]).read_text().splitlines():
                    ts, step = line.split(" ", 1)
                    if float(ts) >= f.t0:
                        seen.setdefault(step, f.ms(float(ts)))
                seen["successor logs 'I am a new leader'"] = f.ms(f.declared)
                for step, ms in seen.items():
                    steps.setdefault(step, []).append(ms)
                p.step()
    finally:
        ctx.close()
    print(
        f"\nZooKeeper floor (delete -> other session's watch): {Summary.of(floor).p50:.2f} ms p50"
    )
    print(f"{'step (time since SIGTERM)':<48} {'p50':>8} {'p99':>8} {'n':>4}")
    for step, samples in sorted(steps.items(), key=lambda kv: Summary.of(kv[1]).p50):
        s = Summary.of(samples)
        print(f"{step:<48} {s.p50:>6.2f}ms {s.p99:>6.2f}ms {s.n:>4}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
