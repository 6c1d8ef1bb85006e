"""Candidates in fault runs: `CandidateProcess` runs one candidate.py; `Campaigners` keeps a few
campaigning in one named election through random live nodes of a FaultCluster for a whole run
(the randomized mix), restarting each one that ended (under another id) through another node;
`judge` gives a candidate history to both checkers.

A named election's candidates have a fenced resource and a History of their own, apart from
the node election's: epochs are per election (a named election's are its entries' czxids), and
checker.check_candidates judges one election's history, its candidates' writes and claims.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from tests.faults import linearize
from tests.faults.checker import Bounds, Report, check_candidates
from tests.faults.cluster import FaultCluster
from tests.faults.fence import FencedStore
from tests.faults.history import History

CANDIDATE = Path(__file__).with_name("candidate.py")


class CandidateProcess:
    def __init__(self, addr: str, election: str, cid: str, fence: FencedStore, *extra: str):
        self.id = cid
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(CANDIDATE), addr, election, cid, fence.address, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def saw(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> None:
        """SIGTERM: it ends its belief (sending that claim), then resigns."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)


def stop_all(made: list[CandidateProcess], timeout: float = 10) -> None:
    """Resign every candidate still running (so that its last claim is in) and wait for it to
    exit; SIGKILL one that has not within `timeout`."""
    for c in made:
        c.terminate()
    for c in made:
        try:
            c.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            c.stop()


def judge(
    history: History, bounds: Bounds, workdir: Path, label: str
) -> tuple[Report, linearize.Verdict, list[str]]:
    """Both checkers on a candidate history: checker.check_candidates' report, Porcupine's
    verdict and what fails the run (Porcupine's failure or a disagreement first, then the
    report's violations). run.json, Porcupine's input and, for a history it rejects, its
    visualisation go to `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    events = history.events()
    linearize.save_run(workdir / "run.json", events, {}, bounds, label)
    report = check_candidates(events, bounds)
    verdict = linearize.judge(events, {}, workdir)
    print(f"\n== {label}\n{report.summary()}\n{linearize.verdicts(report, verdict)}")
    return report, verdict, [*linearize.compare(report, verdict), *report.violations]


class Campaigners:
    """`count` candidates in one fresh named election for a whole fault run, each through a
    random running node; one whose process ended (its node died or cut its stream) is replaced
    within a fifth of a second by a new one (id c<slot>-<n>) through another random node. Its
    own Random, from the run's seed, keeps the mix's choices as they were."""

    def __init__(self, cluster: FaultCluster, count: int, seed: int) -> None:
        self.cluster = cluster
        self.history = History()
        self.fence = FencedStore(self.history)
        self.election = f"mix-{uuid.uuid4().hex[:8]}"
        self.made: list[CandidateProcess] = []
        self._slots: list[CandidateProcess | None] = [None] * count
        self._rng = random.Random(f"candidates-{seed}")
        self._stop = threading.Event()
        self._keep()
        self._thread = threading.Thread(target=self._run, name="campaigners", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._keep()

    def _keep(self) -> None:
        for i, c in enumerate(self._slots):
            if c is not None and c.proc.poll() is None:
                continue
            live = sorted(self.cluster.running(), key=lambda n: n.id)
            if not live:
                return
            node = self._rng.choice(live)
            cid = f"c{i + 1}-{sum(p.id.startswith(f'c{i + 1}-') for p in self.made) + 1}"
            made = CandidateProcess(node.proc.address, self.election, cid, self.fence)
            self._slots[i] = made
            self.made.append(made)

    def close(self) -> None:
        """Stop replacing candidates, resign the running ones, close the resource."""
        self._stop.set()
        self._thread.join(5)
        stop_all(self.made)
        self.fence.close()
