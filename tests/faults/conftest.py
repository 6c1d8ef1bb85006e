"""Fixtures of the fault suite: one routed ZooKeeper ensemble per module (restored to health
after every test) and a `faults` factory that builds a FaultCluster on a fresh election path,
checks its history, and always kills every process it started (candidates too); on failure it
prints the violations' context: the history's tail, every node's log, ZooKeeper's logs and the
candidates' last lines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import Ensemble
from tests.faults.suite import Faults


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensemble]:
    ens = Ensemble(tmp_path_factory.mktemp("zk"))
    ens.start()
    try:
        yield ens
    finally:
        ens.close()


@pytest.fixture
def faults(ensemble: Ensemble, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Faults]:
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:50]
    env = Faults(ensemble, tmp_path, name)
    try:
        yield env
    finally:
        c = env.cluster
        failed = getattr(request.node, "rep_call", None)
        if env.campaigners is not None:
            env.campaigners.close()
        if c is not None:
            c.close()
            if failed is None or failed.failed:
                dump = tmp_path / "history.jsonl"
                c.history.dump(dump)
                tail = "\n".join(str(e) for e in c.history.events()[-60:])
                print(f"\n----- history ({dump}), last events -----\n{tail}")
                for node in [*c.nodes.values(), *c.retired]:
                    print(f"\n----- log of {node.id} -----\n{node.proc.log_text(40)}")
                print(f"\n----- ZooKeeper -----\n{ensemble.zk.logs()}")
                for cand in env.campaigners.made if env.campaigners else []:
                    print(f"candidate {cand.id}: {' | '.join(cand.lines[-8:])}")
        ensemble.restore()
