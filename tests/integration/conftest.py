"""Shared by the integration tests: a plain kazoo client of the test's ZooKeeper, playing
"another client of the ensemble" (an operator, a careless or hostile neighbour)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from electd.devcluster.zookeeper import ZooKeeperCluster


@pytest.fixture
def kz(zk: ZooKeeperCluster) -> Iterator[KazooClient]:
    client = KazooClient(hosts=zk.connect_string)
    client.start(10)
    yield client
    client.stop()
    client.close()
