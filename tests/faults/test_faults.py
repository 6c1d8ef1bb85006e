"""The fault-injection suite, short run: every named scenario once, then a randomized mix from
a printed seed (set ELECTD_FAULT_SEED to replay one), with candidates of a named election
campaigning through the nodes under its faults. Real ZooKeeper, real electd processes, real
faults; both checkers (checker.py and Porcupine) judge each history, the candidates' apart.
`make soak` runs the long mix."""

from __future__ import annotations

import random

import pytest

from tests.faults.scenarios import NAMED, Scenario, node_ids, random_mix
from tests.faults.suite import Faults, seed

SEED = seed()
RANDOM_STEPS = 15
SESSION_TIMEOUT = 2.5
CANDIDATES = 2  # candidate processes in the randomized mix


@pytest.mark.ensemble
@pytest.mark.timeout(150)
@pytest.mark.parametrize("scenario", NAMED, ids=lambda s: s.name)
def test_named_scenario(scenario: Scenario, faults: Faults) -> None:
    cluster = faults.start(node_ids(scenario.nodes), scenario.session_timeout)
    scenario.run(cluster, random.Random(SEED))
    report = faults.finish()
    assert report.figures["faults injected"] > 0
    assert not report.violations, report.summary()


@pytest.mark.ensemble
@pytest.mark.timeout(300)
def test_randomized_mix(faults: Faults) -> None:
    print(f"\nrandomized mix: seed {SEED} (replay with ELECTD_FAULT_SEED={SEED})")
    cluster = faults.start(node_ids(5), SESSION_TIMEOUT, candidates=CANDIDATES, seed=SEED)
    done = random_mix(cluster, random.Random(SEED), steps=RANDOM_STEPS)
    print(f"steps: {', '.join(done)}")
    report = faults.finish()
    assert report.figures["faults injected"] == RANDOM_STEPS
    assert report.figures["candidates"]["candidate terms"] > 0, report.summary()
    assert not report.violations, f"seed {SEED}\n{report.summary()}"
