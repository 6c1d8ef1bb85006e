"""Shared by the engine's unit tests: engines on the in-memory store (tests/support/memstore.py),
one `MemEnsemble` per test, every engine stopped afterwards."""

from __future__ import annotations

import pytest

from electd.devcluster.cluster import wait_until
from electd.engine import ElectionEngine, NodeRecord, Role, View
from electd.engine.clock import now as lease_clock
from tests.support.memstore import MemEnsemble, MemStore


class Node:
    def __init__(
        self,
        ens: MemEnsemble,
        node_id: str,
        timeout: float = 3.0,
        journal: list[tuple[str, View]] | None = None,
        cluster_id: str = "",
    ) -> None:
        """`journal`: shared by several nodes, it gets every view of each, in publish order."""
        self.store = MemStore(ens, timeout)
        self.views: list[View] = []

        def publish(view: View) -> None:
            self.views.append(view)
            if journal is not None:
                journal.append((node_id, view))

        self.engine = ElectionEngine(
            self.store, NodeRecord(node_id, f"{node_id}:1"), publish, cluster_id=cluster_id
        )
        self.store.connect()
        self.engine.start()

    @property
    def view(self) -> View:
        return self.engine.view()

    def leads(self) -> bool:
        return self.view.is_leader(lease_clock())

    def leader_id(self) -> str | None:
        info = self.view.vouched(lease_clock())
        return info.member.record.id if info else None


@pytest.fixture
def ens() -> MemEnsemble:
    return MemEnsemble()


@pytest.fixture
def cluster(ens: MemEnsemble):
    made: list[Node] = []

    def make(
        node_id: str, timeout: float = 3.0, journal: list[tuple[str, View]] | None = None
    ) -> Node:
        node = Node(ens, node_id, timeout, journal)
        made.append(node)
        wait_until(lambda: node.view.role in (Role.LEADER, Role.FOLLOWER), 5, f"{node_id} joined")
        return node

    yield make
    for node in made:
        node.engine.stop()
