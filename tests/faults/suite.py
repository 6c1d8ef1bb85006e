"""The suite's per-test driver: `Faults` builds a FaultCluster on a fresh election path of the
shared ensemble, and after the run stops every process and checks the history (checker.py).
`seed()` is the randomized run's seed."""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

from tests.faults.checker import Bounds, Report, check
from tests.faults.cluster import SYNC_LIMIT, TICK_MS, Ensemble, FaultCluster
from tests.faults.history import History


def seed() -> int:
    """The randomized run's seed: $ELECTD_FAULT_SEED, else a fresh one (always printed)."""
    raw = os.environ.get("ELECTD_FAULT_SEED", "")
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


class Faults:
    def __init__(self, ensemble: Ensemble, workdir: Path, name: str) -> None:
        self.ensemble, self.workdir, self.name = ensemble, workdir, name
        self.cluster: FaultCluster | None = None
        self.report: Report | None = None

    def start(self, nodes: list[str], session_timeout: float) -> FaultCluster:
        self.ensemble.history = History()
        path = f"/faults/{self.name}-{uuid.uuid4().hex[:8]}/election"
        self.cluster = FaultCluster(self.ensemble, self.workdir, path, session_timeout)
        self.cluster.start_nodes(nodes)
        return self.cluster

    def finish(self) -> Report:
        """Stop every process, then check the whole history."""
        c = self.cluster
        assert c is not None
        c.close()
        bounds = Bounds(c.session_timeout, TICK_MS / 1000, SYNC_LIMIT)
        self.report = check(c.history.events(), c.node_logs(), bounds)
        print(f"\n== {self.name}\n{self.report.summary()}")
        return self.report
