"""The suite's per-test driver: `Faults` builds a FaultCluster on a fresh election path of the
shared ensemble, and after the run stops every process and checks the history with both
checkers: checker.py and the outside one, Porcupine (linearize.py). With candidates (the
randomized mix), a few candidate processes campaign in one named election through the nodes
under the same faults (campaigners.py); their history is judged by both checkers too, apart
(one election per history), and saved under candidates/ in the workdir. `seed()` is the
randomized run's seed."""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

from tests.faults import linearize
from tests.faults.campaigners import Campaigners
from tests.faults.campaigners import judge as campaigners_judge
from tests.faults.checker import Bounds, Report, check
from tests.faults.cluster import SYNC_LIMIT, TICK_MS, Ensemble, FaultCluster
from tests.faults.history import Event, History


def seed() -> int:
    """The randomized run's seed: $ELECTD_FAULT_SEED, else a fresh one (always printed)."""
    raw = os.environ.get("ELECTD_FAULT_SEED", "")
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


def scenario_figures(events: list[Event]) -> dict[str, object]:
    """The figures a scenario recorded itself (FaultCluster.figure), by name; a name recorded
    more than once (one per round) gives the list of its values."""
    out: dict[str, list[object]] = {}
    for e in events:
        if e.kind == "figure":
            out.setdefault(str(e.get("name")), []).append(e.get("value"))
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


class Faults:
    def __init__(self, ensemble: Ensemble, workdir: Path, name: str) -> None:
        self.ensemble, self.workdir, self.name = ensemble, workdir, name
        self.cluster: FaultCluster | None = None
        self.report: Report | None = None
        self.verdict: linearize.Verdict | None = None
        self.campaigners: Campaigners | None = None

    def start(
        self, nodes: list[str], session_timeout: float, candidates: int = 0, seed: int = 0
    ) -> FaultCluster:
        """The cluster, its nodes joined; with `candidates`, that many candidates campaigning
        through them for the whole run (replaced as they end; `seed` picks their nodes)."""
        self.ensemble.history = History()
        path = f"/faults/{self.name}-{uuid.uuid4().hex[:8]}/election"
        self.cluster = FaultCluster(self.ensemble, self.workdir, path, session_timeout)
        self.cluster.start_nodes(nodes)
        if candidates:
            self.campaigners = Campaigners(self.cluster, candidates, seed)
        return self.cluster

    def finish(self) -> Report:
        """Stop every process, then check the whole history with both checkers. The report is
        checker.py's, with the outside checker's failure and any disagreement of the two on
        two leaders added as violations. The run (run.json), Porcupine's input and, for a
        history it rejects, its visualisation (linearize.html) stay in the workdir."""
        c = self.cluster
        assert c is not None
        if self.campaigners is not None:
            self.campaigners.close()  # while the nodes still run: they resign
        c.close()
        bounds = Bounds(c.session_timeout, TICK_MS / 1000, SYNC_LIMIT)
        events, logs = c.history.events(), c.node_logs()
        linearize.save_run(self.workdir / "run.json", events, logs, bounds, self.name)
        self.report = check(events, logs, bounds)
        self.report.figures.update(scenario_figures(events))
        self.verdict = linearize.judge(events, logs, self.workdir)
        outside = linearize.compare(self.report, self.verdict)
        print(f"\n== {self.name}\n{self.report.summary()}")
        print(linearize.verdicts(self.report, self.verdict))
        if self.campaigners is not None:
            label = f"{self.name}: candidates of election {self.campaigners.election}"
            creport, cverdict, failures = campaigners_judge(
                self.campaigners.history, bounds, self.workdir / "candidates", label
            )
            self.report.figures["candidates"] = {
                "processes": len(self.campaigners.made),
                **creport.figures,
                "outside checker (Porcupine)": cverdict.summary,
            }
            outside += [f"candidates: {f}" for f in failures]
        self.report.violations[:0] = outside  # first, so that the summary's 50 show them
        return self.report
