"""The long randomized soak behind `make soak`: the fault suite's randomized mix, interleaved
with the named scenarios that fit its settings, for a set time, then both checkers over the whole
history.

    .venv/bin/python -m tests.faults.soak --minutes 10 [--seed N] [--nodes 5] [--candidates 2]
        [--out DIR]

With candidates (the default, 2), candidate processes campaign in one named election through
random nodes for the whole soak and write to a fenced resource of their own; their history is
judged by both checkers apart (one election per history), under candidates/ in --out.

Prints the seed first (replay with --seed), one line per step, and the checker's summary last,
then both checkers' verdicts (checker.py's and the outside checker's, Porcupine: linearize.py);
writes history.jsonl, summary.json, run.json (what the checkers read), linearize-ops.json
(Porcupine's input), linearize.html (its visualisation of a history it rejects) and every
process's log under --out. A named scenario whose own promise fails is counted as a violation,
and so are the outside checker's failure and a disagreement of the two checkers on two leaders.
Exits 1 on any violation. Every process it starts is stopped on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from tests.faults import linearize
from tests.faults.campaigners import Campaigners
from tests.faults.campaigners import judge as campaigners_judge
from tests.faults.checker import Bounds, check
from tests.faults.cluster import SYNC_LIMIT, TICK_MS, Ensemble, FaultCluster
from tests.faults.scenarios import (
    churn,
    kill_leader,
    node_ids,
    partition_follower,
    partition_leader,
    pause_leader,
    random_step,
    rolling_restart,
    session_expiry,
    zk_quorum_loss,
)

SESSION_TIMEOUT = 2.5  # > (syncLimit + 1) x tick: see RELIABILITY.md
# Named scenarios whose promises hold with SESSION_TIMEOUT, and how often to pick each.
NAMED = [
    (kill_leader, 3),
    (pause_leader, 3),
    (partition_leader, 3),
    (partition_follower, 2),
    (session_expiry, 2),
    (zk_quorum_loss, 2),
    (rolling_restart, 1),
    (churn, 1),
]
NAMED_SHARE = 0.3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--nodes", type=int, default=5, choices=range(3, 6))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--candidates",
        type=int,
        default=2,
        help="candidate processes campaigning in one named election through random nodes for "
        "the whole soak (0: none); judged by both checkers apart, under candidates/",
    )
    args = parser.parse_args(argv)
    if args.candidates < 0:
        parser.error(f"--candidates: want a count >= 0, got {args.candidates}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    out = (args.out or Path(tempfile.mkdtemp(prefix="electd-soak-"))).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    print(
        f"soak: seed {seed}, {args.minutes:g} minutes, {args.nodes} nodes, "
        f"{args.candidates} candidates, output {out}"
    )
    sys.stdout.flush()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    rng = random.Random(seed)
    ensemble = Ensemble(out / "zookeeper")
    cluster: FaultCluster | None = None
    campaigners: Campaigners | None = None
    failures: list[str] = []
    steps: dict[str, int] = {}
    started = time.monotonic()
    try:
        ensemble.start()
        path = f"/soak/{uuid.uuid4().hex[:8]}/election"
        cluster = FaultCluster(ensemble, out / "nodes", path, SESSION_TIMEOUT)
        cluster.start_nodes(node_ids(args.nodes))
        if args.candidates:
            campaigners = Campaigners(cluster, args.candidates, seed)
        until = started + args.minutes * 60
        while time.monotonic() < until:
            name = step(cluster, rng, failures)
            steps[name] = steps.get(name, 0) + 1
            print(f"{time.monotonic() - started:7.1f}s  {name}", flush=True)
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        if campaigners is not None:
            campaigners.close()  # while the nodes still run: they resign
        if cluster is not None:
            cluster.close()
        ensemble.close()
    assert cluster is not None
    events, logs = cluster.history.events(), cluster.node_logs()
    bounds = Bounds(SESSION_TIMEOUT, TICK_MS / 1000, SYNC_LIMIT)
    linearize.save_run(out / "run.json", events, logs, bounds, f"soak, seed {seed}")
    report = check(events, logs, bounds)
    verdict = linearize.judge(events, logs, out)
    both = linearize.verdicts(report, verdict)
    report.violations[:0] = linearize.compare(report, verdict)  # first: the summary shows 50
    report.violations += [f"scenario promise: {f}" for f in failures]
    if campaigners is not None:
        label = f"soak, seed {seed}: candidates of election {campaigners.election}"
        creport, cverdict, cfailures = campaigners_judge(
            campaigners.history, bounds, out / "candidates", label
        )
        report.figures["candidates"] = {
            "processes": len(campaigners.made),
            **creport.figures,
            "outside checker (Porcupine)": cverdict.summary,
        }
        report.violations[:0] = [f"candidates: {f}" for f in cfailures]
    report.figures = {
        "seed": seed,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "steps": sum(steps.values()),
        "steps by kind": dict(sorted(steps.items())),
        **report.figures,
    }
    cluster.history.dump(out / "history.jsonl")
    summary = {
        **report.figures,
        "outside checker (Porcupine)": verdict.summary,
        "violations": report.violations,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(report.summary())
    print(both)
    return 1 if report.violations else 0


def step(c: FaultCluster, rng: random.Random, failures: list[str]) -> str:
    """One step: a named scenario (NAMED_SHARE of the time) or a random fault."""
    if rng.random() < NAMED_SHARE:
        fns, weights = zip(*NAMED, strict=True)
        fn = rng.choices(fns, weights)[0]
        name = fn.__name__.replace("_", "-")
        run = lambda: fn(c, rng)  # noqa: E731
    else:
        name, run = "random", lambda: random_step(c, rng)
    try:
        result = run()
        if isinstance(result, str):
            name = result
    except (AssertionError, TimeoutError) as exc:
        failures.append(f"{name} at {time.monotonic():.3f}: {exc!r}")
        print(traceback.format_exc(), flush=True)
        c.ensemble.restore()
        for node in c.nodes.values():
            if node.paused:
                c.resume(node.id)
            if not node.up:
                c.restart(node.id)
    return name


if __name__ == "__main__":
    sys.exit(main())
