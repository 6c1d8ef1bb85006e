"""Shared fixtures: a real ZooKeeper (never a mock), a fresh election path per test (our
chroot-per-test), engine and node-process factories that always clean up, and logs of
ZooKeeper and of every node dumped when a test fails."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from electd.devcluster.cluster import NodeProcess, wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster, free_port
from electd.engine import ElectionEngine, NodeRecord, Role, View
from electd.zk import ZkStore


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture(scope="session")
def zk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperCluster]:
    cluster = ZooKeeperCluster(tmp_path_factory.mktemp("zk"), size=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def election_path(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60]
    return f"/tests/{name}-{uuid.uuid4().hex[:8]}/election"


class EngineHarness:
    """Engines on real ZooKeeper sessions, in this process."""

    def __init__(self, zk: ZooKeeperCluster, path: str) -> None:
        self.zk, self.path = zk, path
        self.engines: list[ElectionEngine] = []
        self.stores: list[ZkStore] = []
        self.views: dict[str, list[View]] = {}
        self.journal: list[tuple[str, View]] = []  # every engine's views, in publish order

    def start(
        self,
        node_id: str,
        hosts: str | None = None,
        session_timeout: float = 2.0,
        path: str | None = None,
    ) -> ElectionEngine:
        store = ZkStore.standalone(
            hosts or self.zk.connect_string, path or self.path, session_timeout, connect_timeout=10
        )
        store.start()
        views = self.views.setdefault(node_id, [])

        def publish(view: View) -> None:
            views.append(view)
            self.journal.append((node_id, view))

        engine = ElectionEngine(store, NodeRecord(node_id, f"127.0.0.1:{free_port()}"), publish)
        engine.start()
        self.engines.append(engine)
        self.stores.append(store)
        # Joined before the next one starts: tests mean "started first" as "leads first"
        # (the first engine on a new path also writes its identity, which takes longer).
        wait_until(
            lambda: engine.view().role in (Role.LEADER, Role.FOLLOWER, Role.REFUSED),
            15,
            f"{node_id} joined",
        )
        return engine

    def stop_all(self) -> None:
        for engine in self.engines:
            engine.stop()


@pytest.fixture
def engines(zk: ZooKeeperCluster, election_path: str) -> Iterator[EngineHarness]:
    harness = EngineHarness(zk, election_path)
    yield harness
    harness.stop_all()


class NodeFactory:
    def __init__(self, zk: ZooKeeperCluster, path: str, workdir: Path) -> None:
        self.zk, self.path, self.workdir = zk, path, workdir
        self.procs: list[NodeProcess] = []

    def start(
        self,
        node_id: str,
        session_timeout: float = 2.0,
        zk: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> NodeProcess:
        proc = NodeProcess(
            zk or self.zk.connect_string,
            free_port(),
            self.workdir,
            node_id=node_id,
            election_path=self.path,
            session_timeout=session_timeout,
            extra_args=extra,
        )
        proc.start()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.stop()


@pytest.fixture
def nodes(
    zk: ZooKeeperCluster, election_path: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[NodeFactory]:
    factory = NodeFactory(zk, election_path, tmp_path / "nodes")
    yield factory
    factory.stop_all()
    if _failed(request):
        for proc in factory.procs:
            print(f"\n----- log of node {proc.node_id} ({proc.address}) -----\n{proc.log_text()}")
        print(f"\n----- ZooKeeper -----\n{zk.logs()}")
