"""Against a 3-server ZooKeeper ensemble: restarting ZooKeeper servers (the one a node talks
to, and the ensemble's leader) does not change electd's leader while sessions survive."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from electd.devcluster.cluster import wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster
from tests.conftest import EngineHarness


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperCluster]:
    cluster = ZooKeeperCluster(tmp_path_factory.mktemp("ensemble"), size=3)
    cluster.start()
    wait_until(lambda: cluster.leader() is not None, 60, "ensemble elected a leader")
    yield cluster
    cluster.stop()


@pytest.mark.ensemble
@pytest.mark.timeout(180)
def test_zookeeper_server_restarts_do_not_change_the_electd_leader(
    ensemble: ZooKeeperCluster, election_path: str
) -> None:
    harness = EngineHarness(ensemble, election_path)
    try:
        # Each node talks to a different server first.
        servers = ensemble.servers
        engines = [
            harness.start(
                f"n{i}",
                hosts=",".join(s.address for s in servers[i:] + servers[:i]),
                session_timeout=6.0,
            )
            for i in range(3)
        ]

        def leader_epochs() -> set[tuple[str, int]]:
            now = time.monotonic()
            out = set()
            for e in engines:
                info = e.view().vouched(now)
                out.add((info.member.record.id, info.epoch) if info else ("?", 0))
            return out

        wait_until(lambda: leader_epochs() == {("n0", leader_epochs().pop()[1])}, 30, "n0 leads")
        before = leader_epochs()

        # Restart the server n0 talks to, then the ensemble's leader.
        for victim in (servers[0], ensemble.leader()):
            assert victim is not None
            victim.stop()
            victim.start()
            victim.wait_serving(60)
            wait_until(lambda: leader_epochs() == before, 30, "every node vouches for n0 again")
        # No node ever saw a different leader or epoch during the restarts.
        for node_id, views in harness.views.items():
            seen = {(v.leader.member.record.id, v.leader.epoch) for v in views if v.leader}
            assert seen == before, (node_id, seen)
    finally:
        harness.stop_all()
